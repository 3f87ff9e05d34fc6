"""Encode real test videos with PyAV, whose wheel bundles FFmpeg with libx264, libvpx and libx265.

Every frame shows its own index as 12 big bars (two rows of six, bright = bit set), over a faint
coloured texture, so a test can read back *which* frame a decoder returned (`read_index`) even
after lossy compression, and the texture gives chroma detail for pixel-exact comparisons.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Callable

import av
import numpy as np

INDEX_BITS = 12  # frames 0..4095 can be told apart
_ROWS, _COLS = 2, 6
_ON, _OFF = 215, 40  # bar levels; +-12 texture keeps them far from the 128 threshold
_VFR_TIME_BASE = Fraction(1, 1000)  # VFR frames are placed to the millisecond

# Kinds from make_bad_files that are not readable videos (the others are awkward but valid).
UNREADABLE_KINDS = (
    "empty", "text", "truncated_mp4", "truncated_faststart_mp4", "truncated_webm",
    "audio_only", "image",
)


def index_image(index: int, size: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) uint8 RGB frame showing `index` in binary as bars, bit 0 top-left."""
    width, height = size
    rng = np.random.default_rng(index)
    img = rng.integers(-12, 13, size=(height, width, 3)).astype(np.int16)
    for bit in range(INDEX_BITS):
        row, col = divmod(bit, _COLS)
        ys = slice(row * height // _ROWS, (row + 1) * height // _ROWS)
        xs = slice(col * width // _COLS, (col + 1) * width // _COLS)
        img[ys, xs] += _ON if index >> bit & 1 else _OFF
    return np.clip(img, 0, 255).astype(np.uint8)


def read_index(image: np.ndarray) -> int:
    """The index drawn by `index_image`, read from an upright (H, W, 3) frame of any size."""
    height, width = image.shape[:2]
    index = 0
    for bit in range(INDEX_BITS):
        row, col = divmod(bit, _COLS)
        # the middle half of each bar: away from blur at bar edges and from scaling seams
        y0, y1 = row * height // _ROWS, (row + 1) * height // _ROWS
        x0, x1 = col * width // _COLS, (col + 1) * width // _COLS
        dy, dx = (y1 - y0) // 4, (x1 - x0) // 4
        if image[y0 + dy:y1 - dy, x0 + dx:x1 - dx].mean() > 128:
            index |= 1 << bit
    return index


def make_video(
    path: str | Path,
    *,
    duration_s: float = 2.0,
    fps: float = 10,
    size: tuple[int, int] = (64, 48),
    codec: str = "libx264",
    gop: int | None = None,
    vfr_times: list[float] | None = None,
    rotation: int = 0,
    frame_fn: Callable[[int, tuple[int, int]], np.ndarray] = index_image,
    faststart: bool = False,
    audio: bool = False,
    options: dict[str, str] | None = None,
) -> Path:
    """Encode a video whose frame k shows `frame_fn(k, size)`; the container follows the suffix.

    CFR: round(duration_s * fps) frames, frame k at exactly k / fps seconds. VFR: one frame per
    entry of `vfr_times` (seconds, ascending, millisecond resolution; the last frame lasts 1/fps).
    `size` is the coded (width, height); `rotation` is the clockwise display rotation in degrees
    written as the stream's display matrix (phone-style: 90 means "turn right to view").
    `gop` is the keyframe interval in frames (encoder default when None). `audio` adds a quiet
    AAC (mp4/mkv) or Opus (webm) track as long as the video. `options` are extra encoder
    options (FFmpeg names), e.g. {"x265-params": "open-gop=0"}.
    """
    path = Path(path)
    rate = Fraction(fps).limit_denominator(1001)
    if vfr_times is None:  # CFR: one tick per frame, so frame k is at exactly k / fps s
        time_base = 1 / rate
        pts = list(range(max(1, round(duration_s * fps))))
        end = len(pts)
    else:
        time_base = _VFR_TIME_BASE
        pts = [round(t / time_base) for t in vfr_times]
        end = pts[-1] + round(1 / rate / time_base)
    encoder_options = {
        "libx264": {"crf": "16", "preset": "veryfast"},
        "libx265": {"crf": "16", "preset": "veryfast", "x265-params": "log-level=error"},
        "libvpx-vp9": {"crf": "20", "b": "0", "deadline": "realtime", "cpu-used": "8"},
        "libvpx": {"crf": "8", "b": "1M", "deadline": "realtime", "cpu-used": "8"},
    }.get(codec, {}) | (options or {})
    if codec == "libx265":  # keep x265 quiet whatever else is asked of it
        extra = (options or {}).get("x265-params", "")
        encoder_options["x265-params"] = f"log-level=error:{extra}"
    container_options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", container_options=container_options) as out:
        stream = out.add_stream(codec, rate=rate, options=encoder_options)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = time_base
        if gop:
            stream.codec_context.gop_size = gop
        if rotation:
            # PyAV counts counter-clockwise (like VideoFrame.rotation); we count clockwise.
            stream.set_display_rotation(-rotation)
        sound = _add_audio(out, path.suffix) if audio else None
        for k, (p, nxt) in enumerate(zip(pts, pts[1:] + [end])):
            frame = av.VideoFrame.from_ndarray(frame_fn(k, size), format="rgb24")
            frame.pts, frame.time_base, frame.duration = p, time_base, nxt - p
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
        if sound is not None:
            _write_silence(out, sound, seconds=float(end * time_base))
    return path


def _add_audio(out: av.container.OutputContainer, suffix: str):
    codec, rate = ("libopus", 48000) if suffix == ".webm" else ("aac", 44100)
    return out.add_stream(codec, rate=rate, layout="mono")


def _write_silence(out, stream, seconds: float) -> None:
    chunk = stream.codec_context.frame_size or 1024
    total = int(seconds * stream.rate)
    for start in range(0, total, chunk):
        samples = np.full((1, min(chunk, total - start)), 1e-3, np.float32)
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate, frame.pts = stream.rate, start
        out.mux(stream.encode(frame))
    out.mux(stream.encode(None))


def make_audio_only(path: str | Path, seconds: float = 1.0) -> Path:
    """An audio-only file (AAC in .m4a/.mp4, Opus in .webm/.opus/.ogg)."""
    path = Path(path)
    with av.open(str(path), "w") as out:
        opus = path.suffix in (".webm", ".opus", ".ogg")
        stream = out.add_stream("libopus" if opus else "aac", rate=48000 if opus else 44100,
                                layout="mono")
        _write_silence(out, stream, seconds)
    return path


def truncate(src: str | Path, dst: str | Path, keep: float = 0.5) -> Path:
    """Copy the first `keep` fraction of the bytes of `src` to `dst` (a download cut short)."""
    data = Path(src).read_bytes()
    Path(dst).write_bytes(data[: int(len(data) * keep)])
    return Path(dst)


def make_bad_files(directory: str | Path) -> dict[str, Path]:
    """Awkward files by kind, for error-handling tests.

    Not readable videos (`UNREADABLE_KINDS`): empty, text, truncated_mp4 (moov at the end, so
    the cut loses it), truncated_faststart_mp4 (moov at the front still claims the full
    duration), truncated_webm (header claims the full duration), audio_only (AAC), image (PNG).
    Readable but unusual: non_ascii (a video with a non-ASCII name), one_frame.
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    files = {"empty": d / "empty.mp4", "text": d / "notes.mp4"}
    files["empty"].write_bytes(b"")
    files["text"].write_text("this is not a video\n" * 50)
    # 4 s at 10 fps with a keyframe every 10 frames: the cut leaves several decodable GOPs
    full = make_video(d / "full.mp4", duration_s=4, gop=10, audio=True)
    files["truncated_mp4"] = truncate(full, d / "truncated.mp4")
    fast = make_video(d / "full_faststart.mp4", duration_s=4, gop=10, audio=True, faststart=True)
    files["truncated_faststart_mp4"] = truncate(fast, d / "truncated_faststart.mp4")
    webm = make_video(d / "full.webm", duration_s=4, gop=10, codec="libvpx-vp9")
    files["truncated_webm"] = truncate(webm, d / "truncated.webm")
    files["audio_only"] = make_audio_only(d / "audio_only.m4a")
    files["image"] = d / "still.png"
    _write_png(files["image"], index_image(7, (64, 48)))
    files["non_ascii"] = make_video(d / "vidéo d’été 日本.mp4", duration_s=1)
    files["one_frame"] = make_video(d / "one_frame.mp4", duration_s=0.1, fps=10)
    for name in ("full.mp4", "full_faststart.mp4", "full.webm"):
        (d / name).unlink()
    return files


def _write_png(path: Path, image: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(image).save(path)

