"""The training data of :mod:`tpo.training.train`: an export of :mod:`tpo.curation.export` as the
``datasets.Dataset`` TRL's ``DPOTrainer`` takes, and :class:`TrainError`, the clear error
every step of a training run raises.

* :func:`check_data`: is there a dataset to train on? Cheap (no ML library), so a job with
  no data fails at once instead of after torch has loaded.
* :func:`load_pairs`: an export folder (``datasets.load_dataset(DIR, split="train")``:
  conversational ``prompt`` / ``chosen`` / ``rejected`` plus the frames as an ``images``
  list) or its embedded ``train.parquet``, with TRL's columns (:data:`TRAIN_COLUMNS`).
* :func:`cap_frames`: at most ``max_frames`` frames a row, an evenly spaced subset (of a
  whole-video export's uniform frames: again uniform over the whole video); the prompt's
  image placeholders, ``frame_times`` and the time prompt the export wrote follow.

``datasets`` and numpy are imported where they are used: the app process imports this
module (through :mod:`tpo.training.train`) and must not load them (docs/architecture.md).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from tpo.errors import TPOError


__all__ = ["NO_DATA", "TRAIN_COLUMNS", "TrainError", "cap_frames", "check_data", "load_pairs"]

TRAIN_COLUMNS = ("prompt", "chosen", "rejected", "images")
NO_DATA = "no accepted pairs: accept some in Curate and export"
# "The video lasts for 20.0 seconds, and 8 frames ..." - tpo.models.vlm.time_prompt's first words.
_TIME_PROMPT = re.compile(r"The video lasts for ([0-9.]+) seconds, and (\d+) frames")


class TrainError(TPOError):
    """A run that cannot start or finish, with what to do about it (no data, OOM, disk)."""


def check_data(data: str | os.PathLike | None) -> Path:
    """The dataset's path, if it can hold pairs to train on; TrainError (:data:`NO_DATA`)
    otherwise. Cheap (no ML library): a job fails at once, not after loading torch."""
    if not data:
        raise TrainError(f"{NO_DATA} (no --data given)")
    path = Path(data).expanduser()
    if not path.exists() or (path.is_dir() and not any(path.iterdir())):
        raise TrainError(f"{NO_DATA} (no dataset at {path})")
    if path.is_dir() and (path / "tpo_pairs.json").is_file() and not (
            any(path.glob("metadata.*")) or (path / "train.parquet").is_file()):
        raise TrainError(f"{path} is a tpo-json export (video paths, no frames): export as "
                         "jsonl or parquet to train on it")
    return path


def load_pairs(data: str | os.PathLike, *, max_frames: int | None = None,
               cache_dir: str | None = None):
    """The export at ``data`` as a ``datasets.Dataset`` with TRL's columns
    (prompt, chosen, rejected, images), at most ``max_frames`` frames a row.

    TrainError (:data:`NO_DATA`) for a missing or empty folder, or one without rows.
    """
    import datasets

    path = check_data(data)
    try:
        if path.is_dir():
            ds = datasets.load_dataset(str(path), split="train", cache_dir=cache_dir)
        elif path.suffix == ".parquet":
            ds = datasets.load_dataset("parquet", data_files=str(path), split="train",
                                       cache_dir=cache_dir)
        else:
            raise TrainError(f"{path}: give an export folder or its embedded train.parquet")
    except (datasets.exceptions.DataFilesNotFoundError,
            datasets.data_files.EmptyDatasetError) as err:  # a folder without data files
        raise TrainError(f"{NO_DATA} (no data files in {path})") from err
    missing = [c for c in TRAIN_COLUMNS if c not in ds.column_names]
    if missing:
        raise TrainError(f"{path} is not a preference export with frames: no "
                         f"{', '.join(missing)} column (export from Curate or `tpo export`)")
    if len(ds) == 0:
        raise TrainError(f"{NO_DATA} ({path} has no rows)")
    if max_frames is not None:
        ds = cap_frames(ds, max_frames)
    return ds.select_columns(list(TRAIN_COLUMNS))


def cap_frames(ds, max_frames: int):
    """Rows with more than ``max_frames`` images keep ``max_frames`` of them, evenly spaced
    (the centre frame of each of ``max_frames`` equal runs, as :meth:`tpo.media.video.Video.sparse`
    picks): a whole-video export's uniform frames stay uniform over the whole video. The
    prompt's image placeholders follow, so do the ``frame_times`` column (or
    ``frame_timestamps``, its name in older exports) and the time prompt when it is the one the
    export wrote. Images are not decoded."""
    import datasets
    import numpy as np

    feature = ds.features["images"]
    raw = ds.cast_column("images", datasets.List(datasets.Image(decode=False)))
    time_columns = [c for c in ("frame_times", "frame_timestamps") if c in ds.column_names]

    def cap(row: dict) -> dict:
        n = len(row["images"])
        if n <= max_frames:
            return {}
        # Row frame positions: bin centres of max_frames equal runs of the n frames; for n
        # uniform frames (spacing d s) the kept ones are uniform too (spacing n/max_frames*d).
        keep = ((np.arange(max_frames) + 0.5) * (n / max_frames)).astype(int).tolist()
        times = row[time_columns[0]] if time_columns else None
        kept_times = [times[i] for i in keep] if times and len(times) == n else None
        prompt = [_cap_message(m, keep, n, times, kept_times, row.get("question"))
                  for m in row["prompt"]]
        out = {"images": [row["images"][i] for i in keep], "prompt": prompt}
        if kept_times is not None:
            out.update({c: kept_times for c in time_columns})
        return out

    capped = raw.map(cap, desc=f"capping to {max_frames} frames")
    return capped.cast_column("images", feature)


def _cap_message(message: dict, keep: list[int], n: int, times: list | None,
                 kept_times: list | None, question: str | None) -> dict:
    from tpo.models.vlm import time_prompt

    content = message.get("content")
    if not isinstance(content, list):
        return message
    images = [i for i, part in enumerate(content) if part.get("type") == "image"]
    if len(images) != n:  # not one placeholder per frame: leave the message alone
        return message
    dropped = {images[i] for i in range(n) if i not in set(keep)}
    parts = []
    for i, part in enumerate(content):
        if i in dropped:
            continue
        text = part.get("text") if part.get("type") == "text" else None
        match = _TIME_PROMPT.match(text or "")
        if match and kept_times is not None and question is not None:
            duration = float(match.group(1))
            # Rewrite only the text the export wrote, so a hand-made prompt is never mangled.
            if text == time_prompt(times, duration, question):
                part = {**part, "text": time_prompt(kept_times, duration, question)}
        parts.append(part)
    return {**message, "content": parts}
