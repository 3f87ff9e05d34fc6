"""Video probing and frame sampling: which frames of a video a model sees, and when they are.

TPO's preference pairs differ only in *which* frames the model is shown, so this module is
exact about time. Every video is indexed once by demuxing its packets with PyAV (no pixel
decode): that gives each frame's presentation time in seconds, exact to the frame (float64
from the integer pts), and the keyframes. Plans pick frames by time from that index:

* ``uniform``   - n frames evenly spaced in time over the whole video,
* ``segment``   - evenly spaced in time inside a half-open segment ``[start, end)``,
* ``excluding`` - evenly spaced over the video with ``[start, end)`` cut out,
* ``sparse``    - k of a planned set (evenly spaced or seeded-random picks), so sparse is
  always a subset of dense.

Pixels come from decord (the stack's reader; ``get_batch`` seeks, so hours-long videos are
never decoded in full) where its seeking is exact: closed-GOP MP4/MOV and Matroska/WebM, i.e.
most files. Elsewhere decord 0.6 silently returns wrong frames (open-GOP streams such as
x265's default, MPEG-TS, FLV, H.264 in AVI) or cannot open the file, and PyAV reads it: it
seeks to the keyframe before each wanted frame and decodes forward, matching frames by pts.
Both readers return the same pixels (upright RGB, display rotation applied) for an index, and
both use the one index, so timestamps never depend on the reader.

Anything that is not a readable video - missing, empty, text, image, audio only, truncated -
raises :class:`VideoError` naming the file and the reason.

Times are seconds from the video stream's start (FFmpeg's ``start_time``; for almost every
file the first frame is at 0.0). A frame is "shown" from its timestamp until the next one.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from dataclasses import dataclass

import av
import numpy as np
from PIL import Image

from tpo.errors import TPOError


try:  # decord is the primary reader; without it every file goes through PyAV
    import decord
    from decord._ffi.base import DECORDError  # not a RuntimeError subclass
except ImportError:  # pragma: no cover - decord is a pinned dependency
    decord = None
    DECORDError = RuntimeError

__all__ = ["Frames", "Video", "VideoError", "VideoInfo", "open_video", "probe", "sample"]

log = logging.getLogger(__name__)

BACKENDS = ("auto", "decord", "pyav")
# A stream whose packets end this much before its header's duration was cut short:
# more than TRUNCATION_SLACK_S seconds and more than TRUNCATION_SLACK_FRACTION of the header.
TRUNCATION_SLACK_S = 0.5
TRUNCATION_SLACK_FRACTION = 0.05
# decord decodes in batches of at most this many bytes of RGB frames, so a long list of 4K
# frames resized on the fly (max_side) never holds them all at full size (each get_batch call
# costs a rewind in decord, so batches are as large as this allows)
DECODE_BATCH_BYTES = 256 * 2**20
# Demuxers on which decord's get_batch returns exactly the frames asked for (see _decord_unsafe).
_DECORD_CONTAINERS = frozenset({"mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm"})
# Leading bytes of containers a video can be in: a file that starts like one but cannot be
# opened is reported as truncated or corrupt rather than "not a video".
_CONTAINER_MAGIC = (
    (4, b"ftyp"), (4, b"moov"), (4, b"mdat"), (4, b"free"), (4, b"wide"),  # MP4 / MOV
    (0, b"\x1a\x45\xdf\xa3"),  # Matroska / WebM (EBML)
    (0, b"RIFF"), (0, b"FLV"), (0, b"OggS"), (0, b"\x00\x00\x01\xba"),  # AVI, FLV, Ogg, MPEG-PS
)


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
class VideoInfo:
    """What a video is, as the sampler sees it."""

    path: str
    duration_s: float  # from 0 to the end of the last frame
    fps: float  # average: n_frames / duration_s (variable frame rate videos have no single one)
    n_frames: int
    width: int  # of the upright frames as returned by sampling
    height: int
    rotation: int  # clockwise display rotation from the container, 0/90/180/270 (phone "rotate")
    codec: str  # FFmpeg codec name: "h264", "hevc", "vp9", ...
    backend: str  # reader that decodes the pixels: "decord" or "pyav"

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Frames:
    """Frames chosen by a plan, ascending in time."""

    timestamps: list[float]  # seconds: each the presentation time of the frame returned
    indices: list[int]  # frame indices in the video (0-based, presentation order)
    images: list[np.ndarray] | None  # each (H, W, 3) uint8 RGB upright; None if not decoded


# --------------------------------------------------------------------------------------------
# Index: per-frame times from the packets, without decoding pixels


@dataclass(frozen=True)
class _Index:
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


def _open_container(path: str) -> av.container.InputContainer:
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


def _index_file(path: str) -> _Index:
    """Check, open and index a file; VideoError for anything that is not a readable video."""
    _check_path(path)
    with _open_container(path) as container:
        stream = _video_stream(path, container)
        return _build_index(path, container, stream)


def _build_index(path: str, container, stream) -> _Index:
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
    return _Index(
        stream_index=stream.index, pts=pts_arr, times=times,
        keyframe_pts=np.sort(np.asarray(keys, np.int64)), duration_s=duration,
        rotation=round(-first.rotation / 90) * 90 % 360,  # PyAV counts counter-clockwise
        coded_size=(first.width, first.height), codec=stream.codec_context.name,
        container=container.format.name, open_gop=open_gop,
    )


# --------------------------------------------------------------------------------------------
# Planning: target times -> frame indices


def _pick(times: np.ndarray, candidates: np.ndarray, targets: np.ndarray) -> list[int]:
    """Map each target time (s) to the candidate frame shown at that time, without repeats.

    When two targets fall on one frame (a frame held long in a variable-frame-rate video), the
    later target takes the free candidate nearest in time, so the result has
    min(len(targets), len(candidates)) frames.
    """
    if len(targets) >= len(candidates):
        return candidates.tolist()
    cand_t = times[candidates]
    shown = np.clip(np.searchsorted(cand_t, targets, side="right") - 1, 0, len(cand_t) - 1)
    taken = np.zeros(len(cand_t), dtype=bool)
    for pos, t in zip(shown.tolist(), targets.tolist()):
        if taken[pos]:
            pos = _nearest_free(cand_t, taken, pos, t)
        taken[pos] = True
    return candidates[taken].tolist()


def _nearest_free(cand_t: np.ndarray, taken: np.ndarray, pos: int, t: float) -> int:
    left, right = pos - 1, pos + 1
    while left >= 0 and taken[left]:
        left -= 1
    while right < len(taken) and taken[right]:
        right += 1
    if right >= len(taken) or (left >= 0 and t - cand_t[left] <= cand_t[right] - t):
        return left
    return right


def _centres(start: float, length: float, n: int) -> np.ndarray:
    """n bin centres evenly spaced over [start, start + length) seconds."""
    return start + (np.arange(n) + 0.5) * (length / n)


def _check_count(name: str, value: int) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


# --------------------------------------------------------------------------------------------
# Readers: indices -> upright RGB frames


class _PyAVReader:
    """Seeks to the keyframe before each wanted frame and decodes forward to it.

    Frames are matched by pts, so a seek that lands early only costs decoding. A seek that
    lands late (MPEG-TS and FLV seek by estimate) would skip the frame: then the reader stops
    seeking and decodes forward from the start of the file instead - slow but exact.
    """

    name = "pyav"

    def __init__(self, path: str, index: _Index):
        self._path, self._index = path, index
        self._container = self._stream = None  # opened on the first decode
        self._seekable = True

    def decode(self, indices: list[int], max_side: int | None) -> list[np.ndarray]:
        """Upright RGB frames for ascending, unique `indices`, fitted to max_side."""
        frames, last, out = None, None, []
        for i in indices:
            target = int(self._index.pts[i])
            if frames is None or target <= last or self._keyframe_in(last, target):
                frames = self._seek(target)
            frame = self._find(frames, target)
            if frame is None and self._seekable:  # the seek overshot: go slow but exact
                self._seekable = False
                frames = self._seek(target)
                frame = self._find(frames, target)
            if frame is None:
                raise VideoError(self._path, f"file is truncated or corrupt (frame {i} at "
                                             f"{self._index.times[i]:.3f} s cannot be decoded)")
            out.append(_fit(_upright(frame.to_ndarray(format="rgb24"), frame.rotation), max_side))
            last = target
        return out

    def _keyframe_in(self, after: int, upto: int) -> bool:
        """Whether a keyframe lies in (after, upto]: seeking there beats decoding through."""
        keys = self._index.keyframe_pts
        return self._seekable and bool(
            np.searchsorted(keys, upto, side="right") > np.searchsorted(keys, after, side="right"))

    @staticmethod
    def _find(frames, target: int):
        """Consume decoded frames up to the one with pts == target (None if it is skipped)."""
        frame = next((f for f in frames if f.pts is not None and f.pts >= target), None)
        return frame if frame is not None and frame.pts == target else None

    def _seek(self, target: int):
        """A decoded-frame iterator starting at or before the frame with pts == target."""
        try:
            if self._seekable:
                self._open()
                self._container.seek(target, stream=self._stream, backward=True)
            else:  # reopening is the one reliable way back to the first packet
                self.close()
                self._open()
        except av.error.FFmpegError as err:
            raise VideoError(self._path, f"file is truncated or corrupt ({err})") from err
        return self._frames()

    def _frames(self):
        try:
            yield from self._container.decode(self._stream)
        except av.error.FFmpegError as err:
            raise VideoError(self._path, f"file is truncated or corrupt ({err})") from err

    def _open(self) -> None:
        if self._container is None:
            self._container = _open_container(self._path)
            self._stream = self._container.streams[self._index.stream_index]
            self._stream.codec_context.thread_type = "AUTO"

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = self._stream = None


class _DecordReader:
    """decord's VideoReader, checked against the PyAV index so indices mean the same frames."""

    name = "decord"

    def __init__(self, path: str, index: _Index, upright_size: tuple[int, int]):
        self._vr = decord.VideoReader(path, ctx=decord.cpu(0))
        if len(self._vr) != len(index.times):
            raise DECORDError(f"decord sees {len(self._vr)} frames, the index {len(index.times)}")
        # decord keeps float32 seconds: agreeing to a millisecond means the same frames
        theirs = self._vr.get_frame_timestamp(range(len(self._vr)))[:, 0]
        if not np.allclose(theirs, index.times, rtol=1e-6, atol=1e-3):
            raise DECORDError("decord's frame times differ from the index")
        self._shape = (upright_size[1], upright_size[0], 3)

    def decode(self, indices: list[int], max_side: int | None) -> list[np.ndarray]:
        """Upright RGB frames for ascending, unique `indices`, fitted to max_side."""
        out = []
        per_batch = max(1, DECODE_BATCH_BYTES // int(np.prod(self._shape)))
        for start in range(0, len(indices), per_batch):
            batch = self._vr.get_batch(indices[start:start + per_batch]).asnumpy()
            if batch.shape[1:] != self._shape:
                # decord 0.6 mis-shapes frames whose RGB row padding reaches a pixel's width
                # (e.g. 48 px wide: shape (H, 48, 4)); never hand such frames on
                raise DECORDError(f"decord returned frames of shape {batch.shape[1:]}")
            out.extend(_fit(image, max_side) for image in batch)
        return out

    def close(self) -> None:
        self._vr = None  # decord has no close(); dropping the reader frees the file


def _decord_unsafe(index: _Index) -> str | None:
    """Why decord's seeking cannot be trusted to return the right frames here, or None.

    Measured with decord 0.6.0 on get_batch of random indices: exact on closed-GOP MP4/MOV
    and Matroska/WebM (H.264, HEVC, VP9); wrong frames, silently, on open-GOP streams (x265's
    default, x264 open-gop: it counts frames after a seek, and the leading pictures it cannot
    decode shift the count), MPEG-TS, FLV and H.264 in AVI.
    """
    if decord is None:
        return "decord is not installed"
    if index.container not in _DECORD_CONTAINERS:
        return f"decord seeks inexactly in {index.container} files"
    if index.open_gop:
        return "decord returns wrong frames after seeking in open-GOP streams"
    return None


def _upright(image: np.ndarray, ccw_rotation: int) -> np.ndarray:
    k = round(ccw_rotation / 90) % 4
    return np.ascontiguousarray(np.rot90(image, k)) if k else image


def _fit(image: np.ndarray, max_side: int | None) -> np.ndarray:
    """Downscale (never upscale) so the longer side is at most max_side px, keeping the aspect."""
    h, w = image.shape[:2]
    if max_side is None or max(h, w) <= max_side:
        return image
    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))


# --------------------------------------------------------------------------------------------
# The handle


class Video:
    """An open video: its info, per-frame times, plans, and decoding of chosen frames.

    Open with :func:`open_video`; use as a context manager (or call :meth:`close`). Opening
    indexes the packets once; plans are pure arithmetic on :attr:`times`, and :meth:`decode`
    reads only the frames asked for, so one handle can serve every plan of a video (decode
    the union once and reuse it). Not safe to share between threads.
    """

    def __init__(self, path: str | os.PathLike, backend: str = "auto"):
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.path = os.fspath(path)
        self._index = _index_file(self.path)
        self.times: np.ndarray = self._index.times  # (n_frames,) float64 s, read-only
        self._backend = backend
        self._reader = self._make_reader(backend)
        n, duration = len(self.times), self._index.duration_s
        width, height = self._upright_size()
        self.info = VideoInfo(
            path=self.path, duration_s=duration, fps=n / duration if duration > 0 else 0.0,
            n_frames=n, width=width, height=height, rotation=self._index.rotation,
            codec=self._index.codec, backend=self._reader.name,
        )

    def _upright_size(self) -> tuple[int, int]:
        w, h = self._index.coded_size
        return (h, w) if self._index.rotation in (90, 270) else (w, h)

    def _make_reader(self, backend: str):
        if backend == "auto":
            unsafe = _decord_unsafe(self._index)
            if unsafe:
                log.info("%s: %s; reading it with PyAV", self.path, unsafe)
                return _PyAVReader(self.path, self._index)
        if backend == "pyav":
            return _PyAVReader(self.path, self._index)
        try:
            return _DecordReader(self.path, self._index, self._upright_size())
        except (DECORDError, RuntimeError) as err:
            if backend == "decord":
                raise VideoError(self.path, f"decord cannot read this file ({err})") from err
            log.info("%s: decord cannot read it (%s); reading it with PyAV", self.path, err)
            return _PyAVReader(self.path, self._index)

    # -- context manager ---------------------------------------------------------------------

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> Video:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- plans (frame indices, ascending; no pixels are decoded) --------------------------------

    def uniform(self, n: int = 32) -> list[int]:
        """n frames evenly spaced in time over the whole video.

        Target times are the centres of n equal bins of [0, duration); each maps to the frame
        shown at that time (per-frame timestamps, so variable frame rate is handled). Fewer
        than n only when the video has fewer than n frames.
        """
        _check_count("n", n)
        targets = _centres(0.0, self.info.duration_s, n)
        return _pick(self.times, np.arange(len(self.times)), targets)

    def segment(self, start: float, end: float, n: int = 32) -> list[int]:
        """n frames evenly spaced in time inside [start, end) seconds (half-open).

        Every frame returned has start <= t < end; fewer than n when the segment holds fewer.
        Raises ValueError for an invalid segment or one that holds no frame.
        """
        _check_count("n", n)
        start, end = self._check_segment(start, end)
        candidates = np.flatnonzero((self.times >= start) & (self.times < end))
        if not len(candidates):
            raise ValueError(f"segment [{start:g}, {end:g}) s holds no frame of {self.path}")
        length = min(end, self.info.duration_s) - start
        return _pick(self.times, candidates, _centres(start, length, n))

    def excluding(self, start: float, end: float, n: int = 32) -> list[int]:
        """n frames evenly spaced in time over the video with [start, end) cut out.

        The time before start and from end on is joined and sampled as one timeline; every
        frame returned has t < start or t >= end, so it never overlaps :meth:`segment`.
        Raises ValueError for an invalid segment or when nothing is left outside it.
        """
        _check_count("n", n)
        start, end = self._check_segment(start, end)
        candidates = np.flatnonzero((self.times < start) | (self.times >= end))
        if not len(candidates):
            raise ValueError(f"no frame of {self.path} lies outside [{start:g}, {end:g}) s")
        kept = start + max(0.0, self.info.duration_s - end)  # seconds left after the cut
        targets = _centres(0.0, kept, n)
        targets = np.where(targets < start, targets, targets + (end - start))  # back to video time
        return _pick(self.times, candidates, targets)

    @staticmethod
    def sparse(indices: list[int], k: int, seed: int | None = None) -> list[int]:
        """k of the planned `indices`: evenly spaced picks, or random ones when seed is given.

        Always a subset of `indices` (all of them when k >= len(indices)), ascending.
        """
        _check_count("sparse", k)
        indices = sorted(indices)
        m = len(indices)
        if k >= m:
            return indices
        if seed is None:
            picks = ((np.arange(k) + 0.5) * (m / k)).astype(int)  # bin centres among the plan
        else:
            picks = np.sort(np.random.default_rng(seed).choice(m, size=k, replace=False))
        return [indices[p] for p in picks.tolist()]

    def plan(self, n: int = 32, *, segment: tuple[float, float] | None = None,
             exclude_segment: bool = False, sparse: int | None = None,
             seed: int | None = None) -> list[int]:
        """Frame indices for :func:`sample`'s arguments (see there)."""
        if segment is None:
            if exclude_segment:
                raise ValueError("exclude_segment=True needs a segment")
            indices = self.uniform(n)
        elif exclude_segment:
            indices = self.excluding(*segment, n=n)
        else:
            indices = self.segment(*segment, n=n)
        return indices if sparse is None else self.sparse(indices, sparse, seed)

    def _check_segment(self, start: float, end: float) -> tuple[float, float]:
        start, end = float(start), float(end)
        duration = self.info.duration_s
        if not (math.isfinite(start) and math.isfinite(end)) or not 0 <= start < end:
            raise ValueError(f"segment must satisfy 0 <= start < end, got [{start:g}, {end:g})")
        if start >= duration:
            raise ValueError(f"segment [{start:g}, {end:g}) s starts after the end of "
                             f"{self.path} ({duration:.3f} s)")
        return start, end

    # -- pixels ------------------------------------------------------------------------------

    def decode(self, indices: list[int], *, max_side: int | None = None) -> list[np.ndarray]:
        """(H, W, 3) uint8 RGB upright frames for `indices` (any order, repeats allowed).

        Only the frames asked for are decoded. With max_side, frames are downscaled so the
        longer side is at most max_side px. If decord fails on a frame, an "auto" handle
        switches to PyAV for good (and :attr:`info` says so).
        """
        if max_side is not None:
            _check_count("max_side", max_side)
        n = len(self.times)
        wanted = sorted({int(i) for i in indices})
        if wanted and not (0 <= wanted[0] and wanted[-1] < n):
            raise IndexError(f"frame indices must be in [0, {n}), got {wanted[0]}..{wanted[-1]}")
        try:
            images = self._reader.decode(wanted, max_side)
        except DECORDError as err:
            if self._backend == "decord":
                raise VideoError(self.path, f"decord cannot decode this file ({err})") from err
            log.warning("%s: decord failed (%s); decoding with PyAV", self.path, err)
            self._reader.close()
            self._reader = _PyAVReader(self.path, self._index)
            self.info = dataclasses.replace(self.info, backend=self._reader.name)
            images = self._reader.decode(wanted, max_side)
        by_index = dict(zip(wanted, images))
        return [by_index[int(i)] for i in indices]

    def frames(self, indices: list[int], *, decode: bool = True,
               max_side: int | None = None) -> Frames:
        """Frames for `indices` (ascending, as plans return them), with their timestamps."""
        if max_side is not None:
            _check_count("max_side", max_side)
        indices = [int(i) for i in indices]
        return Frames(
            timestamps=[float(self.times[i]) for i in indices],
            indices=indices,
            images=self.decode(indices, max_side=max_side) if decode else None,
        )

    def sample(self, n: int = 32, *, segment: tuple[float, float] | None = None,
               exclude_segment: bool = False, sparse: int | None = None,
               seed: int | None = None, decode: bool = True,
               max_side: int | None = None) -> Frames:
        """:meth:`plan` then :meth:`frames`; see :func:`sample`."""
        indices = self.plan(n, segment=segment, exclude_segment=exclude_segment,
                            sparse=sparse, seed=seed)
        return self.frames(indices, decode=decode, max_side=max_side)


# --------------------------------------------------------------------------------------------
# Module functions


def open_video(path: str | os.PathLike, backend: str = "auto") -> Video:
    """Open and index a video (packets only, plus its first frame for the rotation).

    backend: "auto" decodes with decord where its seeking is exact (closed-GOP MP4/MOV and
    Matroska/WebM) and with PyAV elsewhere or when decord cannot read the file; "decord" or
    "pyav" force one (tests, benchmarks - forced decord may return wrong frames on files
    "auto" keeps from it). Raises VideoError for anything that is not a readable video.
    """
    return Video(path, backend)


def probe(path: str | os.PathLike) -> VideoInfo:
    """Duration, fps, frame count, upright size, rotation, codec and reader of a video.

    Decodes no pixels beyond the first frame. Raises VideoError for unreadable files.
    """
    with open_video(path) as video:
        return video.info


def sample(path: str | os.PathLike, n: int = 32, *, segment: tuple[float, float] | None = None,
           exclude_segment: bool = False, sparse: int | None = None, seed: int | None = None,
           decode: bool = True, max_side: int | None = None) -> Frames:
    """Choose frames of a video by time and (optionally) decode them.

    * n: frames planned, evenly spaced in time (bin centres, each mapped to the frame shown
      then; repeats removed, so fewer than n only when there are fewer frames to choose from).
    * segment=(start, end): seconds, half-open; frames with start <= t < end only.
      Requires 0 <= start < end and start < duration (ValueError otherwise).
    * exclude_segment=True (with segment): the video with [start, end) cut out; frames with
      t < start or t >= end only - never overlapping the segment's frames.
    * sparse=k: k of the planned frames (evenly spaced among them; random when seed is given),
      so the sparse frames are always a subset of the dense ones.
    * decode=False: timestamps and indices only, no pixels decoded (fast).
    * max_side: downscale decoded frames so the longer side is at most this many px.

    Timestamps are the frames' own presentation times in seconds (exact to the frame).
    """
    with open_video(path, backend="auto" if decode else "pyav") as video:
        return video.sample(n, segment=segment, exclude_segment=exclude_segment,
                            sparse=sparse, seed=seed, decode=decode, max_side=max_side)
