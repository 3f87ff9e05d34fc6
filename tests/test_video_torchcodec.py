"""torchcodec as a reader, parallel keyframe-group decoding and the packet-index cache.

Every clip is a real encoded file (tests/media.py) whose frames show their own index, so each
test checks that the pixels returned are those of the frame the index and timestamp claim;
and every reader is compared with PyAV's one-decoder path pixel for pixel.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from media import make_video, read_index

import tpo.media.readers  # noqa: E402
from tpo.media.index import IndexCache, VideoError, index_file  # noqa: E402
from tpo.media.video import open_video, sample  # noqa: E402

FPS = 10
VFR_TIMES = [0.0, 0.1, 0.2, 0.5, 0.6, 1.5, 1.6, 1.7, 3.0, 3.05, 3.1, 4.0]
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("tc_clips")
    return {
        "cfr": make_video(d / "cfr.mp4", duration_s=4, fps=FPS, gop=10),
        # exactly one keyframe every 10 frames (no extra ones at "scene cuts")
        "regular": make_video(d / "regular.mp4", duration_s=4, fps=FPS, gop=10,
                              options={"sc_threshold": "0"}),
        "vfr": make_video(d / "vfr.mp4", vfr_times=VFR_TIMES, fps=FPS),
        "rot90": make_video(d / "rot90.mp4", rotation=90, size=(96, 64), gop=5),
        "rot180": make_video(d / "rot180.mp4", rotation=180, size=(96, 64), gop=5),
        "rot270": make_video(d / "rot270.mkv", rotation=270, size=(96, 64), gop=5),
        "vp9": make_video(d / "vp9.webm", codec="libvpx-vp9", gop=8, audio=True),
        # x265's default open GOPs: leading pictures shown before their keyframe
        "hevc": make_video(d / "hevc.mkv", duration_s=4, codec="libx265", gop=10),
        "hevc_closed": make_video(d / "hevc_closed.mp4", duration_s=4, codec="libx265",
                                  gop=10, options={"x265-params": "open-gop=0"}),
        "narrow": make_video(d / "narrow.mp4", rotation=90, size=(64, 48)),  # 48 px wide
        "faststart": make_video(d / "fast.mp4", duration_s=3, gop=7, faststart=True,
                                audio=True),
        "long": make_video(d / "long.mp4", duration_s=300, fps=1, gop=25),
        "ts": make_video(d / "offset.ts", duration_s=4, gop=10),  # MPEG-TS, starts at 1.4 s
    }


SAFE = ["cfr", "vfr", "rot90", "rot180", "rot270", "vp9", "hevc", "hevc_closed", "narrow",
        "faststart", "long"]


def shown(images: list[np.ndarray], rotation: int) -> list[int]:
    """The frame numbers drawn in upright frames of a video with this clockwise rotation."""
    return [read_index(np.rot90(im, rotation // 90)) for im in images]


# ------------------------------------------------------------------------------ torchcodec


@pytest.mark.parametrize("name", SAFE)
def test_torchcodec_matches_pyav_exactly(clips, name):
    """Same info, times, plans and pixels as PyAV's one-decoder path, on every kind of file."""
    with open_video(clips[name], backend="torchcodec") as tc, \
            open_video(clips[name], backend="pyav", workers=1) as pav:
        assert tc.info.backend == "torchcodec"
        assert dataclasses.replace(tc.info, backend="pyav") == pav.info
        assert tc.times.tolist() == pav.times.tolist()
        a, b = tc.sample(16), pav.sample(16)
        assert (a.indices, a.timestamps) == (b.indices, b.timestamps)
        # both convert YUV -> RGB with swscale's defaults (torchcodec with the system's
        # FFmpeg, PyAV with its bundled one): identical, not just close
        assert all(x.shape == y.shape and np.array_equal(x, y)
                   for x, y in zip(a.images, b.images))
        assert shown(a.images, tc.info.rotation) == a.indices


@pytest.mark.parametrize("name", ["cfr", "hevc", "hevc_closed", "vp9", "long"])
def test_torchcodec_random_access_is_exact(clips, name):
    rng = np.random.default_rng(1)
    with open_video(clips[name], backend="torchcodec") as video:
        for _ in range(4):
            wanted = sorted(rng.choice(video.info.n_frames, 9, replace=False).tolist())
            assert [read_index(im) for im in video.decode(wanted)] == wanted


def test_torchcodec_max_side_same_as_pyav(clips):
    a = sample(clips["cfr"], 5, max_side=32)
    with open_video(clips["cfr"], backend="torchcodec") as video:
        b = video.sample(5, max_side=32)
    assert all(im.shape == (24, 32, 3) for im in b.images)
    assert all(np.array_equal(x, y) for x, y in zip(a.images, b.images))


def test_torchcodec_refuses_mpeg_ts_rather_than_return_wrong_frames(clips):
    # torchcodec 0.17 seeks by estimate in MPEG-TS and returns other frames there
    with pytest.raises(VideoError, match="torchcodec seeks inexactly in mpegts"):
        open_video(clips["ts"], backend="torchcodec")
    with open_video(clips["ts"]) as video:  # "auto" reads it exactly with PyAV
        frames = video.sample(8)
        assert frames.timestamps == [k / FPS for k in frames.indices]
        assert [read_index(im) for im in frames.images] == frames.indices


def test_torchcodec_unavailable_is_a_clear_error_and_auto_does_not_need_it(clips, monkeypatch):
    monkeypatch.setattr(tpo.media.readers, "_torchcodec_decoders",
                        lambda: "torchcodec cannot be loaded (libavutil.so: not found)")
    with pytest.raises(VideoError) as caught:
        open_video(clips["cfr"], backend="torchcodec")
    assert caught.value.reason == "torchcodec cannot be loaded (libavutil.so: not found)"
    frames = sample(clips["cfr"], 4)
    assert [read_index(im) for im in frames.images] == frames.indices


def test_torchcodec_frames_are_checked_against_the_index(clips, monkeypatch):
    """A decoder that hands back another frame than asked is refused, never passed on."""
    from torchcodec.decoders import VideoDecoder

    real = VideoDecoder.get_frames_at
    monkeypatch.setattr(VideoDecoder, "get_frames_at",
                        lambda self, idx: real(self, [i + 1 for i in idx]))  # off by one
    with open_video(clips["cfr"], backend="torchcodec", workers=1) as video:
        with pytest.raises(VideoError, match="torchcodec returned other frames than asked"):
            video.decode([3, 17])


def test_device_arguments_are_checked(clips):
    with pytest.raises(ValueError, match="device"):
        open_video(clips["cfr"], device="gpu")
    with pytest.raises(ValueError, match="only torchcodec decodes on cuda"):
        open_video(clips["cfr"], backend="decord", device="cuda")
    with pytest.raises(ValueError, match="workers must be a positive integer"):
        open_video(clips["cfr"], workers=0)


def _cuda() -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is pinned
        return False
    return torch.cuda.is_available()


@pytest.mark.skipif(not _cuda(), reason="needs an NVIDIA GPU (NVDEC)")
def test_nvdec_gives_the_same_frames_within_colour_tolerance(clips):
    """NVDEC converts YUV -> RGB with its own kernels: the same frames, pixels within a few
    levels of swscale's (mean absolute difference <= 2 of 255, the frame numbers readable)."""
    for name in ("cfr", "long", "hevc_closed"):
        with open_video(clips[name], device="cuda") as gpu, \
                open_video(clips[name], backend="pyav") as cpu:
            if gpu.info.backend != "torchcodec":
                pytest.skip(f"NVDEC cannot decode {name} here")
            a, b = gpu.sample(12), cpu.sample(12)
            assert (a.indices, a.timestamps) == (b.indices, b.timestamps)
            assert [read_index(im) for im in a.images] == a.indices
            for x, y in zip(a.images, b.images):
                assert x.shape == y.shape
                assert np.abs(x.astype(int) - y.astype(int)).mean() <= 2


def test_auto_never_loads_torch():
    """The app process samples and shows frames with "auto": it must not import torch."""
    code = ("import sys; sys.path.insert(0, 'tests'); from pathlib import Path; "
            "import tempfile; from media import make_video; from tpo.media.video import sample; "
            "d = Path(tempfile.mkdtemp()); p = make_video(d / 'a.mp4', duration_s=3, gop=5); "
            "f = sample(p, 6, max_side=32); assert len(f.images) == 6; "
            "print(sorted({'torch', 'torchcodec'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout.strip()
    assert out == "[]"


# ------------------------------------------------------------------- parallel GOP decoding


def test_keyframe_groups(clips):
    index = index_file(str(clips["regular"]))  # a keyframe every 10 frames
    assert index.keyframe_pts.tolist() == [int(index.pts[k]) for k in (0, 10, 20, 30)]
    assert index.keyframe_groups([0, 5, 9, 10, 25, 39]) == [[0, 5, 9], [10], [25], [39]]
    assert index.keyframe_groups([]) == []
    assert [index.decode_cost(g) for g in ([0, 5, 9], [10], [25], [39])] == [10, 1, 6, 10]


def test_open_gop_leading_pictures_group_with_the_keyframe_before(clips):
    index = index_file(str(clips["hevc"]))
    assert index.open_gop
    keys = index.keyframe_pts.tolist()
    groups = index.keyframe_groups(list(range(len(index.pts))))
    assert len(groups) == len(keys)
    for group, key in zip(groups, keys):
        assert int(index.pts[group[0]]) == key  # each group starts at its keyframe
        # and holds every frame shown before the next keyframe, leading pictures included
        assert all(key <= int(index.pts[i]) for i in group)


@pytest.mark.parametrize("name", ["cfr", "vfr", "hevc", "vp9", "rot270", "long"])
@pytest.mark.parametrize("backend", ["pyav", "torchcodec"])
def test_parallel_decoding_gives_the_same_pixels(clips, name, backend):
    with open_video(clips[name], backend="pyav", workers=1) as one, \
            open_video(clips[name], backend=backend, workers=4) as many:
        n = many.info.n_frames
        wanted = sorted(set(np.linspace(0, n - 1, min(n, 24)).astype(int).tolist()))
        a, b = one.decode(wanted), many.decode(wanted)
        assert all(np.array_equal(x, y) for x, y in zip(a, b))
        assert shown(b, many.info.rotation) == wanted


def test_parallel_decoding_uses_several_threads_and_keeps_order(clips, monkeypatch):
    """Three decoders really decode at once: each waits, on its first group, for the other
    two to be decoding too (a barrier that would time out if the work ran one by one)."""
    barrier, first_call = threading.Barrier(3, timeout=60), threading.local()
    seen, real = set(), tpo.media.readers.PyAVReader.decode

    def spy(self, indices, max_side):
        seen.add(threading.get_ident())
        if not getattr(first_call, "done", False):
            first_call.done = True
            barrier.wait()
        return real(self, indices, max_side)

    monkeypatch.setattr(tpo.media.readers.PyAVReader, "decode", spy)
    with open_video(clips["long"], workers=3) as video:  # 300 frames, >= 12 keyframes
        wanted = [299, 3, 150, 3, 77, 0, 260, 26]  # any order, repeats; >= 7 groups
        images = video.decode(wanted)
    assert [read_index(im) for im in images] == wanted
    assert len(seen) == 3


def test_one_keyframe_group_decodes_on_the_calling_thread(clips, monkeypatch):
    seen, real = set(), tpo.media.readers.PyAVReader.decode

    def spy(self, indices, max_side):
        seen.add(threading.get_ident())
        return real(self, indices, max_side)

    monkeypatch.setattr(tpo.media.readers.PyAVReader, "decode", spy)
    with open_video(clips["regular"], workers=3) as video:
        wanted = [20, 21, 25, 29]  # one keyframe group
        assert [read_index(im) for im in video.decode(wanted)] == wanted
    assert seen == {threading.get_ident()}


def test_an_error_in_a_worker_reaches_the_caller(clips, monkeypatch):
    real = tpo.media.readers.PyAVReader.decode

    def fail_late(self, indices, max_side):
        if indices[0] >= 200:
            raise VideoError(self._path, "file is truncated or corrupt (test)")
        return real(self, indices, max_side)

    monkeypatch.setattr(tpo.media.readers.PyAVReader, "decode", fail_late)
    with open_video(clips["long"], workers=2) as video:
        with pytest.raises(VideoError, match="truncated or corrupt"):
            video.decode(list(range(0, 300, 10)))


def test_inexact_containers_use_one_decoder(clips, monkeypatch):
    seen, real = set(), tpo.media.readers.PyAVReader.decode

    def spy(self, indices, max_side):
        seen.add(threading.get_ident())
        return real(self, indices, max_side)

    monkeypatch.setattr(tpo.media.readers.PyAVReader, "decode", spy)
    with open_video(clips["ts"], workers=4) as video:  # MPEG-TS seeks by estimate
        wanted = list(range(0, 40, 3))  # several keyframe groups
        assert [read_index(im) for im in video.decode(wanted)] == wanted
    assert seen == {threading.get_ident()}


# -------------------------------------------------------------------------- index cache


def test_reopening_uses_the_cached_index(clips, tmp_path):
    path = shutil.copy(clips["cfr"], tmp_path / "a.mp4")
    cache = IndexCache()
    with open_video(path, index_cache=cache) as first:
        plan = first.sample(8, decode=False)
    with open_video(path, index_cache=cache) as again:
        assert again.sample(8, decode=False) == plan
        assert again.times is first.times  # the very same index
    assert cache.stats == {"memory_hits": 1, "disk_hits": 0, "built": 1}


def test_a_changed_file_is_indexed_again(clips, tmp_path):
    path = tmp_path / "v.mp4"
    shutil.copy(clips["cfr"], path)
    cache = IndexCache()
    assert open_video(path, index_cache=cache).info.n_frames == 40
    make_video(path, duration_s=2, fps=FPS, gop=10)  # replaced in place: 20 frames now
    assert open_video(path, index_cache=cache).info.n_frames == 20
    assert cache.stats["built"] == 2


def test_disk_cache_is_keyed_by_content(clips, tmp_path):
    folder = tmp_path / "index"
    a = shutil.copy(clips["hevc"], tmp_path / "a.mkv")
    b = shutil.copy(clips["hevc"], tmp_path / "copy of a.mkv")
    first = IndexCache(folder)
    with open_video(a, index_cache=first) as video:
        expected = (video.info, video.times.tolist(), video.sample(6))
    assert len(list(folder.glob("index-v1-*.npz"))) == 1
    other_process = IndexCache(folder)  # a job process: nothing in memory yet
    with open_video(b, index_cache=other_process) as video:
        got = (dataclasses.replace(video.info, path=str(a)), video.times.tolist(),
               video.sample(6))
    assert got[:2] == expected[:2]
    assert (got[2].indices, got[2].timestamps) == (expected[2].indices, expected[2].timestamps)
    assert [read_index(im) for im in got[2].images] == got[2].indices
    assert other_process.stats == {"memory_hits": 0, "disk_hits": 1, "built": 0}
    assert not video.times.flags.writeable


def test_a_damaged_disk_entry_is_rebuilt(clips, tmp_path):
    folder = tmp_path / "index"
    path = shutil.copy(clips["cfr"], tmp_path / "a.mp4")
    IndexCache(folder).get(path)
    (entry,) = folder.glob("*.npz")
    entry.write_bytes(b"not an npz")
    cache = IndexCache(folder)
    assert len(cache.get(path).pts) == 40
    assert cache.stats == {"memory_hits": 0, "disk_hits": 0, "built": 1}
    assert len(IndexCache(folder).get(path).pts) == 40  # rewritten whole


def test_cache_is_bounded_and_errors_are_not_cached(clips, tmp_path):
    cache = IndexCache(max_entries=2)
    for name in ("cfr", "vfr", "vp9"):
        cache.get(clips[name])
    cache.get(clips["cfr"])  # evicted by the third: built again
    assert cache.stats == {"memory_hits": 0, "disk_hits": 0, "built": 4}
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    for _ in range(2):
        with pytest.raises(VideoError, match="not a video file"):
            open_video(bad, index_cache=cache)
    with pytest.raises(VideoError, match="no such file"):
        cache.get(tmp_path / "missing.mp4")


def test_unwritable_cache_folder_still_opens(clips, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the folder should be")
    cache = IndexCache(blocker / "index")
    assert cache.get(clips["cfr"]).pts.size == 40
    assert not os.path.isdir(blocker / "index")


@pytest.mark.parametrize("name, reason", [
    ("hevc", "decord returns wrong frames after seeking in open-GOP streams"),
    ("ts", "decord seeks inexactly in mpegts files"),
])
def test_forced_decord_refuses_files_it_would_misread(clips, name, reason):
    with pytest.raises(VideoError) as caught:
        open_video(clips[name], backend="decord")
    assert caught.value.reason == reason
