"""Needle in a haystack: can a video-LM find one short event anywhere in a long video?

The suite renders synthetic *haystacks* (a drifting grey background and nothing else) of
several lengths, each with ONE *needle*: a big saturated shape or number, visible for
``needle_len_s`` seconds (:func:`tpo.media.synth.needle_spec`). The question asks about the needle
(its colour, or which number it is), so it is answerable only from the frames that show it.
Accuracy is reported per (haystack length, needle depth) cell and drawn as a heatmap like
Figure 3 of the TPO paper (Li et al. 2025, arXiv 2501.13919): temporal preference
optimisation is meant to make a model ground its answer in the right part of a long video.

Depth maps to time as in :func:`~tpo.media.synth.needle_spec`: the needle starts at
``depth * (length_s - needle_len_s)`` seconds (rounded to 0.1 s), so depth 0 starts at the
first frame and depth 1 ends exactly at the end of the video; depth 0.5 is centred.

Why the defaults (30 s to 4 min, 1 fps, 160x96, a 5 s needle): the whole suite is
20 videos / 2,250 frames, which renders in seconds on a 2-core CPU, and 1 fps is all an
evaluation needs, since a model sees a few dozen frames anyway. Those frames are spread
uniformly over the haystack: with N frames over L seconds, one every L/N seconds, a needle
shorter than L/N can fall entirely between two sampled frames (16 frames over 4 min: one
every 15 s, so a 5 s needle is seen by about one sample in three). The model then *cannot*
know the answer, whatever its training. That is what the heatmap shows: accuracy falls
with haystack length for a fixed frame budget, in a pattern that depends on where the
sampled frames land relative to each depth. Compare models at the same frame budget.

Files are cached: each video goes to ``cache_dir/<W>x<H>_<fps>fps_needle<len>s/`` (so
configs differing only in those settings do not overwrite each other) with synth's JSON
ground truth beside it, and a video whose JSON matches its spec is reused, not re-rendered.
Nothing here imports torch, transformers or gradio; matplotlib is imported only to draw.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from tpo.evaluation.mcq import LETTERS, MCQItem
from tpo.media.synth import write_atomically, build_demo_library, needle_spec

SUITE = "needle"

Progress = Callable[[int, int], None]
"""``progress(done, total)``, counted in videos."""


@dataclass
class NeedleConfig:
    """The grid of the needle-in-a-haystack suite: haystack lengths x needle depths x seeds.

    Every (length, depth) cell holds ``per_cell`` videos with different needles. Lists are
    accepted for the tuple fields and stored as tuples of floats.
    """

    lengths_s: tuple[float, ...] = field(default=(30, 60, 120, 240), metadata={
        "help": "Haystack lengths in seconds (distinct, > 0); the heatmap's columns."})
    depths: tuple[float, ...] = field(default=(0.0, 0.25, 0.5, 0.75, 1.0), metadata={
        "help": "Needle depths in [0, 1] (distinct to 2 decimals): where in the haystack the "
                "needle lies, 0 = at the start, 1 = at the end; the heatmap's rows."})
    per_cell: int = field(default=1, metadata={
        "help": "Videos per (length, depth) cell, each with its own needle (seed)."})
    fps: float = field(default=1, metadata={
        "help": "Frame rate of the rendered videos. Low rates keep long haystacks cheap."})
    needle_len_s: float = field(default=5, metadata={
        "help": "How long the needle is visible, in seconds (at least one frame, at most "
                "the shortest haystack)."})
    seed: int = field(default=0, metadata={
        "help": "Base seed: picks every needle (kind, shape, colour, position) and "
                "background; the same config always renders the same suite."})
    width: int = field(default=160, metadata={
        "help": "Frame width in pixels (even, >= 16). The needle is 45% of the shorter side."})
    height: int = field(default=96, metadata={
        "help": "Frame height in pixels (even, >= 16)."})

    def __post_init__(self) -> None:
        self.lengths_s = tuple(float(x) for x in self.lengths_s)
        self.depths = tuple(float(x) for x in self.depths)
        if not self.lengths_s:
            raise ValueError("lengths_s must hold at least one haystack length")
        if not all(math.isfinite(x) and x > 0 for x in self.lengths_s):
            raise ValueError(f"lengths_s must be positive seconds, got {self.lengths_s}")
        if len({f"{x:g}" for x in self.lengths_s}) != len(self.lengths_s):
            raise ValueError(f"lengths_s must be distinct, got {self.lengths_s}")
        if not self.depths:
            raise ValueError("depths must hold at least one depth")
        if not all(0 <= d <= 1 for d in self.depths):  # NaN fails this too
            raise ValueError(f"depths must lie in [0, 1], got {self.depths}")
        if len({f"{d:.2f}" for d in self.depths}) != len(self.depths):
            raise ValueError(f"depths must be distinct to 2 decimals (they name the files), "
                             f"got {self.depths}")
        if isinstance(self.per_cell, bool) or int(self.per_cell) != self.per_cell \
                or self.per_cell < 1:
            raise ValueError(f"per_cell must be an integer >= 1, got {self.per_cell}")
        self.per_cell = int(self.per_cell)
        if not (math.isfinite(self.fps) and self.fps > 0):
            raise ValueError(f"fps must be > 0, got {self.fps}")
        if not (math.isfinite(self.needle_len_s) and self.needle_len_s > 0):
            raise ValueError(f"needle_len_s must be > 0, got {self.needle_len_s}")
        if self.needle_len_s > min(self.lengths_s):
            raise ValueError(f"needle_len_s ({self.needle_len_s:g} s) must not exceed the "
                             f"shortest haystack ({min(self.lengths_s):g} s)")
        if self.needle_len_s * self.fps < 1:
            raise ValueError(f"a {self.needle_len_s:g} s needle at {self.fps:g} fps could fall "
                             f"between frames: need needle_len_s >= 1 / fps")
        for name in ("width", "height"):
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) != value or value < 16 or value % 2:
                raise ValueError(f"{name} must be an even integer >= 16, got {value}")
            setattr(self, name, int(value))

    @property
    def n_videos(self) -> int:
        return len(self.lengths_s) * len(self.depths) * self.per_cell

    @property
    def n_frames(self) -> int:
        """Frames rendered for the whole suite (a measure of its cost)."""
        return sum(max(1, round(length * self.fps)) for length in self.lengths_s) \
            * len(self.depths) * self.per_cell

    def folder(self) -> str:
        """The subfolder of the cache these settings render into."""
        return f"{self.width}x{self.height}_{self.fps:g}fps_needle{self.needle_len_s:g}s"


def _cell_seed(config: NeedleConfig, length: float, depth: float, k: int) -> int:
    """A seed for cell (length, depth, k): deterministic, and unchanged by adding cells."""
    key = f"needle/{config.seed}/{length:g}/{depth:.2f}/{k}"
    return random.Random(key).randrange(1, 2**31)  # str seeds hash with SHA-512: stable


def build_needle_suite(cache_dir: str | Path, config: NeedleConfig | None = None, *,
                       progress: Progress | None = None) -> list[MCQItem]:
    """Render (or reuse) the suite's videos under ``cache_dir``; one MCQItem per video.

    Items come in (length, depth, k) order of the config, ids like ``len60_depth0.50_k0``;
    ``video`` is an absolute path, ``task`` the needle's kind ("shape" or "number"),
    ``duration_class`` e.g. ``"60 s"`` and ``meta`` holds ``length_s``, ``depth``,
    ``needle_start_s``, ``needle_end_s`` and ``seed``. ``progress(done, total)`` counts
    videos, reused ones included.
    """
    config = config if config is not None else NeedleConfig()
    folder = Path(cache_dir).expanduser().resolve() / config.folder()
    cells = [(length, depth, k) for length in config.lengths_s for depth in config.depths
             for k in range(config.per_cell)]
    items: list[MCQItem] = []
    used: set[int] = set()
    for done, (length, depth, k) in enumerate(cells, start=1):
        seed = _cell_seed(config, length, depth, k)
        while seed in used:  # never two videos with one seed (and one file name)
            seed += 1
        used.add(seed)
        spec = needle_spec(length, depth, seed=seed, fps=config.fps,
                           needle_len_s=config.needle_len_s, width=config.width,
                           height=config.height)
        # build_demo_library renders a spec unless a video with matching ground truth exists.
        (video,) = build_demo_library(folder, [spec])
        (needle,) = spec.events
        options = tuple(needle.options)
        items.append(MCQItem(
            suite=SUITE,
            item_id=f"len{length:g}_depth{depth:.2f}_k{k}",
            video=str(video),
            question=needle.question,
            options=options,
            answer=LETTERS[options.index(needle.answer)],
            duration_class=f"{length:g} s",
            task=needle.kind,
            meta={"length_s": length, "depth": depth, "needle_start_s": needle.start_s,
                  "needle_end_s": needle.end_s, "seed": seed},
        ))
        if progress:
            progress(done, len(cells))
    return items


def needle_grid(records: Iterable[Mapping] | pd.DataFrame) -> pd.DataFrame:
    """Accuracy per cell: rows = depth (ascending), columns = length_s (ascending).

    ``records`` hold at least ``length_s``, ``depth`` and ``correct`` (bool or 0/1), e.g.
    an item's ``meta`` plus the graded answer. Values are mean accuracies in [0, 1]; a
    (depth, length) pair with no record is NaN.
    """
    frame = records.copy() if isinstance(records, pd.DataFrame) else pd.DataFrame(list(records))
    missing = {"length_s", "depth", "correct"} - set(frame.columns)
    if missing:
        raise ValueError(f"records lack the column(s) {sorted(missing)}")
    frame = frame[["length_s", "depth", "correct"]].astype(float)
    if frame["correct"].isna().any() or not frame["correct"].isin([0.0, 1.0]).all():
        raise ValueError("'correct' must be a bool or 0/1 in every record")
    grid = frame.groupby(["depth", "length_s"])["correct"].mean().unstack("length_s")
    grid = grid.sort_index(axis=0).sort_index(axis=1)
    grid.index.name, grid.columns.name = "depth", "length_s"
    return grid


def _length_label(seconds: float) -> str:
    """30 -> "30 s", 120 -> "2 min", 90 -> "1.5 min", 7200 -> "2 h"."""
    if seconds < 60:
        return f"{seconds:g} s"
    if seconds < 3600:
        return f"{seconds / 60:.3g} min"
    return f"{seconds / 3600:.3g} h"


def heatmap_png(grid: pd.DataFrame, path: str | Path, *, title: str) -> Path:
    """Draw ``grid`` (from :func:`needle_grid`) as a PNG heatmap at ``path``; return the path.

    x: haystack length, y: needle depth in % (0% on top), cells red (0) to green (1) with
    their accuracy written in %, empty (NaN) cells grey with a dash, and a colour bar.
    Written atomically (temp file, then rename). Uses matplotlib's Agg canvas directly: no
    pyplot, no global state, safe in worker threads.
    """
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import PercentFormatter

    if grid.shape[0] == 0 or grid.shape[1] == 0:
        raise ValueError("the grid is empty: nothing to draw")
    path = Path(path)
    values = grid.to_numpy(dtype=float)
    n_rows, n_cols = values.shape
    figure = Figure(figsize=(max(4.5, 1.0 * n_cols + 2.5), max(3.0, 0.55 * n_rows + 1.8)),
                    dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    cmap = colormaps["RdYlGn"].with_extremes(bad="#d9d9d9")
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=0, vmax=1,
                      aspect="auto", interpolation="nearest")
    for row in range(n_rows):
        for col in range(n_cols):
            value = values[row, col]
            if np.isnan(value):
                text, color = "–", "#555555"
            else:
                r, g, b, _ = cmap(value)
                dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.45
                text, color = f"{100 * value:.0f}%", "white" if dark else "black"
            ax.text(col, row, text, ha="center", va="center", fontsize=9, color=color)
    ax.set_xticks(range(n_cols), [_length_label(float(x)) for x in grid.columns])
    ax.set_yticks(range(n_rows), [f"{100 * float(d):.0f}%" for d in grid.index])
    ax.set_xlabel("Haystack length")
    ax.set_ylabel("Needle depth")
    ax.set_title(title)
    ax.tick_params(length=0)
    colorbar = figure.colorbar(image, ax=ax, format=PercentFormatter(xmax=1))
    colorbar.set_label("Accuracy")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, lambda tmp: figure.savefig(tmp, format="png"))
    return path
