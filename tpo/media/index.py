"""A video's packet index - per-frame times and keyframes, without decoding pixels - and its cache.

:func:`index_file` checks that a file is a readable video and demuxes every packet of its
video stream with PyAV (no pixel decode, only the first frame for the display rotation):
each frame's presentation time in seconds, exact to the frame (float64 from the integer
pts), and the keyframes. Every reader of :mod:`tpo.media.video` uses this one index, so
timestamps never depend on the reader.

Indexing reads the whole file (about 0.8 s for 30 minutes at 30 fps), so indexes are cached
(:class:`IndexCache`): in memory by file identity (path, size, mtime, inode), and optionally
on disk by the SHA-256 of the file's content, so a copy or another process reuses it too.

Anything that is not a readable video - missing, empty, text, image, audio only, truncated -
raises :class:`VideoError` naming the file and the reason.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from tpo.errors import TPOError

__all__ = ["IndexCache", "VideoError", "VideoIndex", "DEFAULT_INDEX_CACHE", "index_file",
           "open_container"]

# A stream whose packets end this much before its header's duration was cut short:
# more than TRUNCATION_SLACK_S seconds and more than TRUNCATION_SLACK_FRACTION of the header.
TRUNCATION_SLACK_S = 0.5
TRUNCATION_SLACK_FRACTION = 0.05
# Demuxers whose seeking lands exactly on the keyframe asked for (by the container's own
# sample table or cues): readers may seek freely and decode GOPs in parallel there.
SEEK_EXACT_CONTAINERS = frozenset({"mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm"})
# Leading bytes of containers a video can be in: a file that starts like one but cannot be
# opened is reported as truncated or corrupt rather than "not a video".
_CONTAINER_MAGIC = (
    (4, b"ftyp"), (4, b"moov"), (4, b"mdat"), (4, b"free"), (4, b"wide"),  # MP4 / MOV
    (0, b"\x1a\x45\xdf\xa3"),  # Matroska / WebM (EBML)
    (0, b"RIFF"), (0, b"FLV"), (0, b"OggS"), (0, b"\x00\x00\x01\xba"),  # AVI, FLV, Ogg, MPEG-PS
)
# Bump when VideoIndex or how it is built changes: older files on disk are then ignored.
_DISK_FORMAT = 1


class VideoError(TPOError):
    """The one error type for any file that is not a readable video.

    ``str(err) == f"{path}: {reason}"``; ``reason`` is short and human readable, e.g.
    ``"empty file"``, ``"no video stream"``, ``"file is truncated or corrupt (...)"``.
    """

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self):  # picklable across job processes despite the two-argument init
        return type(self), (self.path, self.reason)


@dataclass(frozen=True)
class VideoIndex:
    """Per-frame times and keyframes of a video stream, from its packets."""

    stream_index: int  # of the video stream in the container
    pts: np.ndarray  # (n,) int64 frame pts in stream time_base units, ascending
    times: np.ndarray  # (n,) float64 seconds from the stream start, ascending, read-only
    keyframe_pts: np.ndarray  # (k,) int64 pts of the keyframes, ascending
    duration_s: float  # end of the last frame, seconds
    rotation: int  # clockwise degrees
    coded_size: tuple[int, int]  # (width, height) before rotation
    codec: str
    container: str  # FFmpeg demuxer name, e.g. "mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm"
    open_gop: bool  # some frame decoded after a keyframe is shown before it
    time_base: tuple[int, int]  # (numerator, denominator) of a pts unit, seconds

    @property
    def seeks_exactly(self) -> bool:
        """Whether seeking in this container lands on the keyframe asked for."""
        return self.container in SEEK_EXACT_CONTAINERS

    def keyframe_groups(self, indices: list[int]) -> list[list[int]]:
        """Split ascending frame `indices` by the keyframe shown last before each frame.

        Each group decodes on its own: from its keyframe (or, for an open GOP's leading
        pictures, the keyframe before it) forward, so groups can be decoded in parallel.
        """
        if not indices:
            return []
        keys = np.searchsorted(self.keyframe_pts, self.pts[np.asarray(indices)], side="right")
        groups: list[list[int]] = []
        last = None
        for i, key in zip(indices, keys.tolist()):
            if key != last:
                groups.append([])
                last = key
            groups[-1].append(i)
        return groups

    def decode_cost(self, group: list[int]) -> int:
        """Frames decoded for a keyframe group: from its keyframe to its last frame."""
        k = max(0, int(np.searchsorted(self.keyframe_pts, self.pts[group[0]], side="right")) - 1)
        start = int(np.searchsorted(self.pts, self.keyframe_pts[k]))
        return max(1, group[-1] - start + 1)


def _check_path(path: str) -> None:
    if not os.path.exists(path):
        raise VideoError(path, "no such file")
    if os.path.isdir(path):
        raise VideoError(path, "is a directory, not a video file")
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as err:
        raise VideoError(path, f"cannot read file ({err.strerror or err})") from err
    if not head:
        raise VideoError(path, "empty file")


def _looks_like_container(path: str) -> bool:
    with open(path, "rb") as f:
        head = f.read(16)
    return any(head[at:at + len(magic)] == magic for at, magic in _CONTAINER_MAGIC)


def open_container(path: str) -> av.container.InputContainer:
    """Open a file with PyAV; VideoError (not a video, truncated, a still image) otherwise."""
    try:
        container = av.open(path)
    except (av.error.FFmpegError, OSError) as err:
        detail = getattr(err, "strerror", None) or str(err)
        if _looks_like_container(path):
            reason = f"file is truncated or corrupt (cannot open it: {detail})"
        else:
            reason = f"not a video file ({detail})"
        raise VideoError(path, reason) from err
    fmt = container.format.name
    if fmt == "image2" or fmt.endswith("_pipe"):  # png_pipe, jpeg_pipe, webp_pipe, ...
        container.close()
        raise VideoError(path, f"not a video file (a still image: {fmt.removesuffix('_pipe')})")
    return container


def _video_stream(path: str, container) -> av.video.stream.VideoStream:
    # cover art in audio files is a one-picture "video" stream: not a video
    streams = [s for s in container.streams.video
               if not s.disposition & av.stream.Disposition.attached_pic]
    if not streams:
        kinds = sorted({s.type for s in container.streams})
        only = f" (only {', '.join(kinds)})" if kinds else ""
        raise VideoError(path, f"no video stream{only}")
    stream = streams[0]
    stream.codec_context.thread_type = "AUTO"  # frame + slice threads: ~2x faster decode
    return stream


def _header_duration(container, stream) -> float | None:
    """Seconds the file claims for the video stream, or None when it does not say."""
    if stream.duration:
        return float(stream.duration * stream.time_base)
    tag = stream.metadata.get("DURATION")  # Matroska/WebM per-track tag "HH:MM:SS.nnnnnnnnn"
    if tag:
        try:
            h, m, s = tag.split(":")
            return int(h) * 3600 + int(m) * 60 + float(s)
        except ValueError:
            pass
    return container.duration / 1e6 if container.duration else None  # all streams together


def index_file(path: str) -> VideoIndex:
    """Check, open and index a file (uncached); VideoError for anything not a readable video."""
    _check_path(path)
    with open_container(path) as container:
        stream = _video_stream(path, container)
        return _build_index(path, container, stream)


def _build_index(path: str, container, stream) -> VideoIndex:
    """Demux every video packet (no pixel decode) and decode only the first frame (rotation)."""
    pts, durations, keys = [], [], []
    first = None
    open_gop = False
    try:
        for packet in container.demux(stream):
            if packet.size == 0 or packet.is_discard:  # flush packet / before an edit list start
                continue
            t = packet.pts if packet.pts is not None else packet.dts
            if t is None or not (keys or packet.is_keyframe):  # nothing decodes before a key
                continue
            # packets come in decode order: a frame shown before the keyframe that precedes it
            # in decoding is a leading picture of an open GOP
            open_gop = open_gop or (bool(keys) and not packet.is_keyframe and t < keys[-1])
            pts.append(t)
            durations.append(packet.duration or 0)
            if packet.is_keyframe:
                keys.append(t)
            if first is None:
                # PyAV 18 exposes the display matrix only on decoded frames (frame.rotation),
                # so one frame is decoded; frame-threaded decoders may need a few packets.
                first = next(iter(stream.decode(packet)), None)
        if first is None and pts:
            first = next(iter(stream.decode(None)), None)
    except av.error.FFmpegError as err:
        raise VideoError(path, f"file is truncated or corrupt ({err.strerror or err})") from err
    if not pts:
        raise VideoError(path, "no video frames")
    if first is None:
        raise VideoError(path, "file is truncated or corrupt (no frame can be decoded)")

    order = np.argsort(pts, kind="stable")  # decode order -> presentation order
    pts_arr = np.asarray(pts, dtype=np.int64)[order]
    keyframe_pts = np.sort(np.asarray(keys, np.int64))
    for shared in (pts_arr, keyframe_pts):  # cached indexes are shared between handles
        shared.setflags(write=False)
    origin = stream.start_time if stream.start_time is not None else int(pts_arr[0])
    tb = stream.time_base
    times = ((pts_arr - origin) * tb.numerator) / tb.denominator  # one exact-int division
    times.setflags(write=False)
    last = int(np.asarray(durations)[order][-1])  # how long the last frame is shown
    if last > 0:
        duration = float((int(pts_arr[-1]) - origin + last) * tb)
    else:  # unknown (e.g. MPEG-TS): assume the typical frame interval
        rate = stream.average_rate or stream.guessed_rate
        last_s = float(np.median(np.diff(times))) if len(times) > 1 else (1 / rate if rate else 0)
        duration = float(times[-1]) + last_s

    claimed = _header_duration(container, stream)
    slack = max(TRUNCATION_SLACK_S, TRUNCATION_SLACK_FRACTION * (claimed or 0))
    if claimed and claimed - duration > slack:
        raise VideoError(path, f"file is truncated or corrupt (video stops at {duration:.1f} s "
                               f"of the {claimed:.1f} s its header declares)")
    return VideoIndex(
        stream_index=stream.index, pts=pts_arr, times=times,
        keyframe_pts=keyframe_pts, duration_s=duration,
        rotation=round(-first.rotation / 90) * 90 % 360,  # PyAV counts counter-clockwise
        coded_size=(first.width, first.height), codec=stream.codec_context.name,
        container=container.format.name, open_gop=open_gop,
        time_base=(tb.numerator, tb.denominator),
    )


# --------------------------------------------------------------------------------------------
# The cache


def file_sha256(path: str, chunk_bytes: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's content, read in 1 MiB chunks (videos can be many GB): the
    video's identity in the store and the name of its cached index."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_bytes):
            h.update(chunk)
    return h.hexdigest()


class IndexCache:
    """Indexes of recently opened videos, so reopening a video does not demux it again.

    * In memory (bounded: the ``max_entries`` most recently used; an index is 16 bytes a
      frame, 0.9 MB for 30 minutes at 30 fps), keyed by the file's identity - resolved path,
      size, modification time (ns), inode - so an edited or replaced file is indexed afresh.
    * On disk when ``directory`` is given (here, or per call to :meth:`get`):
      ``<directory>/index-v1-<sha256>.npz``, keyed by the SHA-256 of the file's content, so
      copies of a file and other processes (jobs, sharded ranks, the next command) reuse it.
      The content hash of a file seen before (same path, size, mtime, inode) is kept in
      ``<directory>/by-file/``, so a new process does not read the whole file again to find
      its index (reading costs about as much as demuxing). Two processes may write
      the same index at once: each writes a temporary file and renames it into place, so a
      reader sees a whole file or none; a file that cannot be read (corrupt, truncated,
      another PyAV's) is ignored and rewritten.

    Thread-safe (the app opens videos from several request threads). Errors are never cached:
    an unreadable file raises :class:`VideoError` each time it is opened.
    """

    def __init__(self, directory: str | os.PathLike | None = None, max_entries: int = 32):
        if max_entries < 0:
            raise ValueError(f"max_entries must be >= 0, got {max_entries}")
        self.directory = Path(directory) if directory is not None else None
        self.max_entries = max_entries
        self.stats = {"memory_hits": 0, "disk_hits": 0, "built": 0}
        self.hashed = 0  # files whose content was hashed (read whole) to find their index
        self._memory: OrderedDict[tuple, VideoIndex] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, path: str | os.PathLike, *,
            directory: str | os.PathLike | None = None) -> VideoIndex:
        """The index of the video at `path`: cached, or built (and cached) now.

        ``directory``: the on-disk cache folder for this call (default: the cache's own)."""
        path = os.fspath(path)
        folder = Path(directory) if directory is not None else self.directory
        _check_path(path)  # a clear error for a missing/empty file, before any cache lookup
        st = os.stat(path)
        key = (os.path.realpath(path), st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev)
        with self._lock:
            index = self._memory.get(key)
            if index is not None:
                self._memory.move_to_end(key)
                self.stats["memory_hits"] += 1
                return index
        disk = self._disk_path(path, key, folder) if folder is not None else None
        index = self._from_disk(disk) if disk is not None else None
        if index is None:
            index = index_file(path)
            self._count("built")
            if disk is not None:
                self._to_disk(disk, index)
        with self._lock:
            self._memory[key] = index
            while len(self._memory) > self.max_entries:
                self._memory.popitem(last=False)
        return index

    def clear(self) -> None:
        """Forget the in-memory indexes (the files on disk stay)."""
        with self._lock:
            self._memory.clear()

    def _count(self, what: str) -> None:
        with self._lock:
            self.stats[what] += 1

    def _disk_path(self, path: str, identity: tuple, folder: Path) -> Path:
        """``folder/index-v1-<content sha256>.npz``. The content hash of a file already seen
        (same path, size, mtime, inode) is read from ``folder/by-file/<hash of that identity>``
        instead of from the whole file: reading a 1 GB video costs about as much as demuxing
        it, so without this a new process would save little."""
        by_file = folder / "by-file" / hashlib.sha256(repr(identity).encode()).hexdigest()[:32]
        try:
            content = by_file.read_text().strip()
        except OSError:
            content = ""
        if len(content) != 64 or any(c not in "0123456789abcdef" for c in content):
            content = file_sha256(path)
            self._count_hash()
            _write_atomically(by_file, content.encode())
        return folder / f"index-v{_DISK_FORMAT}-{content}.npz"

    def _count_hash(self) -> None:
        with self._lock:
            self.hashed += 1

    def _from_disk(self, disk: Path) -> VideoIndex | None:
        try:
            with np.load(disk, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                if meta.get("av") != av.__version__:  # another FFmpeg may demux differently
                    return None
                arrays = {name: data[name].astype(dtype) for name, dtype in (
                    ("pts", np.int64), ("times", np.float64), ("keyframe_pts", np.int64))}
                for array in arrays.values():
                    array.setflags(write=False)
                index = VideoIndex(
                    stream_index=meta["stream_index"], **arrays,
                    duration_s=meta["duration_s"], rotation=meta["rotation"],
                    coded_size=tuple(meta["coded_size"]), codec=meta["codec"],
                    container=meta["container"], open_gop=meta["open_gop"],
                    time_base=tuple(meta["time_base"]),
                )
        except (OSError, ValueError, KeyError, TypeError, EOFError,
                zipfile.BadZipFile):  # absent, partial, corrupt or foreign: built afresh
            return None
        self._count("disk_hits")
        return index

    def _to_disk(self, final: Path, index: VideoIndex) -> None:
        meta = {"av": av.__version__, "stream_index": index.stream_index,
                "duration_s": index.duration_s, "rotation": index.rotation,
                "coded_size": list(index.coded_size), "codec": index.codec,
                "container": index.container, "open_gop": index.open_gop,
                "time_base": list(index.time_base)}
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            partial = final.with_name(f"{final.stem}.{os.getpid()}.{threading.get_ident()}.tmp.npz")
            np.savez(partial, pts=index.pts, times=index.times,
                     keyframe_pts=index.keyframe_pts, meta=np.asarray(json.dumps(meta)))
            os.replace(partial, final)  # readers never see a half-written index
        except OSError:  # a read-only or full disk only costs the next open an index build
            pass


def _write_atomically(final: Path, data: bytes) -> None:
    """Write to a temporary name, then rename: another process sees the whole file or none.
    A file that cannot be written only costs the next open a hash."""
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        partial = final.with_name(f"{final.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        partial.write_bytes(data)
        os.replace(partial, final)
    except OSError:
        pass


# Process-wide and bounded (memory only): in one process the same video is opened again and
# again - plan, frames, thumbnails, export - and each open would otherwise demux the whole
# file. It holds no state beyond what the files on disk already say (keys include mtime).
DEFAULT_INDEX_CACHE = IndexCache(max_entries=32)

