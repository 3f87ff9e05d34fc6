"""Tests for tpo.media.synth: real H.264 files rendered into tmp_path and decoded with PyAV."""

from __future__ import annotations

import json
from dataclasses import replace
from fractions import Fraction

import av
import numpy as np
import pytest

from tpo.media import synth
from tpo.media.synth import (COLORS, DEMO_SPECS, VideoSpec, build_demo_library, event_box, ground_truth,
                       needle_spec, number_event, random_events, render_video, shape_event)

# 12 s at 4 fps = 48 frames; a keyframe every 10 frames. Events in different corners,
# with edges on and between frame times (frames are at multiples of 0.25 s).
SPEC = VideoSpec("probe", 12, fps=4, gop=10, seed=7, events=(
    shape_event(1.0, 3.5, "circle", "red", "top-left"),
    number_event(5.1, 8.0, 7, "cyan", "bottom-right"),
    shape_event(9.0, 11.0, "star", "yellow", "center"),
))


def decode(path):
    """All frames as RGB arrays, their keyframe flags, and the video stream's facts."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        info = {"rate": stream.average_rate, "duration_s": container.duration / 1e6,
                "width": stream.codec_context.width, "height": stream.codec_context.height,
                "pix_fmt": stream.codec_context.pix_fmt, "codec": stream.codec_context.name}
        frames, keys = [], []
        for frame in container.decode(stream):
            frames.append(frame.to_ndarray(format="rgb24"))
            keys.append(frame.key_frame)
    return frames, keys, info


def color_share(frame, event, width, height):
    """Share of the event's box whose pixels are close to the event's colour."""
    x0, y0, x1, y1 = event_box(event.position, width, height)
    region = frame[y0:y1, x0:x1].astype(int)
    distance = np.linalg.norm(region - np.array(COLORS[event.color]), axis=-1)
    return float((distance < 60).mean())


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    path = tmp_path_factory.mktemp("probe") / "probe.mp4"
    calls = []
    truth = render_video(SPEC, path, progress=lambda done, total: calls.append((done, total)))
    return path, truth, calls, decode(path)


def test_video_decodes_to_the_spec(rendered):
    _, _, _, (frames, _, info) = rendered
    assert len(frames) == SPEC.n_frames == 48
    assert info["rate"] == Fraction(4)
    assert info["duration_s"] == pytest.approx(12, abs=0.25)
    assert (info["width"], info["height"]) == (320, 180)
    assert (info["pix_fmt"], info["codec"]) == ("yuv420p", "h264")
    assert frames[0].shape == (180, 320, 3)


def test_keyframe_every_gop_frames(rendered):
    keys = rendered[3][1]
    assert [i for i, key in enumerate(keys) if key] == [0, 10, 20, 30, 40]


def test_background_moves(rendered):
    frames = rendered[3][0]
    # frames 0 and 2 (0.5 s apart) show no event: only the drifting background differs,
    # by far more than codec noise (a static background differs by well under 1 level)
    assert np.abs(frames[0].astype(int) - frames[2].astype(int)).mean() > 2


def test_event_pixels_present_exactly_in_their_span(rendered):
    frames = rendered[3][0]
    for i, frame in enumerate(frames):
        t = i / SPEC.fps
        for event in SPEC.events:
            share = color_share(frame, event, SPEC.width, SPEC.height)
            if event.start_s <= t < event.end_s:
                assert share > 0.15, (event.label, t, share)
            else:
                assert share < 0.01, (event.label, t, share)


def test_ground_truth_json_matches_spec(rendered):
    path, truth, _, _ = rendered
    saved = json.loads(path.with_suffix(".json").read_text())
    assert saved == truth == json.loads(json.dumps(ground_truth(SPEC)))
    assert (saved["name"], saved["duration_s"], saved["fps"], saved["width"], saved["height"],
            saved["n_frames"], saved["gop"]) == ("probe", 12, 4, 320, 180, 48, 10)
    assert [(e["start_s"], e["end_s"], e["kind"], e["label"], e["color"], e["shape"], e["position"])
            for e in saved["events"]] == [
        (1.0, 3.5, "shape", "red circle", "red", "circle", "top-left"),
        (5.1, 8.0, "number", "7", "cyan", None, "bottom-right"),
        (9.0, 11.0, "shape", "yellow star", "yellow", "star", "center"),
    ]
    for item in saved["events"] + saved["questions"]:
        assert item["question"] and item["answer"] in item["options"]


def test_event_questions_and_answers():
    circle, seven, _ = SPEC.events
    assert circle.question == "What colour is the circle in the top-left of the frame?"
    assert circle.answer == "red" and len(circle.options) == 4
    assert seven.question == "Which number is shown in cyan?" and seven.answer == "7"


def test_whole_video_questions():
    questions = ground_truth(SPEC)["questions"]
    counts = {q["question"]: q["answer"] for q in questions if q["type"] == "count"}
    assert counts == {"How many shapes appear in the video?": "2",
                      "How many numbers appear in the video?": "1"}
    (order,) = [q for q in questions if q["type"] == "order"]
    first, second = sorted(order["options"], key=order["question"].index)
    assert order["question"] == f"Which appeared first, {first} or {second}?"
    names = ["the red circle", "the cyan number 7", "the yellow star"]
    assert order["answer"] == min(order["options"], key=names.index)

    countdown = next(s for s in DEMO_SPECS if s.name == "countdown")
    sequence = next(q for q in ground_truth(countdown)["questions"] if q["type"] == "sequence")
    assert sequence["answer"] == "5, 4, 3, 2, 1"
    assert len(set(sequence["options"])) == len(sequence["options"]) >= 2


def test_progress_reports_frames(rendered):
    calls = rendered[2]
    assert calls[-1] == (48, 48)
    assert [done for done, _ in calls] == sorted({done for done, _ in calls})


def test_clock_is_off_by_default_and_toggleable(tmp_path):
    plain = VideoSpec("plain", 3, fps=2, seed=1)
    render_video(plain, tmp_path / "plain.mp4")
    render_video(replace(plain, clock=True), tmp_path / "clock.mp4")
    frames_plain = decode(tmp_path / "plain.mp4")[0]
    frames_clock = decode(tmp_path / "clock.mp4")[0]
    top_centre = (slice(0, 16), slice(140, 180))
    differ = [np.abs(a[top_centre].astype(int) - b[top_centre].astype(int)).max() > 100
              for a, b in zip(frames_plain, frames_clock)]
    assert all(differ)


def test_failed_render_leaves_no_file(tmp_path):
    def interrupt(done, total):
        if done > 10:
            raise KeyboardInterrupt

    path = tmp_path / "killed.mp4"
    with pytest.raises(KeyboardInterrupt):
        render_video(replace(SPEC, name="killed"), path, progress=interrupt)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_events_are_spread_non_overlapping_and_deterministic(seed):
    events = random_events(300, 10, seed)
    assert events == random_events(300, 10, seed)
    assert events != random_events(300, 10, seed + 100)
    assert len(events) == 10
    for i, event in enumerate(events):
        assert 30 * i <= event.start_s < event.end_s <= 30 * (i + 1)  # one per 30 s slot
        assert 5 <= event.end_s - event.start_s <= 20 + 0.1
    for before, after in zip(events, events[1:]):
        assert after.start_s - before.end_s >= 0.9
    assert len({e.question for e in events}) == 10
    VideoSpec("random", 300, events=events)  # valid as a spec


def test_random_events_rejects_what_cannot_fit():
    with pytest.raises(ValueError):
        random_events(30, 10, seed=0)


@pytest.mark.parametrize("depth", [0.0, 0.25, 0.5, 1.0])
def test_needle_at_requested_depth(depth):
    spec = needle_spec(600, depth, seed=3, needle_len_s=10)
    (needle,) = spec.events
    assert needle.start_s == pytest.approx(depth * 590, abs=0.05)
    assert needle.end_s - needle.start_s == pytest.approx(10, abs=0.05)
    assert 0 <= needle.start_s and needle.end_s <= 600
    assert spec.fps == 1


def test_needle_hours_long_is_cheap_to_describe_and_rendered_needle_is_visible(tmp_path):
    two_hours = needle_spec(7200, 0.5, seed=1)
    assert two_hours.n_frames == 7200 and two_hours.duration_s == 7200

    spec = needle_spec(40, 0.5, seed=2, fps=2, needle_len_s=6)
    render_video(spec, tmp_path / "needle.mp4")
    frames = decode(tmp_path / "needle.mp4")[0]
    (needle,) = spec.events
    shown = [color_share(f, needle, spec.width, spec.height) > 0.15 for f in frames]
    assert [i / spec.fps for i, on in enumerate(shown) if on] == [17.0 + k / 2 for k in range(12)]


def test_spec_validation():
    circle = shape_event(1, 5, "circle", "red")
    with pytest.raises(ValueError, match="non-overlapping"):
        VideoSpec("x", 10, events=(circle, shape_event(4, 6, "square", "blue")))
    with pytest.raises(ValueError, match="ends after"):
        VideoSpec("x", 4, events=(circle,))
    with pytest.raises(ValueError, match="share a question"):
        VideoSpec("x", 20, events=(circle, shape_event(6, 8, "circle", "blue")))
    with pytest.raises(ValueError, match="even"):
        VideoSpec("x", 10, width=321)
    with pytest.raises(ValueError, match="shape"):
        shape_event(1, 2, "blob", "red")


def test_demo_specs_are_a_varied_library():
    assert 4 <= len(DEMO_SPECS) <= 5
    assert len({s.name for s in DEMO_SPECS}) == len(DEMO_SPECS)
    assert all(60 <= s.duration_s <= 300 and s.events and not s.clock for s in DEMO_SPECS)
    events = [e for s in DEMO_SPECS for e in s.events]
    assert {e.kind for e in events} == {"shape", "number"}
    assert {e.shape for e in events if e.shape} == set(synth.SHAPES)
    for spec in DEMO_SPECS:
        for q in ground_truth(spec)["questions"]:
            assert q["answer"] in q["options"] and len(set(q["options"])) == len(q["options"]) >= 2


def test_build_demo_library_renders_missing_and_skips_present(tmp_path):
    specs = (VideoSpec("a", 4, fps=4, events=(shape_event(1, 2, "square", "green"),)),
             VideoSpec("b", 4, fps=4, seed=1))
    paths = build_demo_library(tmp_path, specs)
    assert paths == [tmp_path / "a.mp4", tmp_path / "b.mp4"]
    assert all(p.is_file() and p.with_suffix(".json").is_file() for p in paths)
    mtimes = [p.stat().st_mtime_ns for p in paths]

    paths[1].unlink()
    calls = []
    assert build_demo_library(tmp_path, specs, progress=lambda d, t: calls.append((d, t))) == paths
    assert paths[0].stat().st_mtime_ns == mtimes[0]  # untouched
    assert len(decode(paths[1])[0]) == 16  # re-rendered
    assert calls[-1] == (32, 32) and calls[0][0] == 16  # the skipped video counts as done

    paths[0].with_suffix(".json").unlink()  # a video without its JSON is incomplete
    changed = (specs[0], replace(specs[1], seed=2))  # a changed spec is stale
    build_demo_library(tmp_path, changed)
    assert json.loads(paths[1].with_suffix(".json").read_text())["seed"] == 2
    assert paths[0].with_suffix(".json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "a.mp4", "b.json", "b.mp4"]
