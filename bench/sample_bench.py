"""Sampling 64 frames from long videos: decord vs PyAV seeking vs a full sequential decode.

    python bench/sample_bench.py [--quick] [--frames 64] [--cache data/bench]

Encodes (once; cached under --cache and reused) a 30-minute 320x180 video at 10 fps and a
2-hour one at 2 fps, H.264 with a keyframe every 250 frames, then for each takes the same
64 uniformly planned frames three ways, all in this run:

* decord      - tpo.media.video with backend="decord" (get_batch on the planned indices)
* pyav-seek   - tpo.media.video with backend="pyav" (seek to the keyframe before each, decode on)
* sequential  - PyAV decoding every frame from the start, keeping the planned ones

The first two include opening the file (tpo.media.video indexes the packets on open); the
sequential decode needs no index and is given the planned times. It asserts the
three return the same timestamps and pixel-identical frames, each showing the frame number
it should, and prints seconds and ratios against decord.
"""

from __future__ import annotations

import argparse
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere

from tpo.media.video import open_video  # noqa: E402

SIZE = (320, 180)
GOP = 250
STRIP = 12  # px: the top strip carries the frame number as 16 black/white bars
BITS = 16
FULL = [("30 min @ 10 fps", 30 * 60, 10), ("2 h @ 2 fps", 2 * 3600, 2)]
QUICK = [("1 min @ 10 fps", 60, 10), ("4 min @ 2 fps", 4 * 60, 2)]


def frame_image(k: int, fps: int) -> np.ndarray:
    """A 320x180 frame: drifting gradient, a moving box, frame number k in the top strip."""
    w, h = SIZE
    x = np.arange(w, dtype=np.int32)
    y = np.arange(h, dtype=np.int32)[:, None]
    img = np.empty((h, w, 3), np.uint8)
    img[..., 0] = (x + k) % 256
    img[..., 1] = (y * 2 + k // fps) % 256
    img[..., 2] = 96
    bx, by = (k * 3) % (w - 40), STRIP + (k * 2) % (h - STRIP - 40)
    img[by:by + 40, bx:bx + 40] = (240, 240, 40)
    bar = w // BITS
    for bit in range(BITS):
        img[:STRIP, bit * bar:(bit + 1) * bar] = 255 if k >> bit & 1 else 0
    return img


def read_number(image: np.ndarray) -> int:
    bar = SIZE[0] // BITS
    strip = image[2:STRIP - 2]
    return sum(1 << bit for bit in range(BITS)
               if strip[:, bit * bar + 4:(bit + 1) * bar - 4].mean() > 128)


def ensure_video(cache: Path, seconds: int, fps: int) -> Path:
    path = cache / f"bench_{seconds}s_{fps}fps_{SIZE[0]}x{SIZE[1]}_gop{GOP}.mp4"
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
        stream.width, stream.height = SIZE
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = Fraction(1, fps)
        stream.codec_context.gop_size = GOP
        for k in range(seconds * fps):
            frame = av.VideoFrame.from_ndarray(frame_image(k, fps), format="rgb24")
            frame.pts, frame.time_base = k, Fraction(1, fps)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    partial.rename(path)  # only complete files are ever reused
    print(f"  {time.perf_counter() - start:.1f} s, {path.stat().st_size / 1e6:.1f} MB")
    return path


def sequential(path: Path, wanted: set[float]):
    """Decode every frame with PyAV from the start; keep those at the wanted times (s)."""
    times, images = [], []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_type = "AUTO"
        start, tb = stream.start_time or 0, stream.time_base
        for frame in container.decode(stream):
            t = float((frame.pts - start) * tb)
            if t in wanted:
                times.append(t)
                images.append(frame.to_ndarray(format="rgb24"))
    return times, images


def with_tpo(path: Path, backend: str, n: int):
    """Open (index) and sample n frames with tpo.media.video's reader `backend`."""
    with open_video(path, backend=backend) as video:
        frames = video.sample(n)
        return frames.timestamps, frames.images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1- and 4-minute videos")
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--cache", type=Path, default=Path("data/bench"))
    args = parser.parse_args()

    rows = []
    for label, seconds, fps in QUICK if args.quick else FULL:
        path = ensure_video(args.cache, seconds, fps)
        open_video(path, backend="pyav").close()  # warm the OS file cache for everyone
        start = time.perf_counter()
        with open_video(path, backend="pyav") as video:  # what `tpo sample` does
            plan = video.sample(args.frames, decode=False)
            n_frames = video.info.n_frames
        plan_s = time.perf_counter() - start
        runs = {
            "decord": lambda: with_tpo(path, "decord", args.frames),
            "pyav-seek": lambda: with_tpo(path, "pyav", args.frames),
            "sequential": lambda: sequential(path, set(plan.timestamps)),
        }
        results = {}
        for method, run in runs.items():
            start = time.perf_counter()
            times, images = run()
            results[method] = (time.perf_counter() - start, times, images)
        base_s, base_times, base_images = results["decord"]
        assert [read_number(im) for im in base_images] == [round(t * fps) for t in base_times]
        for method, (secs, times, images) in results.items():
            assert times == base_times, f"{method} returned other timestamps"
            assert all(np.array_equal(a, b) for a, b in zip(images, base_images)), method
            rows.append((label, n_frames, method, secs, secs / base_s))
        print(f"{label}: open + plan without decoding (decode=False) {plan_s:.2f} s", flush=True)

    print(f"\n{args.frames} frames, uniform in time; decord and pyav-seek include opening "
          "(indexing) the file\n")
    print(f"{'video':<18}{'frames':>8}  {'method':<12}{'seconds':>9}{'vs decord':>11}")
    for label, n_frames, method, secs, ratio in rows:
        print(f"{label:<18}{n_frames:>8}  {method:<12}{secs:>9.2f}{ratio:>10.2f}x")
    print("\nall methods returned the same timestamps and pixel-identical frames")


if __name__ == "__main__":
    main()
