"""Frame-strip thumbnails: n uniformly sampled frames of a video as small JPEG files.

The strip shows a person what the model would see when sampling uniformly. Files are cached
under ``thumb_dir/<sha256[:16]>/`` so the library can show a strip again without decoding.
"""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from tpo import video


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


def format_time(seconds: float) -> str:
    """``m:ss`` or ``h:mm:ss``, with tenths of a second when the time is not whole."""
    seconds = max(0.0, float(seconds))
    h, rem = divmod(int(seconds), 3600)
    m, s = divmod(rem, 60)
    frac = seconds - int(seconds)
    tail = f"{s:02d}.{int(frac * 10)}" if frac >= 0.05 else f"{s:02d}"
    return f"{h}:{m:02d}:{tail}" if h else f"{m}:{tail}"
