"""Tests for tpo.evaluation.needle: a tiny suite really rendered into tmp_path, its grid and heatmap."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tpo.evaluation.mcq import MCQItem
from tpo.evaluation.needle import NeedleConfig, build_needle_suite, heatmap_png, needle_grid
from tpo.media.synth import COLORS, event_box
from tpo.media.video import open_video

TINY = NeedleConfig(lengths_s=(10, 20), depths=(0, 1), fps=1, needle_len_s=3)


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    cache = tmp_path_factory.mktemp("needle")
    calls = []
    items = build_needle_suite(cache, TINY, progress=lambda done, total: calls.append((done, total)))
    return cache, items, calls


def truth_of(item: MCQItem) -> dict:
    return json.loads(Path(item.video).with_suffix(".json").read_text(encoding="utf-8"))


def color_share(frame: np.ndarray, event: dict) -> float:
    """Share of the needle's box whose pixels are close to the needle's colour."""
    height, width = frame.shape[:2]
    x0, y0, x1, y1 = event_box(event["position"], width, height)
    region = frame[y0:y1, x0:x1].astype(int)
    return float((np.linalg.norm(region - np.array(COLORS[event["color"]]), axis=-1) < 60).mean())


def test_items_and_fields(suite):
    cache, items, calls = suite
    assert len(items) == TINY.n_videos == 4
    assert [it.item_id for it in items] == ["len10_depth0.00_k0", "len10_depth1.00_k0",
                                            "len20_depth0.00_k0", "len20_depth1.00_k0"]
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]
    for item in items:
        assert item.suite == "needle"
        assert Path(item.video).is_absolute() and Path(item.video).is_file()
        assert Path(item.video).resolve().is_relative_to(Path(cache).resolve())
        assert item.task in ("shape", "number")
        assert set(item.meta) == {"length_s", "depth", "needle_start_s", "needle_end_s", "seed"}
        assert item.duration_class == f"{item.meta['length_s']:g} s"
        assert len(item.options) == 4 and "A. " not in item.options[0]
        event, = truth_of(item)["events"]
        assert item.question == event["question"]
        assert item.options == tuple(event["options"])
        assert item.options[item.letters.index(item.answer)] == event["answer"]
        assert item.task == event["kind"]
        assert (item.meta["needle_start_s"], item.meta["needle_end_s"]) == \
            (event["start_s"], event["end_s"])
    assert len({it.meta["seed"] for it in items}) == len(items)  # every needle its own seed
    assert {it.duration_class for it in items} == {"10 s", "20 s"}


def test_depth_maps_to_time(suite):
    _, items, _ = suite
    for item in items:
        length, depth = item.meta["length_s"], item.meta["depth"]
        start, end = item.meta["needle_start_s"], item.meta["needle_end_s"]
        assert end - start == pytest.approx(3)
        assert start == pytest.approx(depth * (length - 3))
        if depth == 1:
            assert end == pytest.approx(length)


def test_needle_is_on_screen_only_at_its_time(suite):
    _, items, _ = suite
    for item in items:
        event, = truth_of(item)["events"]
        start, end = item.meta["needle_start_s"], item.meta["needle_end_s"]
        with open_video(item.video) as video:
            assert video.info.n_frames == item.meta["length_s"] * TINY.fps
            assert (video.info.width, video.info.height) == (160, 96)
            inside = video.segment(start, end, n=1)
            outside = video.excluding(start, end, n=4)
            assert start <= video.times[inside[0]] < end
            frames = video.decode(inside + outside)
        assert color_share(frames[0], event) > 0.1, item.item_id
        for frame in frames[1:]:
            assert color_share(frame, event) < 0.02, item.item_id
            diff = np.abs(frames[0].astype(int) - frame.astype(int)).mean(axis=-1)
            x0, y0, x1, y1 = event_box(event["position"], 160, 96)
            assert diff[y0:y1, x0:x1].mean() > 20  # the needle's box changes strongly


def test_second_build_reuses_files_and_is_deterministic(suite):
    cache, items, _ = suite
    mtimes = {it.video: Path(it.video).stat().st_mtime_ns for it in items}
    again = build_needle_suite(cache, TINY)
    assert again == items and [a.meta for a in again] == [i.meta for i in items]
    assert {it.video: Path(it.video).stat().st_mtime_ns for it in again} == mtimes


def test_deterministic_across_caches_and_seed_changes_needles(suite, tmp_path):
    _, items, _ = suite
    same = build_needle_suite(tmp_path / "a", TINY)
    assert [(i.item_id, i.question, i.options, i.answer, i.meta) for i in same] == \
        [(i.item_id, i.question, i.options, i.answer, i.meta) for i in items]
    with open_video(same[0].video) as a, open_video(items[0].video) as b:
        assert np.array_equal(a.decode([0, 2])[1], b.decode([0, 2])[1])
    other = build_needle_suite(tmp_path / "b", NeedleConfig(
        lengths_s=(10, 20), depths=(0, 1), fps=1, needle_len_s=3, seed=1))
    assert [i.meta["seed"] for i in other] != [i.meta["seed"] for i in items]


def test_per_cell_gives_distinct_needles(tmp_path):
    config = NeedleConfig(lengths_s=(5,), depths=(0.5,), per_cell=3, fps=1, needle_len_s=2)
    items = build_needle_suite(tmp_path, config)
    assert [i.item_id for i in items] == [f"len5_depth0.50_k{k}" for k in range(3)]
    assert len({i.video for i in items}) == 3
    assert len({i.meta["seed"] for i in items}) == 3


def test_config_defaults():
    config = NeedleConfig()
    assert config.lengths_s == (30.0, 60.0, 120.0, 240.0)
    assert config.depths == (0.0, 0.25, 0.5, 0.75, 1.0)
    assert (config.per_cell, config.fps, config.needle_len_s, config.seed) == (1, 1, 5, 0)
    assert (config.width, config.height) == (160, 96)
    assert config.n_videos == 20 and config.n_frames == 2250
    assert NeedleConfig(lengths_s=[10, 20]).lengths_s == (10.0, 20.0)  # lists become tuples


@pytest.mark.parametrize("kwargs, message", [
    ({"lengths_s": ()}, "lengths_s"),
    ({"lengths_s": (30, -1)}, "lengths_s"),
    ({"lengths_s": (30, 30.0)}, "distinct"),
    ({"depths": ()}, "depths"),
    ({"depths": (0, 1.5)}, r"\[0, 1\]"),
    ({"depths": (float("nan"),)}, r"\[0, 1\]"),
    ({"depths": (0.5, 0.501)}, "distinct"),
    ({"per_cell": 0}, "per_cell"),
    ({"per_cell": 1.5}, "per_cell"),
    ({"fps": 0}, "fps"),
    ({"needle_len_s": 0}, "needle_len_s"),
    ({"needle_len_s": 40}, "shortest"),
    ({"fps": 0.1}, "between frames"),
    ({"width": 15}, "width"),
    ({"height": 97}, "height"),
])
def test_config_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        NeedleConfig(**kwargs)


def test_needle_grid_pivot():
    records = [
        {"length_s": 60, "depth": 0.5, "correct": True},
        {"length_s": 60, "depth": 0.5, "correct": False},
        {"length_s": 30, "depth": 0.5, "correct": 1},
        {"length_s": 30, "depth": 0.0, "correct": 0, "extra": "ignored"},
        {"length_s": 120, "depth": 1.0, "correct": True},
    ]
    grid = needle_grid(records)
    assert list(grid.index) == [0.0, 0.5, 1.0]
    assert list(grid.columns) == [30.0, 60.0, 120.0]
    assert (grid.index.name, grid.columns.name) == ("depth", "length_s")
    assert grid.loc[0.5, 60] == 0.5
    assert grid.loc[0.5, 30] == 1.0
    assert grid.loc[0.0, 30] == 0.0
    assert grid.loc[1.0, 120] == 1.0
    assert math.isnan(grid.loc[0.0, 60]) and math.isnan(grid.loc[1.0, 30])
    assert int(grid.isna().sum().sum()) == 5
    assert needle_grid(pd.DataFrame(records)).equals(grid)


def test_needle_grid_rejects_bad_records():
    with pytest.raises(ValueError, match="correct"):
        needle_grid([{"length_s": 30, "depth": 0}])
    with pytest.raises(ValueError, match="0/1"):
        needle_grid([{"length_s": 30, "depth": 0, "correct": 0.5}])


def test_heatmap_png(tmp_path):
    grid = needle_grid([
        {"length_s": 30, "depth": 0.0, "correct": True},
        {"length_s": 240, "depth": 0.0, "correct": False},
        {"length_s": 240, "depth": 1.0, "correct": True},
    ])
    out = heatmap_png(grid, tmp_path / "plots" / "needle.png", title="tiny model")
    assert out == tmp_path / "plots" / "needle.png"
    assert [p.name for p in out.parent.iterdir()] == ["needle.png"]  # no temp file left
    with Image.open(out) as image:
        assert image.format == "PNG"
        assert image.mode in ("RGB", "RGBA")
        assert image.width > 100 and image.height > 100
        pixels = np.asarray(image.convert("RGB")).reshape(-1, 3).astype(int)
    # a red (0%) and a green (100%) cell are drawn
    assert ((pixels[:, 0] > 150) & (pixels[:, 1] < 60) & (pixels[:, 2] < 60)).any()
    assert ((pixels[:, 1] > 90) & (pixels[:, 0] < 60) & (pixels[:, 2] < 90)).any()
    with pytest.raises(ValueError, match="empty"):
        heatmap_png(grid.iloc[0:0], tmp_path / "empty.png", title="x")
