"""Frame-strip thumbnails: n uniformly sampled frames of a video as small JPEG files.

The strip shows a person what the model would see when sampling uniformly. Files are cached
under ``thumb_dir/<sha256[:16]>/`` so the library can show a strip again without decoding.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from tpo.media import video


def frame_strip(video_path: str | Path, sha256: str, thumb_dir: Path, *, n: int = 8,
                max_side: int = 160) -> list[tuple[str, float]]:
    """``[(jpeg_path, timestamp_s), ...]`` for ``n`` uniform frames; raises ``VideoError``."""
    folder = Path(thumb_dir) / sha256[:16] / f"n{n}_px{max_side}"
    index = folder / "index.json"
    if index.is_file():
        entries = json.loads(index.read_text())
        if all(Path(p).is_file() for p, _ in entries):
            return [(p, t) for p, t in entries]
    frames = video.sample(video_path, n, max_side=max_side)
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for image, t in zip(frames.images, frames.timestamps):
        path = folder / f"{t:010.3f}.jpg"
        Image.fromarray(image).save(path, quality=85)
        entries.append((str(path), float(t)))
    # Written last, so a strip interrupted half-way is rebuilt rather than shown partly.
    index.write_text(json.dumps(entries))
    return entries


def frames_at(video_path: str | Path, sha256: str, timestamps: list[float], thumb_dir: Path, *,
              max_side: int = 120) -> list[tuple[str, float]]:
    """``[(jpeg_path, t), ...]`` for the frames shown at exactly these times (a pair's
    recorded timestamps); only frames not cached yet are decoded. Raises ``VideoError``."""
    folder = Path(thumb_dir) / sha256[:16] / f"at_px{max_side}"
    paths = [folder / f"{t:010.3f}.jpg" for t in timestamps]
    missing = [i for i, p in enumerate(paths) if not p.is_file()]
    if missing:
        folder.mkdir(parents=True, exist_ok=True)
        with video.open_video(video_path) as vid:
            # Recorded timestamps are frame times of this file: the nearest index is exact.
            wanted = [float(timestamps[i]) for i in missing]
            indices = np.clip(np.searchsorted(vid.times, wanted), 0, len(vid.times) - 1)
            for i, image in zip(missing, vid.decode(indices.tolist(), max_side=max_side)):
                Image.fromarray(image).save(paths[i], quality=85)
    return [(str(p), float(t)) for p, t in zip(paths, timestamps)]


def format_time(seconds: float) -> str:
    """``m:ss`` or ``h:mm:ss``, with tenths of a second when the time is not whole."""
    seconds = max(0.0, float(seconds))
    h, rem = divmod(int(seconds), 3600)
    m, s = divmod(rem, 60)
    frac = seconds - int(seconds)
    tail = f"{s:02d}.{int(frac * 10)}" if frac >= 0.05 else f"{s:02d}"
    return f"{h}:{m:02d}:{tail}" if h else f"{m}:{tail}"
