"""Frame-strip thumbnails: n uniformly sampled frames of a video as small JPEG files.

The strip shows a person what the model would see when sampling uniformly. Files are cached
under ``thumb_dir/<sha256[:16]>/`` so the library can show a strip again without decoding.

A pair's frames (:func:`frames_at`) have a path that follows from the video's hash, the size
and the time alone (:func:`at_paths`), so a page can name them before they exist; the
thumbnail route draws a missing one when it is first asked for (:func:`parse_at_path`, then
:func:`frames_at` for that one time). Files are written to a temporary name and renamed, so
two requests drawing the same thumbnail at once never leave a half-written file.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from tpo.media import video

AT_MAX_SIDE = 120  # px, the longer side of a pair's frame thumbnail (frames_at's default)
AT_SIDES = range(16, 321)  # px a thumbnail route may be asked to draw (bounds the work)
# <sha256[:16]>/at_px<max_side>/<time, s, 3 decimals>.jpg: what frames_at names a thumbnail
AT_PATH = re.compile(r"(?P<folder>[0-9A-Za-z]{1,64})/at_px(?P<px>[0-9]{1,4})/"
                     r"(?P<t>[0-9]{1,9}\.[0-9]{3})\.jpg")


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
        save_jpeg(image, path)
        entries.append((str(path), float(t)))
    # Written last, so a strip interrupted half-way is rebuilt rather than shown partly.
    index.write_text(json.dumps(entries))
    return entries


def at_paths(sha256: str, timestamps: list[float], thumb_dir: Path, *,
             max_side: int = AT_MAX_SIDE) -> list[tuple[str, float]]:
    """``[(jpeg_path, t), ...]`` where :func:`frames_at` keeps these frames, decoding nothing:
    the files may not exist yet (the thumbnail route draws them when first asked for)."""
    folder = os.path.join(thumb_dir, sha256[:16], f"at_px{max_side}")
    return [(os.path.join(folder, f"{t:010.3f}.jpg"), float(t)) for t in timestamps]


def parse_at_path(rel: str) -> tuple[str, int, float] | None:
    """``(sha256[:16], max_side, t)`` of a thumbnail path relative to the thumbnail folder as
    :func:`at_paths` names it, or None when ``rel`` is not one (or asks an unusual size)."""
    match = AT_PATH.fullmatch(rel)
    if not match or int(match["px"]) not in AT_SIDES:
        return None
    return match["folder"], int(match["px"]), float(match["t"])


def nearest_indices(times: np.ndarray, wanted: list[float]) -> list[int]:
    """The index of the frame time nearest each wanted time (``times`` ascending, seconds)."""
    times = np.asarray(times, dtype=float)
    right = np.clip(np.searchsorted(times, wanted), 0, len(times) - 1)
    left = np.clip(right - 1, 0, len(times) - 1)
    wanted = np.asarray(wanted, dtype=float)
    closer_left = np.abs(times[left] - wanted) < np.abs(times[right] - wanted)
    return np.where(closer_left, left, right).tolist()


def save_jpeg(image: np.ndarray, path: Path) -> None:
    """``image`` as a JPEG at ``path``, written under a temporary name in the same folder then
    renamed: a reader sees the whole file or none, even with two writers at once."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            Image.fromarray(image).save(out, format="JPEG", quality=85)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def frames_at(video_path: str | Path, sha256: str, timestamps: list[float], thumb_dir: Path, *,
              max_side: int = AT_MAX_SIDE) -> list[tuple[str, float]]:
    """``[(jpeg_path, t), ...]`` for the frames shown at exactly these times (a pair's
    recorded timestamps); only frames not cached yet are decoded. Raises ``VideoError``."""
    entries = at_paths(sha256, timestamps, thumb_dir, max_side=max_side)
    missing = [i for i, (p, _) in enumerate(entries) if not os.path.isfile(p)]
    if missing:
        Path(entries[0][0]).parent.mkdir(parents=True, exist_ok=True)
        with video.open_video(video_path) as vid:
            # Recorded timestamps are frame times of this file (a file name rounds them to
            # the millisecond): the nearest frame is the one recorded.
            indices = nearest_indices(vid.times, [float(timestamps[i]) for i in missing])
            for i, image in zip(missing, vid.decode(indices, max_side=max_side)):
                save_jpeg(image, Path(entries[i][0]))
    return entries


def format_time(seconds: float) -> str:
    """``m:ss`` or ``h:mm:ss``, with tenths of a second when the time is not whole."""
    seconds = max(0.0, float(seconds))
    h, rem = divmod(int(seconds), 3600)
    m, s = divmod(rem, 60)
    frac = seconds - int(seconds)
    tail = f"{s:02d}.{int(frac * 10)}" if frac >= 0.05 else f"{s:02d}"
    return f"{h}:{m:02d}:{tail}" if h else f"{m}:{tail}"
