"""Video probing and frame sampling: which frames of a video a model sees, and when they are.

TPO's preference pairs differ only in *which* frames the model is shown, so this module is
exact about time. Every video is indexed once by demuxing its packets (no pixel decode,
:mod:`tpo.media.index`; cached, so reopening a video is cheap): that gives each frame's
presentation time in seconds, exact to the frame, and the keyframes. Plans pick frames by
time from that index:

* ``uniform``   - n frames evenly spaced in time over the whole video,
* ``segment``   - evenly spaced in time inside a half-open segment ``[start, end)``,
* ``excluding`` - evenly spaced over the video with ``[start, end)`` cut out,
* ``sparse``    - k of a planned set (evenly spaced or seeded-random picks), so sparse is
  always a subset of dense.

Pixels come from one of three readers (:mod:`tpo.media.readers`), all checked against the
one index, so an index means the same frame and timestamps never depend on the reader:

* ``"auto"`` (default) - the fastest exact reader here: PyAV, decoding the keyframe groups
  behind different frames in parallel on the machine's cores (MP4/MOV, Matroska/WebM), or
  one decoder seeking frame by frame elsewhere (MPEG-TS, FLV, AVI: exact there too).
* ``"torchcodec"`` - torchcodec's exact mode (the decoder transformers and vLLM use), also
  parallel by keyframe group; ``device="cuda"`` decodes with NVDEC.
* ``"pyav"`` - PyAV, as "auto" does; ``"decord"`` - decord (the stack's reader), refused
  on open-GOP streams, MPEG-TS, FLV and AVI, where it returns wrong frames after a seek.

CPU readers return the same pixels (upright RGB, display rotation applied, FFmpeg's swscale
YUV -> RGB). Anything that is not a readable video - missing, empty, text, image, audio
only, truncated - raises :class:`VideoError` naming the file and the reason.

Times are seconds from the video stream's start (FFmpeg's ``start_time``; for almost every
file the first frame is at 0.0). A frame is "shown" from its timestamp until the next one.

Where a caller does not name a reader or an index cache, :func:`decoding` decides: ``with
decoding(backend="decord", index_dir=DATA/cache/index):`` makes every video opened inside
(by this thread, down any call chain: generation, evaluation, thumbnails) use that reader
and keep packet indexes on disk, so the next process reopens a video without demuxing it.
The ``tpo`` command enters it for each command (``--backend``, ``data/cache/index``).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from tpo.errors import TPOError
from tpo.media.index import DEFAULT_INDEX_CACHE, IndexCache, VideoError, VideoIndex
from tpo.media.readers import (
    DecordReader, GopParallelReader, PyAVReader, ReaderError, TorchCodecReader, backend_problem,
    default_workers, upright_size,
)

__all__ = ["BACKENDS", "BackendUnavailable", "Decoding", "Frames", "IndexCache", "Video",
           "VideoError", "VideoInfo", "available_backends", "check_backend", "current_decoding",
           "decoding", "open_video", "probe", "sample"]

log = logging.getLogger(__name__)

BACKENDS = ("auto", "pyav", "torchcodec", "decord")


# --------------------------------------------------------------------------------------------
# Which reader, and where packet indexes are cached, when the caller does not say


class BackendUnavailable(TPOError):
    """A reader asked for by name that cannot run here (not installed, or cannot load)."""

    def __init__(self, backend: str, why: str):
        self.backend, self.why = backend, why
        super().__init__(f"backend {backend} is not available here ({why}); available: "
                         f"{', '.join(available_backends())}")

    def __reduce__(self):  # picklable across job processes despite the two-argument init
        return type(self), (self.backend, self.why)


def available_backends() -> list[str]:
    """The backends that can run in this environment ("auto" and "pyav" always can)."""
    return [b for b in BACKENDS if backend_problem(b) is None]


def check_backend(backend: str) -> str:
    """``backend`` if it can run here; ValueError for an unknown name,
    :class:`BackendUnavailable` (one line naming it and the available ones) for one that is
    not installed or cannot load."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    why = backend_problem(backend)
    if why:
        raise BackendUnavailable(backend, why)
    return backend


@dataclass(frozen=True)
class Decoding:
    """The reader and the on-disk packet-index folder videos are opened with by default."""

    backend: str = "auto"
    index_dir: Path | None = None  # None: indexes cached in memory only


# Scoped like decimal's local context: set by a ``with decoding(...)`` block, seen by the code
# it calls in this thread (and asyncio task), back to the outer value when the block ends.
_DECODING: ContextVar[Decoding] = ContextVar("tpo_decoding", default=Decoding())


def current_decoding() -> Decoding:
    """The :class:`Decoding` in force here (the default: "auto", indexes in memory only)."""
    return _DECODING.get()


@contextmanager
def decoding(backend: str | None = None,
             index_dir: str | os.PathLike | None = None) -> Iterator[Decoding]:
    """Open videos inside this block with ``backend`` and cache their packet indexes in
    ``index_dir`` (each None: as outside the block). Calls that name a backend or an
    ``index_cache`` themselves are not changed. ValueError for an unknown backend."""
    outer = _DECODING.get()
    if backend is not None and backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    inner = Decoding(backend or outer.backend,
                     Path(index_dir) if index_dir is not None else outer.index_dir)
    token = _DECODING.set(inner)
    try:
        yield inner
    finally:
        _DECODING.reset(token)


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
    backend: str  # reader that decodes the pixels: "pyav", "torchcodec" or "decord"

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Frames:
    """Frames chosen by a plan, ascending in time."""

    timestamps: list[float]  # seconds: each the presentation time of the frame returned
    indices: list[int]  # frame indices in the video (0-based, presentation order)
    images: list[np.ndarray] | None  # each (H, W, 3) uint8 RGB upright; None if not decoded


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
# The handle


class Video:
    """An open video: its info, per-frame times, plans, and decoding of chosen frames.

    Open with :func:`open_video`; use as a context manager (or call :meth:`close`). Opening
    indexes the packets once; plans are pure arithmetic on :attr:`times`, and :meth:`decode`
    reads only the frames asked for, so one handle can serve every plan of a video (decode
    the union once and reuse it). Not safe to share between threads.
    """

    def __init__(self, path: str | os.PathLike, backend: str | None = None, *,
                 device: str = "cpu", workers: int | None = None,
                 index_cache: IndexCache | None = None):
        context = current_decoding()
        backend = backend or context.backend
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if not (device == "cpu" or device == "cuda" or device.startswith("cuda:")):
            raise ValueError(f'device must be "cpu", "cuda" or "cuda:N", got {device!r}')
        if device != "cpu" and backend not in ("auto", "torchcodec"):
            raise ValueError(f"only torchcodec decodes on {device}, not {backend}")
        if workers is None:
            workers = default_workers()
        _check_count("workers", workers)
        self.path = os.fspath(path)
        self._index: VideoIndex = (
            index_cache.get(self.path) if index_cache is not None
            else DEFAULT_INDEX_CACHE.get(self.path, directory=context.index_dir))
        self.times: np.ndarray = self._index.times  # (n_frames,) float64 s, read-only
        self._backend, self._device, self._workers = backend, device, workers
        self._reader = self._make_reader()
        n, duration = len(self.times), self._index.duration_s
        width, height = upright_size(self._index)
        self.info = VideoInfo(
            path=self.path, duration_s=duration, fps=n / duration if duration > 0 else 0.0,
            n_frames=n, width=width, height=height, rotation=self._index.rotation,
            codec=self._index.codec, backend=self._reader.name,
        )

    def _make_reader(self):
        """The reader for the backend asked for; ReaderError (a VideoError) if it cannot."""
        path, index = self.path, self._index
        if self._backend == "decord":
            return DecordReader(path, index)
        if self._backend == "torchcodec" or self._device != "cpu":
            try:
                if self._device != "cpu" or not index.seeks_exactly:  # one GPU decoder
                    return TorchCodecReader(path, index, device=self._device)
                return GopParallelReader(
                    index, lambda threads: TorchCodecReader(path, index, threads), self._workers)
            except ReaderError as err:
                if self._backend == "torchcodec":
                    raise
                log.warning("%s: %s; decoding on the CPU with PyAV", path, err.reason)
        return self._pyav_reader()

    def _pyav_reader(self):
        """PyAV: keyframe groups in parallel where seeking is exact, else one seeking decoder."""
        path, index = self.path, self._index
        if index.seeks_exactly and self._workers > 1:
            return GopParallelReader(
                index, lambda threads: PyAVReader(path, index, threads), self._workers)
        if not index.seeks_exactly:
            log.info("%s: seeking in %s files is inexact; one PyAV decoder reads it",
                     path, index.container)
        return PyAVReader(path, index)

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
        longer side is at most max_side px. If the GPU decoder fails on a frame, an "auto"
        handle switches to PyAV for good (and :attr:`info` says so); a forced backend that
        cannot be trusted on the file raises VideoError rather than return wrong frames.
        """
        if max_side is not None:
            _check_count("max_side", max_side)
        n = len(self.times)
        wanted = sorted({int(i) for i in indices})
        if wanted and not (0 <= wanted[0] and wanted[-1] < n):
            raise IndexError(f"frame indices must be in [0, {n}), got {wanted[0]}..{wanted[-1]}")
        try:
            images = self._reader.decode(wanted, max_side)
        except ReaderError as err:
            if self._backend != "auto":
                raise
            log.warning("%s: %s; decoding with PyAV", self.path, err.reason)
            self._reader.close()
            self._reader = self._pyav_reader()
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


def open_video(path: str | os.PathLike, backend: str | None = None, *, device: str = "cpu",
               workers: int | None = None, index_cache: IndexCache | None = None) -> Video:
    """Open and index a video (packets only, plus its first frame for the rotation).

    * backend: None (default): the one :func:`decoding` sets, else "auto". "auto" reads
      with PyAV, decoding the keyframe groups behind the wanted frames in parallel where
      seeking is exact (MP4/MOV, Matroska/WebM) - the fastest exact reader measured
      (bench/sample_bench.py) - and with one seeking decoder elsewhere. "torchcodec", "pyav" or "decord" force one; a forced reader that cannot be
      trusted on a file raises VideoError (decord on open-GOP streams, MPEG-TS, FLV, AVI;
      torchcodec outside MP4/MOV and Matroska/WebM) - it never returns wrong frames.
    * device: "cpu", or "cuda" / "cuda:N" to decode with NVDEC through torchcodec (backend
      "auto" or "torchcodec"; "auto" falls back to PyAV on the CPU when NVDEC cannot).
    * workers: decoding threads for the parallel readers (default: twice the usable CPU
      cores, at most 16); 1 decodes with one decoder.
    * index_cache: where the packet index is cached (default: a process-wide in-memory
      cache, also on disk in the folder :func:`decoding` names; pass ``IndexCache(directory)``
      to choose here).

    Raises VideoError for anything that is not a readable video.
    """
    return Video(path, backend, device=device, workers=workers, index_cache=index_cache)


def probe(path: str | os.PathLike, backend: str | None = None) -> VideoInfo:
    """Duration, fps, frame count, upright size, rotation, codec and reader of a video.

    Decodes no pixels beyond the first frame. Raises VideoError for unreadable files.
    """
    with open_video(path, backend) as video:
        return video.info


def sample(path: str | os.PathLike, n: int = 32, *, segment: tuple[float, float] | None = None,
           exclude_segment: bool = False, sparse: int | None = None, seed: int | None = None,
           decode: bool = True, max_side: int | None = None,
           backend: str | None = None) -> Frames:
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
    * backend: the reader (see :func:`open_video`).

    Timestamps are the frames' own presentation times in seconds (exact to the frame).
    """
    with open_video(path, backend) as video:  # readers open lazily: decode=False decodes nothing
        return video.sample(n, segment=segment, exclude_segment=exclude_segment,
                            sparse=sparse, seed=seed, decode=decode, max_side=max_side)
