"""Readers: frame indices of an indexed video -> upright RGB frames, exactly those frames.

Three decoders, each checked against the one packet index (:mod:`tpo.media.index`) so an
index means the same frame whichever decodes it, and all returning the same pixels
(FFmpeg's swscale YUV -> RGB defaults; NVDEC on a GPU is the one exception, see below):

* :class:`PyAVReader` - seeks to the keyframe before each wanted frame and decodes forward,
  matching frames by pts; exact in every container (where a seek lands late it decodes from
  the start instead).
* :class:`TorchCodecReader` - torchcodec's ``VideoDecoder`` in exact mode (the decoder
  transformers' video processors and vLLM use); every frame it returns is checked against
  the index by pts. With ``device="cuda"`` it decodes on the GPU (NVDEC) where torchcodec
  supports the codec; NVDEC converts YUV -> RGB with its own kernels, so those pixels may
  differ from the CPU readers' by a few levels.
* :class:`DecordReader` - decord's ``get_batch`` (the stack's reader, kept selectable),
  exact only on closed-GOP MP4/MOV and Matroska/WebM (:func:`decord_unsafe`).

:class:`GopParallelReader` goes past one decoder: the GOPs behind different targets decode
independently, so it splits the targets by keyframe and decodes the groups on several
threads at once, one decoder per thread (PyAV and torchcodec release the GIL while
decoding). The pixels are the same; only the order of work changes.

A reader that cannot be trusted on a file raises :class:`ReaderError`; an "auto" handle
then reads the file with PyAV instead.
"""

from __future__ import annotations

import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Protocol

import av
import numpy as np
from PIL import Image

from tpo.media.index import VideoError, VideoIndex, open_container

try:  # decord is the stack's reader; without it, its backend is unavailable
    import decord
    from decord._ffi.base import DECORDError  # not a RuntimeError subclass
except ImportError:  # pragma: no cover - decord is a pinned dependency
    decord = None
    DECORDError = RuntimeError

__all__ = ["DecordReader", "GopParallelReader", "PyAVReader", "Reader", "ReaderError",
           "TorchCodecReader", "backend_problem", "decord_unsafe", "default_workers", "fit", "torchcodec_unsafe",
           "usable_cores"]

# Readers that decode in batches (decord, torchcodec) hold at most this many bytes of RGB
# frames at full size, so a long list of 4K frames resized on the fly (max_side) never holds
# them all (each batch call may cost a rewind, so batches are as large as this allows).
DECODE_BATCH_BYTES = 256 * 2**20
# More decoding threads than this gain nothing for the 64 frames a model is shown.
MAX_WORKERS = 16


class ReaderError(VideoError):
    """A reader cannot be trusted on this file (wrong frames, shapes or times, or it failed)."""


class Reader(Protocol):
    name: str

    def decode(self, indices: list[int], max_side: int | None) -> list[np.ndarray]:
        """Upright (H, W, 3) uint8 RGB frames for ascending, unique `indices`."""

    def close(self) -> None: ...


def default_workers() -> int:
    """Decoding threads of the parallel readers: twice the usable cores, at most MAX_WORKERS.

    More threads than cores keep every core busy to the end (groups differ in length, and a
    thread waits now and then for the GIL or the disk): on 2 cores, 64 frames from 360p and
    720p H.264 took 0.46-0.57x torchcodec's time with 3-4 threads, 0.58-0.66x with 2
    (bench/sample_bench.py).
    """
    return min(2 * usable_cores(), MAX_WORKERS)


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def upright(image: np.ndarray, ccw_rotation: int) -> np.ndarray:
    """Turn a decoded frame upright given its display rotation in degrees counter-clockwise."""
    k = round(ccw_rotation / 90) % 4
    return np.ascontiguousarray(np.rot90(image, k)) if k else image


def fit(image: np.ndarray, max_side: int | None) -> np.ndarray:
    """Downscale (never upscale) so the longer side is at most max_side px, keeping the aspect."""
    h, w = image.shape[:2]
    if max_side is None or max(h, w) <= max_side:
        return image
    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))


def upright_size(index: VideoIndex) -> tuple[int, int]:
    """(width, height) of the frames as shown."""
    w, h = index.coded_size
    return (h, w) if index.rotation in (90, 270) else (w, h)


def _per_batch(index: VideoIndex) -> int:
    w, h = index.coded_size
    return max(1, DECODE_BATCH_BYTES // (w * h * 3))


def backend_problem(backend: str) -> str | None:
    """Why the reader named `backend` cannot run in this environment (not installed, its
    libraries do not load), or None. "auto" and "pyav" always can (PyAV is a dependency);
    checking "torchcodec" imports it (and torch: seconds), so it is asked only when named."""
    if backend == "decord":
        return None if decord is not None else "decord is not installed"
    if backend == "torchcodec":
        decoders = _torchcodec_decoders()
        return decoders if isinstance(decoders, str) else None
    return None


# --------------------------------------------------------------------------------------------
# PyAV


class PyAVReader:
    """Seeks to the keyframe before each wanted frame and decodes forward to it.

    Frames are matched by pts, so a seek that lands early only costs decoding. A seek that
    lands late (MPEG-TS and FLV seek by estimate) would skip the frame: then the reader stops
    seeking and decodes forward from the start of the file instead - slow but exact.
    ``threads``: FFmpeg decoding threads (0: FFmpeg picks, frame + slice threading).
    """

    name = "pyav"

    def __init__(self, path: str, index: VideoIndex, threads: int = 0):
        self._path, self._index, self._threads = path, index, threads
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
            out.append(fit(upright(frame.to_ndarray(format="rgb24"), frame.rotation), max_side))
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
            self._container = open_container(self._path)
            self._stream = self._container.streams[self._index.stream_index]
            context = self._stream.codec_context
            if self._threads == 1:  # one decoder per worker thread: no threads of its own
                context.thread_type = "NONE"
            else:
                context.thread_type = "AUTO"  # frame + slice threads: ~2x faster decode
                context.thread_count = self._threads

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = self._stream = None


# --------------------------------------------------------------------------------------------
# torchcodec


@functools.cache  # importing is process-wide anyway; this only remembers the outcome
def _torchcodec_decoders():
    """torchcodec.decoders, or the reason it cannot be used here (a string).

    Imported on first use only: it loads torch (seconds, hundreds of MB), which the app
    process never does - a handle there reads with PyAV.
    """
    try:
        from torchcodec import decoders
    except (ImportError, OSError, RuntimeError) as err:  # absent, or no FFmpeg 4-8 libraries
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return f"torchcodec cannot be loaded ({first})"
    return decoders


def torchcodec_unsafe(index: VideoIndex) -> str | None:
    """Why torchcodec cannot be trusted to return the right frames here, or None.

    Measured with torchcodec 0.17 (exact mode): the frames asked for on MP4/MOV and
    Matroska/WebM, open GOPs included; other frames of MPEG-TS (it seeks by estimate there).
    """
    if not index.seeks_exactly:
        return f"torchcodec seeks inexactly in {index.container} files"
    decoders = _torchcodec_decoders()
    return decoders if isinstance(decoders, str) else None


class TorchCodecReader:
    """torchcodec's VideoDecoder (exact mode), its frames checked against the index by pts.

    ``threads``: FFmpeg decoding threads (0: FFmpeg picks). ``device``: "cpu", or "cuda" /
    "cuda:N" for NVDEC. torchcodec turns frames upright itself (display rotation).
    """

    name = "torchcodec"

    def __init__(self, path: str, index: VideoIndex, threads: int = 0, device: str = "cpu"):
        unsafe = torchcodec_unsafe(index)
        if unsafe:
            raise ReaderError(path, unsafe)
        decoders = _torchcodec_decoders()
        self._path, self._index = path, index
        try:
            self._decoder = decoders.VideoDecoder(
                path, stream_index=index.stream_index, dimension_order="NHWC",
                num_ffmpeg_threads=threads, device=device, seek_mode="exact")
        except (RuntimeError, ValueError) as err:
            raise ReaderError(path, f"torchcodec cannot open it ({_first_line(err)})") from err
        if len(self._decoder) != len(index.pts):
            raise ReaderError(path, f"torchcodec sees {len(self._decoder)} frames, "
                                    f"the index {len(index.pts)}")
        num, den = index.time_base
        self._to_pts = den / num  # seconds -> pts units
        w, h = upright_size(index)
        self._shape = (h, w, 3)
        self._coded_shape = (index.coded_size[1], index.coded_size[0], 3)

    def decode(self, indices: list[int], max_side: int | None) -> list[np.ndarray]:
        """Upright RGB frames for ascending, unique `indices`, fitted to max_side."""
        out = []
        per_batch = _per_batch(self._index)
        for start in range(0, len(indices), per_batch):
            batch = indices[start:start + per_batch]
            try:
                frames = self._decoder.get_frames_at(batch)
            except RuntimeError as err:
                raise ReaderError(self._path, f"torchcodec failed ({_first_line(err)})") from err
            pts = np.rint(frames.pts_seconds.double().numpy() * self._to_pts).astype(np.int64)
            if not np.array_equal(pts, self._index.pts[batch]):
                raise ReaderError(self._path, "torchcodec returned other frames than asked")
            images = frames.data.cpu().numpy()  # (N, H, W, 3) uint8
            if images.shape[1:] == self._coded_shape != self._shape:  # rotation not applied
                images = [upright(image, -self._index.rotation) for image in images]
            elif images.shape[1:] != self._shape:
                raise ReaderError(self._path, f"torchcodec returned frames of shape "
                                              f"{images.shape[1:]}, not {self._shape}")
            out.extend(fit(image, max_side) for image in images)
        return out

    def close(self) -> None:
        self._decoder = None  # no close(); dropping the decoder frees the file


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


# --------------------------------------------------------------------------------------------
# decord


def decord_unsafe(index: VideoIndex) -> str | None:
    """Why decord's seeking cannot be trusted to return the right frames here, or None.

    Measured with decord 0.6.0 on get_batch of random indices: exact on closed-GOP MP4/MOV
    and Matroska/WebM (H.264, HEVC, VP9); wrong frames, silently, on open-GOP streams (x265's
    default, x264 open-gop: it counts frames after a seek, and the leading pictures it cannot
    decode shift the count), MPEG-TS, FLV and H.264 in AVI.
    """
    if decord is None:
        return "decord is not installed"
    if not index.seeks_exactly:
        return f"decord seeks inexactly in {index.container} files"
    if index.open_gop:
        return "decord returns wrong frames after seeking in open-GOP streams"
    return None


class DecordReader:
    """decord's VideoReader, checked against the index so indices mean the same frames."""

    name = "decord"

    def __init__(self, path: str, index: VideoIndex):
        self._path, self._index = path, index
        unsafe = decord_unsafe(index)
        if unsafe:  # refused rather than trusted to return the wrong frames silently
            raise ReaderError(path, unsafe)
        try:
            self._vr = decord.VideoReader(path, ctx=decord.cpu(0))
            if len(self._vr) != len(index.times):
                raise ReaderError(path, f"decord sees {len(self._vr)} frames, "
                                        f"the index {len(index.times)}")
            # decord keeps float32 seconds: agreeing to a millisecond means the same frames
            theirs = self._vr.get_frame_timestamp(range(len(self._vr)))[:, 0]
        except (DECORDError, RuntimeError) as err:
            if isinstance(err, ReaderError):
                raise
            raise ReaderError(path, f"decord cannot read this file ({err})") from err
        if not np.allclose(theirs, index.times, rtol=1e-6, atol=1e-3):
            raise ReaderError(path, "decord's frame times differ from the index")
        w, h = upright_size(index)
        self._shape = (h, w, 3)

    def decode(self, indices: list[int], max_side: int | None) -> list[np.ndarray]:
        """Upright RGB frames for ascending, unique `indices`, fitted to max_side."""
        out = []
        per_batch = _per_batch(self._index)
        for start in range(0, len(indices), per_batch):
            try:
                batch = self._vr.get_batch(indices[start:start + per_batch]).asnumpy()
            except DECORDError as err:
                raise ReaderError(self._path, f"decord cannot decode this file ({err})") from err
            if batch.shape[1:] != self._shape:
                # decord 0.6 mis-shapes frames whose RGB row padding reaches a pixel's width
                # (e.g. 48 px wide: shape (H, 48, 4)); never hand such frames on
                raise ReaderError(self._path, f"decord cannot decode this file (it returned "
                                              f"frames of shape {batch.shape[1:]})")
            out.extend(fit(image, max_side) for image in batch)
        return out

    def close(self) -> None:
        self._vr = None  # decord has no close(); dropping the reader frees the file


# --------------------------------------------------------------------------------------------
# Parallel GOP decoding


class GopParallelReader:
    """Decodes the keyframe groups behind the wanted frames on several threads at once.

    ``make(threads)`` builds one decoder (a PyAVReader or TorchCodecReader) with that many
    FFmpeg threads. One group, or ``workers == 1``: one decoder with FFmpeg's own threading
    decodes everything in order. More: ``min(workers, groups)`` threads, each with its own
    decoder (kept for the next call), take groups largest first (longest decode first keeps
    the threads busy until the end); each group is one seek and a forward decode, exactly
    as the one-decoder path would do it, so the frames are the same.
    """

    def __init__(self, index: VideoIndex, make: Callable[[int], Reader], workers: int):
        self._index, self._make, self.workers = index, make, max(1, workers)
        self._single: Reader | None = None
        self._pool: list[Reader] = []
        # each pooled decoder gets an equal share of the cores (1 when workers == cores)
        self._threads = max(1, usable_cores() // self.workers)
        self.name = self._one().name  # built now, so a decoder that cannot open fails here

    def _one(self) -> Reader:
        if self._single is None:
            self._single = self._make(0)
        return self._single

    def decode(self, indices: list[int], max_side: int | None) -> list[np.ndarray]:
        """Upright RGB frames for ascending, unique `indices`, fitted to max_side."""
        groups = self._index.keyframe_groups(indices)
        n_threads = min(self.workers, len(groups))
        if n_threads <= 1:
            return self._one().decode(indices, max_side)
        while len(self._pool) < n_threads:
            self._pool.append(self._make(self._threads))
        todo = sorted(groups, key=self._index.decode_cost, reverse=True)
        lock, results, failed = threading.Lock(), {}, []

        def work(reader: Reader) -> None:
            while not failed:
                with lock:
                    if not todo:
                        return
                    group = todo.pop(0)
                try:
                    images = reader.decode(group, max_side)
                    with lock:
                        results.update(zip(group, images))
                except BaseException:
                    failed.append(True)  # the others stop after their current group
                    raise

        with ThreadPoolExecutor(n_threads, thread_name_prefix="tpo-gop") as pool:
            futures = [pool.submit(work, reader) for reader in self._pool[:n_threads]]
        for future in futures:
            future.result()  # re-raises a worker's error here
        return [results[i] for i in indices]

    def close(self) -> None:
        for reader in [self._single, *self._pool]:
            if reader is not None:
                reader.close()
        self._single, self._pool = None, []
