"""Sampling 64 frames from long videos: every reader of tpo.media.video against torchcodec.

    python bench/sample_bench.py [--scale 1.0 | --quick] [--frames 64] [--repeat 1]
                                 [--workers N] [--no-full] [--cache data/bench]

Encodes (once; cached under --cache and reused) three H.264 videos, every frame showing its
frame number, shortened by --scale (--quick: 0.05):

* 30 min, 640x360, 30 fps, a keyframe every 250 frames,
* 2 h, 640x360, 1 fps, 24 keyframes in all,
* 10 min, 1280x720, 30 fps, a keyframe every 250 frames,

then takes the same uniformly planned frames from each, every way in turn:

* torchcodec        - torchcodec.decoders.VideoDecoder(seek_mode="exact") and one
                      get_frames_at call, as transformers' video processors use it (its
                      default: one FFmpeg thread); the reference for the ratios
* torchcodec-mt     - the same with num_ffmpeg_threads=0 (FFmpeg picks its threads)
* tpo auto (cold)   - open_video(path) with an empty index cache: indexes the packets,
                      then decodes (tpo's default reader: PyAV, keyframe groups in parallel)
* tpo auto          - the same with the index cached (every later open of a video)
* tpo pyav 1 dec    - one PyAV decoder seeking from target to target (workers=1)
* tpo torchcodec    - torchcodec exact, keyframe groups in parallel (one decoder a thread)
* tpo decord        - decord's get_batch (the stack's reader)
* GOP limit         - one single-threaded PyAV decoder decoding only the frames from each
                      target's keyframe to the target (the least one decoder must decode;
                      the index is given: no indexing cost)
* full decode       - PyAV decoding every frame from the start (skip with --no-full)

It asserts that every way returns pixel-identical frames, each showing the frame number it
should (and tpo's timestamps are those of the plan), then prints per way:

* wall s   - seconds (best of --repeat);
* CPU s    - user + system CPU seconds of this process (all its threads);
* idle s   - the time the way would take were this machine's cores idle, from CPU time
             (which other processes barely change): its CPU time where one thread does all
             the work (torchcodec, GOP limit); for tpo's parallel readers the CPU outside
             the decoders plus the decoders' CPU spread over the cores (but never less than
             the busiest decoder thread's); "-" where FFmpeg threads of its own decode;
* the ratios of wall s and of idle s to torchcodec's.

On a machine other processes keep busy, wall times (and so their ratios) mostly measure the
load; the idle column is what the parallel reader gains on free cores.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading
import time
from collections import defaultdict
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere

from tpo.media.index import IndexCache, index_file  # noqa: E402
from tpo.media.readers import (  # noqa: E402
    PyAVReader, TorchCodecReader, default_workers, usable_cores,
)
from tpo.media.video import open_video  # noqa: E402

STRIP = 12  # px: the top strip carries the frame number as 16 black/white bars
BITS = 16
# (label, seconds, fps, (width, height), gop in frames; None: frames / KEYFRAMES)
KINDS = [
    ("30 min 360p30", 30 * 60, 30, (640, 360), 250),
    ("2 h 360p1", 2 * 3600, 1, (640, 360), None),
    ("10 min 720p30", 10 * 60, 30, (1280, 720), 250),
]
KEYFRAMES = 24  # in the 2-hour 1 fps file, at any scale
QUICK_SCALE = 0.05


def frame_image(k: int, fps: int, size: tuple[int, int]) -> np.ndarray:
    """A frame: drifting gradient, a moving box, frame number k in the top strip."""
    w, h = size
    x = np.arange(w, dtype=np.int32)
    y = np.arange(h, dtype=np.int32)[:, None]
    img = np.empty((h, w, 3), np.uint8)
    img[..., 0] = (x + k) % 256
    img[..., 1] = (y * 2 + k // fps) % 256
    img[..., 2] = 96
    box = h // 4
    bx, by = (k * 3) % (w - box), STRIP + (k * 2) % (h - STRIP - box)
    img[by:by + box, bx:bx + box] = (240, 240, 40)
    bar = w // BITS
    for bit in range(BITS):
        img[:STRIP, bit * bar:(bit + 1) * bar] = 255 if k >> bit & 1 else 0
    return img


def read_number(image: np.ndarray) -> int:
    bar = image.shape[1] // BITS
    strip = image[2:STRIP - 2]
    return sum(1 << bit for bit in range(BITS)
               if strip[:, bit * bar + 4:(bit + 1) * bar - 4].mean() > 128)


def ensure_video(cache: Path, seconds: int, fps: int, size: tuple[int, int], gop: int) -> Path:
    path = cache / f"bench_{seconds}s_{fps}fps_{size[0]}x{size[1]}_gop{gop}.mp4"
    if path.exists():
        return path
    cache.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.mp4")
    print(f"encoding {path} ({seconds * fps} frames) ...", flush=True)
    start = time.perf_counter()
    with av.open(str(partial), "w") as out:
        # sc_threshold=0: no extra keyframes at "scene cuts", exactly one every GOP frames
        stream = out.add_stream("libx264", rate=fps, options={
            "preset": "veryfast", "crf": "23", "sc_threshold": "0"})
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = Fraction(1, fps)
        stream.codec_context.gop_size = gop
        for k in range(seconds * fps):
            frame = av.VideoFrame.from_ndarray(frame_image(k, fps, size), format="rgb24")
            frame.pts, frame.time_base = k, Fraction(1, fps)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    partial.rename(path)  # only complete files are ever reused
    print(f"  {time.perf_counter() - start:.1f} s, {path.stat().st_size / 1e6:.1f} MB")
    return path


# --------------------------------------------------------------------------------------------
# The ways to read the frames: each returns (timestamps or None, images)


def torchcodec_exact(path: Path, plan: list[int], threads: int):
    from torchcodec.decoders import VideoDecoder

    decoder = VideoDecoder(str(path), seek_mode="exact", dimension_order="NHWC",
                           num_ffmpeg_threads=threads)
    batch = decoder.get_frames_at(plan)
    return None, list(batch.data.numpy())


def with_tpo(path: Path, plan: list[int], **kwargs):
    with open_video(path, **kwargs) as video:
        frames = video.frames(plan)
        return frames.timestamps, frames.images


def gop_limit(path: Path, index, plan: list[int]):
    """One single-threaded decoder: seek to each target's keyframe, decode only up to it."""
    wanted = [int(index.pts[i]) for i in plan]
    images = []
    with av.open(str(path)) as container:
        stream = container.streams[index.stream_index]
        stream.codec_context.thread_type = "NONE"  # like torchcodec's default: one thread
        frames, last = None, None
        for target in wanted:
            keys = index.keyframe_pts
            if frames is None or np.searchsorted(keys, target, side="right") > \
                    np.searchsorted(keys, last, side="right"):
                container.seek(target, stream=stream, backward=True)
                frames = container.decode(stream)
            frame = next(f for f in frames if f.pts >= target)
            images.append(frame.to_ndarray(format="rgb24"))
            last = target
    return None, images


def gop_limit_frames(index, plan: list[int]) -> int:
    """Frames from each target's keyframe to the target, counted once."""
    need = set()
    for group in index.keyframe_groups(plan):
        k = int(np.searchsorted(index.keyframe_pts, index.pts[group[-1]], side="right")) - 1
        start = int(np.searchsorted(index.pts, index.keyframe_pts[max(k, 0)]))
        need.update(range(start, group[-1] + 1))
    return len(need)


def full_decode(path: Path, index, plan: list[int]):
    """Decode every frame with PyAV from the start; keep the planned ones."""
    wanted = {int(index.pts[i]) for i in plan}
    images = []
    with av.open(str(path)) as container:
        stream = container.streams[index.stream_index]
        stream.codec_context.thread_type = "AUTO"
        for frame in container.decode(stream):
            if frame.pts in wanted:
                images.append(frame.to_ndarray(format="rgb24"))
    return None, images


class ThreadClock:
    """CPU seconds each thread spends inside tpo's decoders' decode() during a run.

    On a machine other processes keep busy the wall time says little about what the
    parallel reader gains; CPU time does: on idle cores the run takes the CPU outside the
    decoders plus the decoders' CPU spread over the cores (at least the busiest decoder
    thread's). Valid where every decoder decodes on its own thread, as the parallel readers'
    pooled decoders do when there are at least as many of them as cores.
    """

    def __init__(self):
        self.cpu: dict[int, float] = defaultdict(float)
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def watching(self, *classes):
        originals = {cls: cls.decode for cls in classes}

        def wrap(original):
            def decode(reader, indices, max_side):
                start = time.thread_time()
                try:
                    return original(reader, indices, max_side)
                finally:
                    with self._lock:
                        self.cpu[threading.get_ident()] += time.thread_time() - start
            return decode

        for cls, original in originals.items():
            cls.decode = wrap(original)
        try:
            yield self
        finally:
            for cls, original in originals.items():
                cls.decode = original


def timed(run, repeat: int, one_core: str):
    """(best wall s, its CPU s, its critical-path s or None, result) over `repeat` runs.

    one_core: "cpu" - the run computes on one thread, so its CPU time is its idle-machine
    time; "threads" - measure with ThreadClock; "" - FFmpeg threads of its own: unknown.
    """
    best = None
    for _ in range(repeat):
        clock = ThreadClock()
        with clock.watching(PyAVReader, TorchCodecReader) if one_core == "threads" \
                else contextlib.nullcontext():
            wall, cpu = time.perf_counter(), time.process_time()
            result = run()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        critical = {"cpu": cpu, "": None}.get(one_core)  # "cpu": one thread did everything
        if one_core == "threads":  # the rest, then the decoders spread over the cores
            inside = sum(clock.cpu.values())
            busiest = max(clock.cpu.values(), default=0.0)
            critical = cpu - inside + max(busiest, inside / usable_cores())
        if best is None or wall < best[0]:
            best = (wall, cpu, critical, result)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=1.0,
                        help="shorten every video to this fraction of its length")
    parser.add_argument("--quick", action="store_true", help=f"--scale {QUICK_SCALE}")
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=1, help="best of this many runs")
    parser.add_argument("--workers", type=int, default=None,
                        help="tpo's decoding threads (default: tpo's, twice the usable cores)")
    parser.add_argument("--no-full", action="store_true", help="skip the full decode")
    parser.add_argument("--cache", type=Path, default=Path("data/bench"))
    args = parser.parse_args()
    scale = QUICK_SCALE if args.quick else args.scale
    workers = args.workers or default_workers()
    import torchcodec.decoders  # noqa: F401 - loads torch now, not inside the first timing

    rows = []
    for label, seconds, fps, size, gop in KINDS:
        seconds = max(1, round(seconds * scale))
        gop = gop or max(1, seconds * fps // KEYFRAMES)
        path = ensure_video(args.cache, seconds, fps, size, gop)
        index = index_file(str(path))  # also warms the OS file cache for everyone
        cold_open = timed(lambda: open_video(path, index_cache=IndexCache()).close(), 1, "")[0]
        warm = IndexCache()  # this video's index, cached by its first open
        with open_video(path, index_cache=warm) as video:
            plan = video.uniform(args.frames)
            n_frames, times = video.info.n_frames, [float(video.times[i]) for i in plan]
        warm_open = timed(lambda: open_video(path, index_cache=warm).close(), 1, "")[0]
        tpo = {"index_cache": warm, "workers": workers}
        # each pooled decoder single-threaded (as when workers >= cores): ThreadClock applies
        pool = "threads" if workers >= usable_cores() and workers > 1 else ""
        runs = {  # method: (run, how its one-core time is known)
            "torchcodec": (lambda: torchcodec_exact(path, plan, threads=1), "cpu"),
            "torchcodec-mt": (lambda: torchcodec_exact(path, plan, threads=0), ""),
            "tpo auto (cold)": (lambda: with_tpo(path, plan, index_cache=IndexCache(),
                                                 workers=workers), pool),
            "tpo auto": (lambda: with_tpo(path, plan, **tpo), pool),
            "tpo pyav 1 dec": (lambda: with_tpo(path, plan, backend="pyav", index_cache=warm,
                                                workers=1), ""),
            "tpo torchcodec": (lambda: with_tpo(path, plan, backend="torchcodec", **tpo), pool),
            "tpo decord": (lambda: with_tpo(path, plan, backend="decord", index_cache=warm), ""),
            "GOP limit": (lambda: gop_limit(path, index, plan), "cpu"),
        }
        if not args.no_full:
            runs["full decode"] = (lambda: full_decode(path, index, plan), "")
        results = {}
        for method, (run, one_core) in runs.items():
            results[method] = timed(run, args.repeat, one_core)
            print(f"  {label}: {method:<16} {results[method][0]:7.2f} s", flush=True)
        base_wall, base_cpu, _, (_, base_images) = results["torchcodec"]
        assert [read_number(im) for im in base_images] == [round(t * fps) for t in times], label
        for method, (wall, cpu, critical, (stamps, images)) in results.items():
            assert stamps is None or stamps == times, f"{method} returned other timestamps"
            assert len(images) == len(base_images), method
            assert all(np.array_equal(a, b) for a, b in zip(images, base_images)), method
            rows.append((label, method, wall, cpu, critical, wall / base_wall,
                         None if critical is None else critical / base_cpu))
        print(f"{label}: {n_frames} frames, keyframe every {gop}; open + index "
              f"{cold_open:.2f} s, reopen (index cached) {warm_open:.3f} s; GOP limit "
              f"{gop_limit_frames(index, plan)} frames decoded", flush=True)

    print(f"\n{args.frames} frames, uniform in time, {workers} tpo decoding threads on "
          f"{usable_cores()} usable cores (load average {os.getloadavg()[0]:.1f}); best of "
          f"{args.repeat} by wall time.\n'idle s': the run's time on idle cores, from CPU "
          "time (its one thread's, or its busiest decoder thread's plus the rest; - where "
          "FFmpeg threads of its own decode)\n")
    print(f"{'video':<16}{'method':<18}{'wall s':>8}{'CPU s':>8}{'idle s':>10}"
          f"{'wall vs tc':>12}{'idle vs tc':>14}")
    for label, method, wall, cpu, critical, ratio, critical_ratio in rows:
        crit = f"{critical:>10.2f}" if critical is not None else f"{'-':>10}"
        cr = f"{critical_ratio:>13.2f}x" if critical_ratio is not None else f"{'-':>14}"
        print(f"{label:<16}{method:<18}{wall:>8.2f}{cpu:>8.2f}{crit}{ratio:>11.2f}x{cr}")
    print("\nevery method returned pixel-identical frames showing the planned frame numbers")


if __name__ == "__main__":
    main()
