"""tpo.media.video on real encoded files: exact timestamps, the right frames, clear errors.

Every clip is encoded here (tests/media.py) and every frame shows its own index, so each test
checks that the pixels returned are those of the frame the index and timestamp claim.
"""

from __future__ import annotations

import dataclasses
import pickle
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from media import UNREADABLE_KINDS, make_bad_files, make_video, read_index

import tpo.media.readers  # noqa: E402
from tpo.media.video import Frames, VideoError, VideoInfo, open_video, probe, sample  # noqa: E402

FPS = 10
VFR_TIMES = [0.0, 0.1, 0.2, 0.5, 0.6, 1.5, 1.6, 1.7, 3.0, 3.05, 3.1, 4.0]  # 1.7 -> 3.0 held


@pytest.fixture(scope="session")
def clips(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("clips")
    return {
        # 40 frames, keyframe every 10: sampling seeks across GOPs
        "cfr": make_video(d / "cfr.mp4", duration_s=4, fps=FPS, gop=10),
        "vfr": make_video(d / "vfr.mp4", vfr_times=VFR_TIMES, fps=FPS),
        # coded 96x64, shown turned right: upright 64x96
        "rotated": make_video(d / "rotated.mp4", rotation=90, size=(96, 64)),
        "vp9": make_video(d / "vp9.webm", codec="libvpx-vp9", gop=8, audio=True),
        # x265 defaults to open GOPs, where decord returns wrong frames after a seek
        "hevc": make_video(d / "hevc.mkv", duration_s=4, codec="libx265", gop=10),
        "hevc_closed": make_video(d / "hevc_closed.mkv", duration_s=4, codec="libx265", gop=10,
                                  options={"x265-params": "open-gop=0"}),
        # MPEG-TS: starts at 1.4 s and seeks by estimate
        "ts": make_video(d / "offset.ts", duration_s=4, gop=10),
        "long": make_video(d / "long.mp4", duration_s=600, fps=1, gop=250),  # 10 min at 1 fps
    }


@pytest.fixture(scope="session")
def bad(tmp_path_factory) -> dict[str, Path]:
    return make_bad_files(tmp_path_factory.mktemp("bad"))


def upright_index(image: np.ndarray, rotation: int = 0) -> int:
    """Index shown by a sampled frame of a video with this clockwise display rotation."""
    return read_index(np.rot90(image, rotation // 90))


def assert_frames_true(frames: Frames, rotation: int = 0) -> None:
    """Each image is the frame its index names, timestamps ascend."""
    assert frames.images is not None and len(frames.images) == len(frames.indices)
    assert [upright_index(im, rotation) for im in frames.images] == frames.indices
    assert frames.timestamps == sorted(frames.timestamps)
    assert all(im.dtype == np.uint8 and im.ndim == 3 and im.shape[2] == 3 for im in frames.images)


# ---------------------------------------------------------------------------------- probe


def test_probe_cfr_h264_mp4(clips):
    info = probe(clips["cfr"])
    assert info == VideoInfo(path=str(clips["cfr"]), duration_s=4.0, fps=10.0, n_frames=40,
                             width=64, height=48, rotation=0, codec="h264", backend="pyav")
    assert info.as_dict()["n_frames"] == 40 and set(info.as_dict()) == {
        "path", "duration_s", "fps", "n_frames", "width", "height", "rotation", "codec",
        "backend"}


def test_probe_vfr(clips):
    info = probe(clips["vfr"])
    assert info.n_frames == len(VFR_TIMES)
    assert info.duration_s == pytest.approx(VFR_TIMES[-1] + 1 / FPS)
    assert info.fps == pytest.approx(len(VFR_TIMES) / info.duration_s)
    with open_video(clips["vfr"]) as video:
        assert video.times.tolist() == VFR_TIMES  # the frames' own times, exactly


def test_probe_rotated_reports_upright_size(clips):
    info = probe(clips["rotated"])
    assert (info.width, info.height, info.rotation) == (64, 96, 90)
    frames = sample(clips["rotated"], 4)
    assert all(im.shape == (96, 64, 3) for im in frames.images)
    assert_frames_true(frames, rotation=90)


@pytest.mark.parametrize("rotation", [180, 270])
def test_other_rotations_upright(tmp_path, rotation):
    path = make_video(tmp_path / f"r{rotation}.mp4", rotation=rotation, size=(96, 64))
    info = probe(path)
    assert info.rotation == rotation
    assert (info.width, info.height) == ((96, 64) if rotation == 180 else (64, 96))
    assert_frames_true(sample(path, 5), rotation=rotation)


@pytest.mark.parametrize("name, codec, n_frames, backend", [
    ("vp9", "vp9", 20, "pyav"),  # "auto" reads with PyAV everywhere (parallel where it can)
    ("hevc", "hevc", 40, "pyav"),
    ("hevc_closed", "hevc", 40, "pyav"),
    ("ts", "h264", 40, "pyav"),
])
def test_probe_codecs_and_reader(clips, name, codec, n_frames, backend):
    info = probe(clips[name])
    assert (info.codec, info.n_frames, info.fps, info.backend) == (codec, n_frames, 10.0, backend)
    assert info.duration_s == pytest.approx(n_frames / FPS)


def test_start_offset_is_removed(clips):
    # MPEG-TS streams start at 1.4 s by default; times count from the stream start
    with open_video(clips["ts"]) as video:
        assert video.times[:3].tolist() == [0.0, 0.1, 0.2]
        assert_frames_true(video.sample(8))


def test_one_frame_video(bad):
    path = bad["one_frame"]
    info = probe(path)
    assert (info.n_frames, info.duration_s, info.fps) == (1, pytest.approx(0.1), pytest.approx(10))
    frames = sample(path, 32)
    assert (frames.indices, frames.timestamps) == ([0], [0.0])
    assert_frames_true(frames)
    assert sample(path, 4, segment=(0, 0.05)).indices == [0]
    with pytest.raises(ValueError, match="no frame"):
        sample(path, 4, segment=(0, 1), exclude_segment=True)


def test_non_ascii_name(bad):
    path = bad["non_ascii"]
    assert probe(path).path == str(path) and "été" in str(path)
    assert_frames_true(sample(path, 5))


# ---------------------------------------------------------------------------------- plans


@pytest.mark.parametrize("n", [1, 3, 7, 16, 40])
def test_uniform_cfr_exact(clips, n):
    frames = sample(clips["cfr"], n)
    assert len(frames.indices) == n
    assert frames.timestamps == [k / FPS for k in frames.indices]  # exact, not approximately
    assert_frames_true(frames)
    # each frame is the one on screen at the centre of its bin of the 4 s timeline
    for i, t in enumerate(frames.timestamps):
        centre = (i + 0.5) * 4.0 / n
        assert t <= centre < t + 1 / FPS


def test_uniform_never_more_frames_than_video(clips):
    frames = sample(clips["cfr"], 100, decode=False)
    assert frames.indices == list(range(40))


def test_uniform_vfr_picks_by_time(clips):
    with open_video(clips["vfr"]) as video:
        duration = video.info.duration_s
        indices = video.uniform(4)
        centres = [(i + 0.5) * duration / 4 for i in range(4)]
        shown = [int(np.searchsorted(video.times, c, side="right")) - 1 for c in centres]
        assert indices == shown  # by time: evenly spaced indices would be [1, 4, 7, 10]
        assert_frames_true(video.frames(indices))


def test_uniform_vfr_held_frame_gives_neighbour_not_fewer(clips):
    # 1.7 s -> 3.0 s is one frame held for 1.3 s: two bin centres land on it
    with open_video(clips["vfr"]) as video:
        indices = video.uniform(10)
        assert len(indices) == len(set(indices)) == 10


def test_segment_half_open_and_exact(clips):
    frames = sample(clips["cfr"], 10, segment=(1.0, 2.0))
    assert frames.indices == list(range(10, 20))  # 1.0 in, 2.0 out
    assert_frames_true(frames)
    fewer = sample(clips["cfr"], 8, segment=(1.0, 1.35), decode=False)
    assert fewer.indices == [10, 11, 12, 13]
    spread = sample(clips["cfr"], 4, segment=(1.0, 3.0), decode=False)
    assert spread.timestamps == [1.2, 1.7, 2.2, 2.7]  # bin centres of [1, 3)


def test_segment_past_the_end_is_clipped(clips):
    frames = sample(clips["cfr"], 4, segment=(3.0, 100.0), decode=False)
    assert frames.timestamps == [3.1, 3.3, 3.6, 3.8]


def test_excluding_cuts_the_segment_out(clips):
    seg = (1.0, 2.0)
    frames = sample(clips["cfr"], 15, segment=seg, exclude_segment=True)
    # 3 s remain: 15 bin centres on the joined timeline, mapped back across the cut
    centres = [(i + 0.5) * Fraction(3, 15) for i in range(15)]
    expected = [int((c if c < 1 else c + 1) * FPS) for c in centres]
    assert frames.indices == expected
    assert all(t < seg[0] or t >= seg[1] for t in frames.timestamps)
    assert_frames_true(frames)


@pytest.mark.parametrize("seg", [(0.0, 1.0), (1.0, 2.0), (2.95, 4.0), (0.45, 0.55), (3.0, 9.0)])
def test_segment_and_exclusion_never_overlap(clips, seg):
    with open_video(clips["vfr"]) as video:
        start, end = seg
        try:
            inside = video.segment(start, end, 16)
        except ValueError:
            inside = []  # the segment holds no frame
        outside = video.excluding(start, end, 16)
        assert all(start <= video.times[i] < end for i in inside)
        assert all(not start <= video.times[i] < end for i in outside)
        assert not set(inside) & set(outside)


@pytest.mark.parametrize("plan", [
    {},
    {"segment": (1.0, 3.0)},
    {"segment": (1.0, 3.0), "exclude_segment": True},
])
@pytest.mark.parametrize("seed", [None, 0, 7])
def test_sparse_is_a_subset_of_dense(clips, plan, seed):
    dense = sample(clips["cfr"], 16, decode=False, **plan)
    sparse = sample(clips["cfr"], 16, sparse=4, seed=seed, decode=False, **plan)
    assert len(sparse.indices) == 4
    assert set(sparse.indices) <= set(dense.indices)
    assert sparse.indices == sorted(sparse.indices)
    assert sparse == sample(clips["cfr"], 16, sparse=4, seed=seed, decode=False, **plan)


def test_sparse_even_and_random_picks(clips):
    with open_video(clips["long"]) as video:
        dense = video.uniform(64)
        assert video.sparse(dense, 8) == [dense[i] for i in range(4, 64, 8)]
        random_picks = {tuple(video.sparse(dense, 8, seed=s)) for s in range(5)}
        assert len(random_picks) > 1
        assert video.sparse(dense, 100) == dense


@pytest.mark.parametrize("kwargs, message", [
    ({"segment": (-1.0, 2.0)}, "0 <= start < end"),
    ({"segment": (2.0, 1.0)}, "0 <= start < end"),
    ({"segment": (2.0, 2.0)}, "0 <= start < end"),
    ({"segment": (4.0, 5.0)}, "starts after the end"),
    ({"segment": (1.01, 1.02)}, "holds no frame"),
    ({"segment": (0.0, 99.0), "exclude_segment": True}, "no frame"),
    ({"exclude_segment": True}, "needs a segment"),
    ({"n": 0}, "n must be a positive integer"),
    ({"sparse": 0}, "sparse must be a positive integer"),
    ({"max_side": 0}, "max_side must be a positive integer"),
])
def test_invalid_arguments(clips, kwargs, message):
    with pytest.raises(ValueError, match=message):
        sample(clips["cfr"], **kwargs)


def test_unknown_backend(clips):
    with pytest.raises(ValueError, match="backend"):
        open_video(clips["cfr"], backend="opencv")


# ---------------------------------------------------------------------------------- pixels


def test_decode_false_gives_same_plan_without_pixels(clips):
    cheap = sample(clips["cfr"], 8, segment=(0.5, 3.5), decode=False)
    full = sample(clips["cfr"], 8, segment=(0.5, 3.5))
    assert cheap.images is None
    assert (cheap.indices, cheap.timestamps) == (full.indices, full.timestamps)


def test_max_side_downscales_keeping_aspect(clips):
    small = sample(clips["cfr"], 4, max_side=32)
    assert all(im.shape == (24, 32, 3) for im in small.images)
    assert_frames_true(small)
    tall = sample(clips["rotated"], 2, max_side=48)
    assert all(im.shape == (48, 32, 3) for im in tall.images)
    assert sample(clips["cfr"], 1, max_side=1000).images[0].shape == (48, 64, 3)


def test_handle_decodes_any_order_and_repeats(clips):
    with open_video(clips["cfr"]) as video:
        images = video.decode([25, 3, 25, 39, 0])
        assert [read_index(im) for im in images] == [25, 3, 25, 39, 0]
        with pytest.raises(IndexError):
            video.decode([40])


def test_random_access_is_exact_on_every_reader(clips):
    rng = np.random.default_rng(0)
    for name in ("cfr", "hevc", "hevc_closed", "ts", "vp9"):
        for backend in ("auto", "pyav", "torchcodec"):
            if backend == "torchcodec" and name == "ts":
                continue  # torchcodec refuses MPEG-TS (tests/test_video_torchcodec.py)
            with open_video(clips[name], backend=backend) as video:
                for _ in range(3):
                    wanted = sorted(rng.choice(video.info.n_frames, 8, replace=False).tolist())
                    got = [read_index(im) for im in video.decode(wanted)]
                    assert got == wanted, (name, backend)


@pytest.mark.parametrize("name", ["cfr", "vfr", "rotated", "vp9", "hevc_closed", "long"])
def test_pyav_fallback_matches_decord(clips, name):
    with open_video(clips[name], backend="decord") as dec, \
            open_video(clips[name], backend="pyav") as pav:
        assert dataclasses.replace(pav.info, backend="decord") == dec.info
        assert pav.times.tolist() == dec.times.tolist()
        a, b = dec.sample(12), pav.sample(12)
        assert (a.indices, a.timestamps) == (b.indices, b.timestamps)
        # both convert YUV to RGB with FFmpeg's swscale defaults: identical, not just close
        assert all(np.array_equal(x, y) for x, y in zip(a.images, b.images))


def test_narrow_frames_never_come_back_misshapen(tmp_path):
    # decord 0.6 returns (H, 48, 4)-shaped garbage for 48 px wide frames (row padding);
    # the handle must notice and hand back correct frames from PyAV instead
    path = make_video(tmp_path / "narrow.mp4", rotation=90, size=(64, 48))
    with open_video(path) as video:
        frames = video.sample(4)
        assert all(im.shape == (64, 48, 3) for im in frames.images)
        assert_frames_true(frames, rotation=90)


def test_forced_decord_never_returns_misshapen_frames(tmp_path):
    path = make_video(tmp_path / "narrow.mp4", rotation=90, size=(64, 48))
    with open_video(path, backend="decord") as video:
        try:
            frames = video.sample(4)
        except VideoError as err:  # decord 0.6: "decord cannot decode this file (...)"
            assert "decord" in err.reason
        else:
            assert_frames_true(frames, rotation=90)


def test_decode_false_decodes_nothing(clips, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("pixels decoded")

    monkeypatch.setattr(tpo.media.readers.PyAVReader, "decode", refuse)
    monkeypatch.setattr(tpo.media.readers.PyAVReader, "_open", refuse)  # not even opened
    monkeypatch.setattr(tpo.media.readers.DecordReader, "__init__", refuse)
    monkeypatch.setattr(tpo.media.readers.TorchCodecReader, "__init__", refuse)
    frames = sample(clips["long"], 64, segment=(60, 300), sparse=8, seed=1, decode=False)
    assert len(frames.indices) == 8 and frames.images is None


def test_long_video_64_frames(clips):
    with open_video(clips["long"]) as video:
        assert (video.info.n_frames, video.info.duration_s) == (600, 600.0)
        frames = video.sample(64)
        assert len(frames.indices) == 64
        assert frames.timestamps == [float(k) for k in frames.indices]
        assert_frames_true(frames)
        segment = video.sample(8, segment=(300.0, 360.0))
        assert all(300 <= t < 360 for t in segment.timestamps)
        assert_frames_true(segment)


# ---------------------------------------------------------------------------------- errors


REASONS = {
    "empty": "empty file",
    "text": "not a video file",
    "truncated_mp4": "truncated",
    "truncated_faststart_mp4": "truncated",
    "truncated_webm": "truncated",
    "audio_only": "no video stream",
    "image": "not a video file",
}


@pytest.mark.parametrize("kind", UNREADABLE_KINDS)
@pytest.mark.parametrize("call", [
    probe,
    lambda p: sample(p, 8, decode=False),
    lambda p: open_video(p, backend="pyav"),
])
def test_bad_files_raise_video_error(bad, kind, call):
    path = bad[kind]
    with pytest.raises(VideoError) as caught:
        call(path)
    err = caught.value
    assert err.path == str(path)
    assert REASONS[kind] in err.reason
    assert str(err) == f"{path}: {err.reason}"


def test_missing_path_and_directory(tmp_path):
    with pytest.raises(VideoError, match="no such file"):
        probe(tmp_path / "nope.mp4")
    with pytest.raises(VideoError, match="is a directory"):
        probe(tmp_path)


def test_video_error_pickles():
    err = pickle.loads(pickle.dumps(VideoError("/x/a.mp4", "empty file")))
    assert (err.path, err.reason, str(err)) == ("/x/a.mp4", "empty file", "/x/a.mp4: empty file")
