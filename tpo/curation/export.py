"""Reviewed pairs -> a Hugging Face dataset in TRL's preference format (or TPO's JSON).

**Export** (:func:`export_pairs`) writes one row per pair, as the reviewer left it
(:meth:`tpo.store.Pair.effective`: edits and swaps applied), in the layout TRL's ``DPOTrainer``
takes for vision-language models: a conversational ``prompt`` whose user turn holds one
``{"type": "image"}`` per frame and then the text (:func:`tpo.models.prompts.time_prompt`: the
video's length and the times of the row's frames, then the question), ``chosen`` /
``rejected`` assistant turns, and the frames as ``images`` with their times (s) in
``frame_times``. Provenance columns say where every row came from (see :data:`COLUMNS`).

**Which frames** (:attr:`ExportConfig.frames_from`). The default, ``whole``, is the TPO
paper's setting (Li et al. 2025; the LongVA-TPO DPO loader): a record has ONE video, the
whole of it sampled uniformly in time (:meth:`tpo.media.video.Video.uniform`) with N =
min(``frames``, floor(duration_s)) frames - at most one per second, at least one - and the
same frames go with the chosen and the rejected answer. The frames each side saw when its
answer was generated (a segment, the video without it, a sparse subset) are how the pair
was *made*; with ``whole`` a localized pair makes the model find the segment inside the long
video. ``chosen`` / ``rejected`` / ``union`` instead show the frames that side (or both) saw,
at most ``frames`` of them (an evenly spaced subset): departures from the paper, kept for
experiments.

Layouts, all loadable with ``datasets.load_dataset(OUT, split="train")`` from any working
directory, ``images`` decoded to PIL images:

* ``jsonl``   - ``OUT/metadata.jsonl`` + ``OUT/images/<pair_id>/<k>.jpg`` (k = 000, 001...).
  Rows name their frames in ``images_file_names`` (paths relative to OUT); ``datasets`` reads
  such a folder as an *imagefolder* and turns that column into ``images``. (A plain JSON data file
  with an ``images`` column of relative paths would only decode when the working directory
  is OUT: ``datasets`` opens relative image paths against the working directory.)
* ``parquet`` - the same with ``OUT/metadata.parquet``; with ``embed_images`` a single
  ``OUT/train.parquet`` whose ``images`` column holds the JPEG bytes (``datasets`` Image
  feature), so the file alone is the dataset: ``load_dataset("parquet", data_files=...)``.
* ``tpo-json`` - ``OUT/tpo_pairs.json``, the TPO / LLaVA-Hound layout: a JSON list of
  ``{"id", "video", "prompt", "chosen", "rejected"}`` (prompt = the question; no frames),
  plus ``kind``, ``strategy``, ``segment``, the timestamps and ``video_sha256`` so that a
  round trip keeps them (TPO's loaders read only the keys they need), and the frame plan:
  ``frame_times`` (s, the frames the other layouts would hold) and ``duration_s``, so a
  loader can decode exactly those frames and state their times.

Every export also writes ``OUT/README.md`` (a short dataset card) and ``OUT/.tpo-export.json``
(hidden, so ``datasets`` ignores it: what was exported, how; it also marks the folder as an
export that a later export may replace). The export is written beside OUT and moved into
place at the end, so a failed export never leaves half a dataset.

Each video is opened and decoded once per export: the frames of all its pairs are planned
first (timestamps -> frame indices on the video's own per-frame times) and their union is
decoded (tpo-json plans the frames but decodes none).

:func:`run_job` is the ``export`` background job (:mod:`tpo.jobs`). Reading these files back
into the store is :mod:`tpo.curation.importer`, which shares this module's layout constants
(:data:`DATA_FILES`, :data:`PAIR_KINDS`, ...).
"""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from datasets import Features, Image, List, Value
from PIL import Image as PILImage

from tpo.media import video
from tpo.errors import TPOError
from tpo.jobs import job_kind
from tpo.curation import llamafactory
from tpo.store import PAIR_STATUSES, Pair, Store, now
from tpo.models.prompts import time_prompt

__all__ = ["COLUMNS", "FORMATS", "FRAME_SOURCES", "PAIR_KINDS", "ExportConfig", "ExportError",
           "ExportReport", "export_pairs", "whole_frame_count"]

FORMATS = ("jsonl", "parquet", "tpo-json", "llamafactory")
FRAME_SOURCES = ("whole", "chosen", "rejected", "union")  # whole: the paper's setting
DEFAULT_FRAMES = 64  # frames of a record (LongVA-TPO's DPO runs sample up to 64 at 1 fps)
MAX_FPS = 1.0  # whole-video frames per second of video at most, as LongVA samples
PAIR_KINDS = ("localized", "comprehensive")

IMAGES_DIR = "images"
_EMPTIABLE = ("segment", "chosen_timestamps", "rejected_timestamps")  # may be null / [] in a row
MANIFEST = ".tpo-export.json"  # hidden: datasets' data-file patterns skip dot files
README = "README.md"
DATA_FILES = {"jsonl": "metadata.jsonl", "parquet": "metadata.parquet",
              "parquet-embedded": "train.parquet", "tpo-json": "tpo_pairs.json",
              "llamafactory": "tpo_pairs_sharegpt.json"}
DATASET_INFO = "dataset_info.json"  # LLaMA-Factory's index of the datasets in a folder
JPEG_QUALITY = 90
DECODE_CHUNK = 64  # frames decoded per call: ~64 decoded frames in memory, whatever the union
PARQUET_BATCH = 256  # rows per parquet row group / write
# Seconds: a timestamp maps to the frame shown at that time; stored timestamps are the frames'
# own float64 times, so they match exactly - the slack only absorbs JSON round-trip noise.
TIME_SLACK_S = 1e-6

Progress = Callable[[int, int, str], None]  # (pairs done, pairs total, what is happening)


# --------------------------------------------------------------------------------------------
# Configuration and results


@dataclass
class ExportConfig:
    """What an export writes (in the style of TRL's configs: every field documented)."""

    format: str = field(default="jsonl", metadata={
        "help": "jsonl (metadata.jsonl + images/), parquet (metadata.parquet + images/, or one "
                "train.parquet with embed_images), tpo-json (TPO / LLaVA-Hound JSON list, "
                "video paths instead of frames) or llamafactory (LLaMA-Factory's sharegpt "
                "preference layout + dataset_info.json + images/)."})
    status: str = field(default="accepted", metadata={
        "help": f"Export the pairs with this review status: one of {', '.join(PAIR_STATUSES)}."})
    frames_from: str = field(default="whole", metadata={
        "help": "The row's images: whole (default, the paper's setting: the whole video "
                "sampled uniformly, the same frames for chosen and rejected). Departures from "
                "the paper: chosen (the frames the preferred answer saw - for a localized pair "
                "the segment alone), rejected, or union (both sides' frames, in time order)."})
    frames: int | None = field(default=DEFAULT_FRAMES, metadata={
        "help": "Frames per row. whole: min(frames, floor(video seconds)) - at most one per "
                "second, at least one, so a 3 s video gives 3 frames; chosen/rejected/union: "
                "at most this many of the side's frames (evenly spaced). None: no cap (whole: "
                "one frame per second)."})
    max_side: int = field(default=384, metadata={
        "help": "Frames are downscaled so their longer side is at most this many px (the "
                "processor resizes again to the model's own size)."})
    embed_images: bool = field(default=False, metadata={
        "help": "parquet only: store the JPEG bytes in the file (one self-contained "
                "train.parquet) instead of files under OUT/images/."})
    time_prompt: bool = field(default=True, metadata={
        "help": "The prompt text states the video's length and the frame times before the "
                "question, as generation asked it; off: the question alone."})
    media: str = field(default="images", metadata={
        "help": "llamafactory only: images (the frames as files, one <image> each: the paper's "
                "record) or video (the video's path in its videos column and one <video>: "
                "LLaMA-Factory samples the frames itself)."})
    min_agree: int | None = field(default=None, metadata={
        "help": "Only pairs that at least this many reviewers decided as `status` (each "
                "reviewer's latest accept/reject; see tpo.curation.teams). None: every pair "
                "with the status."})

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {self.format!r}")
        if self.status not in PAIR_STATUSES:
            raise ValueError(f"status must be one of {', '.join(PAIR_STATUSES)}, "
                             f"got {self.status!r}")
        if self.frames_from not in FRAME_SOURCES:
            raise ValueError(f"frames_from must be one of {', '.join(FRAME_SOURCES)}, "
                             f"got {self.frames_from!r}")
        if self.frames is not None and (isinstance(self.frames, bool)
                                        or not isinstance(self.frames, int) or self.frames < 1):
            raise ValueError(f"frames must be a positive number of frames per row, "
                             f"got {self.frames!r}")
        if (isinstance(self.max_side, bool) or not isinstance(self.max_side, int)
                or self.max_side < 1):
            raise ValueError(f"max_side must be a positive number of px, got {self.max_side!r}")
        if self.embed_images and self.format != "parquet":
            raise ValueError("embed_images only applies to the parquet format")
        if self.media not in llamafactory.MEDIA:
            raise ValueError(f"media must be one of {', '.join(llamafactory.MEDIA)}, "
                             f"got {self.media!r}")
        if self.media != "images" and self.format != "llamafactory":
            raise ValueError("media video only applies to the llamafactory format")
        if self.min_agree is not None and (isinstance(self.min_agree, bool)
                                           or not isinstance(self.min_agree, int)
                                           or self.min_agree < 1):
            raise ValueError(f"min_agree must be a positive number of reviewers, "
                             f"got {self.min_agree!r}")


class ExportError(TPOError):
    """An export that cannot be written (nothing to export, output folder not ours, ...)."""


@dataclass
class ExportReport:
    """What one export wrote."""

    out_dir: Path
    format: str
    data_file: Path  # the file with the rows (inside out_dir)
    files: list[Path]  # every top-level file written: data file, README, manifest
    n_pairs: int  # rows written
    by_kind: dict[str, int]  # rows per pair kind
    n_images: int  # frames written (0 for tpo-json)
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (pair id, why not exported)
    seconds: float = 0.0

    def summary(self) -> str:
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(self.by_kind.items()))
        skipped = f"; skipped {len(self.skipped)}" if self.skipped else ""
        return (f"exported {self.n_pairs} pairs ({kinds}) with {self.n_images} frames as "
                f"{self.format} to {self.out_dir}{skipped}")

    def as_dict(self) -> dict:
        d = asdict(self)
        d.update(out_dir=str(self.out_dir), data_file=str(self.data_file),
                 files=[str(f) for f in self.files],
                 skipped=[{"pair_id": p, "reason": r} for p, r in self.skipped])
        return d


# --------------------------------------------------------------------------------------------
# Dataset schema

_MESSAGE = {"role": Value("string"),
            "content": List({"type": Value("string"), "text": Value("string")})}
_PROVENANCE = {
    "pair_id": Value("int64"),
    "video": Value("string"),  # path of the video file as the library knows it
    "video_sha256": Value("string"),
    "kind": Value("string"),  # localized | comprehensive
    "strategy": Value("string"),  # irrelevant | incomplete | dense-sparse
    "segment": List(Value("float64")),  # [start, end) s; null for comprehensive pairs
    "question": Value("string"),  # as trained on (after edits), without the time prompt
    "chosen_timestamps": List(Value("float64")),  # s: frames the chosen answer saw
    "rejected_timestamps": List(Value("float64")),  # s: frames the rejected answer saw
    "frame_times": List(Value("float64")),  # s: the frames in `images`, in order
    "question_original": Value("string"),  # generated texts, before any edit
    "chosen_original": Value("string"),  # generated text of the side that is chosen now
    "rejected_original": Value("string"),
    "edited": Value("bool"),  # a reviewer edited the question or an answer
    "swapped": Value("bool"),  # a reviewer swapped chosen and rejected
    "generator": Value("string"),  # JSON: model, parameters, question source
    "status": Value("string"),
}
_TRL = {"prompt": List(_MESSAGE), "chosen": List(_MESSAGE), "rejected": List(_MESSAGE)}
FEATURES_FILES = Features({**_TRL, "images_file_names": List(Value("string")), **_PROVENANCE})
FEATURES_EMBEDDED = Features({**_TRL, "images": List(Image()), **_PROVENANCE})
# Columns of a loaded export (`images_file_names` in the file becomes `images` when loaded).
COLUMNS = tuple(FEATURES_EMBEDDED)


# --------------------------------------------------------------------------------------------
# Export


def export_pairs(store: Store, out_dir: str | os.PathLike, config: ExportConfig | None = None,
                 *, progress: Progress | None = None) -> ExportReport:
    """Write the pairs with ``config.status`` (default: accepted) to ``out_dir``.

    ``out_dir`` must be new, empty, or an earlier export (which is replaced). Pairs whose
    video can no longer be read are left out and listed in ``report.skipped``; ExportError
    when no pair is left to write.
    """
    config = config or ExportConfig()
    started = time.monotonic()
    out = Path(out_dir).expanduser().resolve()
    _check_out_dir(out)
    pairs = store.list_pairs(status=config.status)
    if not pairs:
        raise ExportError(f"no {config.status} pairs to export")
    if config.min_agree:
        agreed = set(store.agreed_pair_ids(config.status, config.min_agree))
        pairs = [p for p in pairs if p["id"] in agreed]
        if not pairs:
            raise ExportError(f"no {config.status} pairs that {config.min_agree} reviewers "
                              f"decided so")
    # Written beside the target (same file system: the final move is a rename), under a name
    # of its own, so concurrent exports never share a folder.
    tmp = out.parent / f".{out.name}.partial-{uuid.uuid4().hex[:12]}"
    tmp.mkdir(parents=True)
    try:
        rows, skipped = _rows(store, pairs, config, tmp, progress)
        n_images = sum(len(r["frame_times"]) for r in rows) if _writes_frames(config) else 0
        if not rows:
            reasons = "; ".join(f"pair {p}: {r}" for p, r in skipped[:5])
            raise ExportError(f"none of the {len(pairs)} {config.status} pairs could be "
                              f"exported ({reasons})")
        data_file = _write_rows(rows, config, tmp)
        files = [data_file.name, README, MANIFEST]
        if config.format == "llamafactory":
            info = llamafactory.dataset_info(data_file.name, media=config.media)
            (tmp / DATASET_INFO).write_text(json.dumps(info, indent=1), encoding="utf-8")
            files.append(DATASET_INFO)
        by_kind = dict(Counter(r["kind"] for r in rows))
        (tmp / README).write_text(_readme(store, config, rows, by_kind, data_file.name),
                                  encoding="utf-8")
        manifest = {"tool": "tpo-studio", "created_at": now(), "store": str(store.path),
                    "config": asdict(config), "data_file": data_file.name, "n_pairs": len(rows),
                    "by_kind": by_kind, "n_images": n_images,
                    "skipped": [{"pair_id": p, "reason": r} for p, r in skipped]}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        _replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if progress:
        progress(len(pairs), len(pairs), f"wrote {out}")
    return ExportReport(out_dir=out, format=config.format, data_file=out / data_file.name,
                        files=[out / name for name in files],
                        n_pairs=len(rows), by_kind=by_kind, n_images=n_images, skipped=skipped,
                        seconds=time.monotonic() - started)


def _writes_frames(config: ExportConfig) -> bool:
    """Whether the export decodes frames into image files (tpo-json and LLaMA-Factory's video
    mode name the video instead)."""
    return config.format != "tpo-json" and config.media == "images"


def _check_out_dir(out: Path) -> None:
    if not out.exists():
        return
    if not out.is_dir():
        raise ExportError(f"{out} is a file; export into a folder")
    if any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise ExportError(f"{out} is not empty and is not an earlier export (no {MANIFEST} in "
                          f"it); export into a new or empty folder")


def _replace_dir(tmp: Path, out: Path) -> None:
    """Move the finished export into place; an earlier export there is removed only after."""
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:12]}"
        out.rename(old)
    tmp.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def whole_frame_count(duration_s: float, frames: int | None = DEFAULT_FRAMES) -> int:
    """Frames of a ``whole`` row: min(frames, floor(duration_s * MAX_FPS)), at least 1.

    At most one frame per second of video (as LongVA samples), so a short video gives fewer
    frames than asked (a 3 s video: 3), never an error; ``frames`` None: one per second.
    """
    # The slack keeps a 20 s video that reports 19.9999999 s at 20 frames.
    per_second = max(1, math.floor(duration_s * MAX_FPS + TIME_SLACK_S))
    return per_second if frames is None else min(frames, per_second)


def _side_times(eff: dict, frames_from: str) -> list[float]:
    """Seconds of the frames one side saw, or both sides' in time order."""
    if frames_from == "chosen":
        return list(eff["chosen_timestamps"] or [])
    if frames_from == "rejected":
        return list(eff["rejected_timestamps"] or [])
    return sorted(set(eff["chosen_timestamps"] or []) | set(eff["rejected_timestamps"] or []))


def _frame_indices(times: np.ndarray, timestamps: list[float]) -> list[int]:
    """Indices (ascending, unique) of the frames shown at ``timestamps`` (s).

    ``times`` is the video's (n,) ascending per-frame times in s (:attr:`Video.times`); a frame
    is shown from its time until the next frame's, so a recorded frame time maps to exactly
    that frame, and any other time to the frame on screen then (the first one before it).
    """
    at = np.searchsorted(times, np.asarray(timestamps, dtype=np.float64) + TIME_SLACK_S,
                         side="right") - 1
    return sorted(set(np.clip(at, 0, len(times) - 1).tolist()))


def _plan_pair(vid: video.Video, eff: dict, config: ExportConfig) -> list[int]:
    """Frame indices (ascending) of the row's images, per ``config.frames_from``."""
    wanted = [] if config.frames_from == "whole" else _side_times(eff, config.frames_from)
    if not wanted:  # whole, or a side that recorded no frames (imported): the whole video
        return vid.uniform(whole_frame_count(vid.info.duration_s, config.frames))
    indices = _frame_indices(vid.times, wanted)
    if config.frames and len(indices) > config.frames:
        indices = video.Video.sparse(indices, config.frames)  # evenly spaced, as generation
    return indices


def _rows(store: Store, pairs: list[Pair], config: ExportConfig, tmp: Path,
          progress: Progress | None) -> tuple[list[dict], list[tuple[int, str]]]:
    """The rows, and the pairs left out with why. Each video is opened once and its pairs'
    frames planned; for the TRL layouts the union is decoded once and written under
    ``tmp/images``, tpo-json records the plan only."""
    by_video: dict[int, list[Pair]] = {}
    for pair in pairs:
        by_video.setdefault(pair["video_id"], []).append(pair)
    rows, skipped, done = [], [], 0
    for video_id, group in by_video.items():
        info = store.get_video(video_id)
        if progress:
            verb = "decoding" if _writes_frames(config) else "planning"
            progress(done, len(pairs), f"{verb} frames of {info['name']}")
        try:
            with video.open_video(info["path"]) as vid:
                effs = [p.effective() for p in group]
                plans = [_plan_pair(vid, e, config) for e in effs]
                jpegs = (_decode_jpegs(vid, sorted({i for plan in plans for i in plan}),
                                       config.max_side) if _writes_frames(config) else {})
                times, duration = vid.times, vid.info.duration_s
        except video.VideoError as err:  # moved, deleted or damaged since it was ingested
            skipped += [(p["id"], f"video {info['path']}: {err}") for p in group]
            done += len(group)
            continue
        for pair, eff, plan in zip(group, effs, plans):
            frame_times = [float(times[i]) for i in plan]
            if config.format == "tpo-json":
                rows.append(_tpo_row(pair, eff, info, frame_times, duration))
                done += 1
                continue
            names = [f"{IMAGES_DIR}/{pair['id']}/{k:03d}.jpg" for k in range(len(plan))]
            if _writes_frames(config):
                (tmp / IMAGES_DIR / str(pair["id"])).mkdir(parents=True, exist_ok=True)
                for name, index in zip(names, plan):
                    (tmp / name).write_bytes(jpegs[index])
            rows.append(_trl_row(pair, eff, info, names, frame_times, duration, config))
            done += 1
        if progress:
            progress(done, len(pairs), f"planned and wrote the frames of {info['name']}")
    return rows, skipped


def _decode_jpegs(vid: video.Video, indices: list[int], max_side: int) -> dict[int, bytes]:
    """JPEG bytes of each frame index, decoding each frame once, a chunk at a time."""
    out = {}
    for start in range(0, len(indices), DECODE_CHUNK):
        chunk = indices[start:start + DECODE_CHUNK]
        for index, image in zip(chunk, vid.decode(chunk, max_side=max_side)):
            buf = io.BytesIO()
            PILImage.fromarray(image).save(buf, format="JPEG", quality=JPEG_QUALITY)
            out[index] = buf.getvalue()
    return out


def _segment(pair: dict) -> list[float] | None:
    if pair.get("segment_start") is None or pair.get("segment_end") is None:
        return None
    return [float(pair["segment_start"]), float(pair["segment_end"])]


def _trl_row(pair: Pair, eff: dict, info: dict, names: list[str], frame_times: list[float],
             duration_s: float, config: ExportConfig) -> dict:
    text = (time_prompt(frame_times, duration_s, eff["question"]) if config.time_prompt
            else eff["question"])
    content = [{"type": "image"} for _ in names] + [{"type": "text", "text": text}]
    chosen_original, rejected_original = pair.original_sides()
    return {
        "prompt": [{"role": "user", "content": content}],
        "chosen": _assistant(eff["chosen"]),
        "rejected": _assistant(eff["rejected"]),
        "images_file_names": names,
        "pair_id": pair["id"],
        "video": info["path"],
        "video_sha256": info.get("sha256"),
        "kind": pair["kind"],
        # Text columns are never null ("" / "null"): see _write_rows on inferred types.
        "strategy": pair.get("strategy") or "",
        "segment": _segment(pair),
        "question": eff["question"],
        "chosen_timestamps": [float(t) for t in eff["chosen_timestamps"] or []],
        "rejected_timestamps": [float(t) for t in eff["rejected_timestamps"] or []],
        "frame_times": frame_times,
        "question_original": pair["question"],
        "chosen_original": chosen_original,
        "rejected_original": rejected_original,
        "edited": any(pair.get(c) for c in ("edited_question", "edited_chosen", "edited_rejected")),
        "swapped": bool(pair.get("swapped")),
        "generator": json.dumps(pair.get("generator")),
        "status": pair["status"],
    }


def _assistant(text: str) -> list[dict]:
    return [{"role": "assistant", "content": [{"type": "text", "text": text}]}]


def _tpo_row(pair: dict, eff: dict, info: dict, frame_times: list[float],
             duration_s: float) -> dict:
    """A TPO / LLaVA-Hound item plus provenance and the frame plan (frame_times, s)."""
    return {"id": str(pair["id"]), "video": info["path"], "prompt": eff["question"],
            "chosen": eff["chosen"], "rejected": eff["rejected"],
            "kind": pair["kind"], "strategy": pair.get("strategy"),
            "segment": _segment(pair),
            "chosen_timestamps": list(eff["chosen_timestamps"] or []),
            "rejected_timestamps": list(eff["rejected_timestamps"] or []),
            "frame_times": frame_times, "duration_s": float(duration_s),
            "video_sha256": info.get("sha256"), "status": pair["status"]}


def _write_rows(rows: list[dict], config: ExportConfig, tmp: Path) -> Path:
    """Write the data file into ``tmp``; returns its path."""
    if config.format == "tpo-json":
        path = tmp / DATA_FILES["tpo-json"]
        path.write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")
        return path
    # Rows with the fewest empty values first (segment, timestamps): datasets infers a JSON
    # file's column types from its first 10 MB, types a column that is null (or []) there as
    # null, and then fails on a later list. Trainers shuffle, so the order does not matter.
    rows.sort(key=lambda r: (sum(not r[c] for c in _EMPTIABLE), r["pair_id"]))
    if config.format == "llamafactory":  # a JSON list, the form its data/README.md shows
        path = tmp / DATA_FILES["llamafactory"]
        data = [llamafactory.to_row(row, media=config.media) for row in rows]
        path.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
        return path
    if config.format == "jsonl":
        path = tmp / DATA_FILES["jsonl"]
        with open(path, "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        return path
    if not config.embed_images:
        path = tmp / DATA_FILES["parquet"]
        _write_parquet(path, rows, FEATURES_FILES)
        return path
    path = tmp / DATA_FILES["parquet-embedded"]

    def embedded() -> Iterator[dict]:
        for row in rows:
            row = dict(row)
            names = row.pop("images_file_names")
            row["images"] = [{"bytes": (tmp / n).read_bytes(), "path": n} for n in names]
            yield row

    _write_parquet(path, embedded(), FEATURES_EMBEDDED)
    shutil.rmtree(tmp / IMAGES_DIR)  # the bytes are in the file now
    return path


def _write_parquet(path: Path, rows, features: Features) -> None:
    """Rows in batches under the explicit schema; its metadata tells datasets the features
    (Image columns included)."""
    schema = features.arrow_schema
    with pq.ParquetWriter(path, schema) as writer:
        batch = []
        for row in rows:
            batch.append({name: row[name] for name in schema.names})
            if len(batch) == PARQUET_BATCH:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                batch = []
        if batch:
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))


def _readme(store: Store, config: ExportConfig, rows: list[dict], by_kind: dict[str, int],
            data_file: str) -> str:
    """A short dataset card: what is in it, how it was made, how to load it."""
    strategies = Counter((r["kind"], r.get("strategy") or "-") for r in rows)
    table = "\n".join(f"| {k} | {s} | {n} |" for (k, s), n in sorted(strategies.items()))
    videos = len({r.get("video_sha256") or r["video"] for r in rows})
    edited = sum(bool(r.get("edited")) for r in rows)
    swapped = sum(bool(r.get("swapped")) for r in rows)
    head = ("---\ntags:\n- tpo\n- dpo\n- trl\n- video\n- preference\n---\n\n"
            f"# TPO preference pairs\n\n"
            f"{len(rows)} {config.status} pairs from {videos} video(s), exported by TPO Studio "
            f"on {now()} (from `{store.path.name}`); {edited} edited and {swapped} swapped by "
            f"reviewers, exported as reviewed.\n\n| kind | strategy | pairs |\n|---|---|---|\n"
            f"{table}\n\n")
    how = ("Temporal Preference Optimization (Li et al., 2025): a video-LM answered each "
           "question twice - *chosen* with the relevant frames (the segment, or dense frames of "
           "the whole video), *rejected* without them (the video with the segment cut out, a "
           "sparse subset) - and people reviewed the pairs.\n\n")
    if config.frames_from == "whole":
        cap = f"min({config.frames}, video seconds)" if config.frames else "video seconds"
        frames = (f"{cap} frames sampled uniformly over the whole video (at most 1 per "
                  "second), the same for the chosen and the rejected answer - the TPO paper's "
                  "setting: the model must find the relevant moment in the long video")
    else:
        side = "both sides" if config.frames_from == "union" else f"the {config.frames_from} side"
        frames = (f"the frames {side} saw when the answers were generated"
                  + (f" (at most {config.frames}, evenly spaced)" if config.frames else "")
                  + " - a departure from the TPO paper, which trains on the whole video")
    if config.format == "tpo-json":
        return head + how + (
            f"`{data_file}` is a JSON list of `id`, `video` (path), `prompt` (the question), "
            "`chosen`, `rejected` (TPO / LLaVA-Hound layout) plus `kind`, `strategy`, "
            "`segment`, `chosen_timestamps`, `rejected_timestamps` (s), `video_sha256`, "
            f"`status`. No frames: a trainer decodes them from the videos; `frame_times` (s) "
            f"and `duration_s` give the frame plan: {frames}.\n")
    frames += f"; longer side <= {config.max_side} px"
    if config.format == "llamafactory":
        media = (f"`images` ({frames}) matched in order by one `<image>` each" if
                 config.media == "images" else "`videos` (the source video's path; "
                 "LLaMA-Factory samples its frames) matched by one `<video>`")
        return head + how + (
            f"`{data_file}` is in LLaMA-Factory's sharegpt preference layout: `conversations` "
            f"holds one human turn (the media placeholders, then the question with the frame "
            f"times), `chosen` / `rejected` one gpt message each, {media}. "
            f"`{DATASET_INFO}` registers it as `{llamafactory.DATASET_NAME}`.\n\n## Train\n\n"
            "```yaml\n# llamafactory-cli train dpo.yaml\nstage: dpo\n"
            f"dataset: {llamafactory.DATASET_NAME}\ndataset_dir: path/to/this/folder\n"
            "media_dir: path/to/this/folder\ntemplate: qwen2_vl  # your model's template\n```\n")
    text = ("the video's length and the frame times, then the question" if config.time_prompt
            else "the question")
    return head + how + (
        f"Each row is in TRL's vision preference format: `prompt` is one user turn with an "
        f"image placeholder per frame and then {text}; `chosen` / `rejected` are assistant "
        f"turns; `images` are {frames}. Provenance: `pair_id`, `video`, `video_sha256`, "
        "`kind`, `strategy`, `segment` ([start, end) s), `question`, `chosen_timestamps`, "
        "`rejected_timestamps`, `frame_times` (s, of `images`), `question_original`, "
        "`chosen_original`, `rejected_original`, `edited`, `swapped`, `generator` (JSON), "
        "`status`.\n\n## Load\n\n```python\nfrom datasets import load_dataset\n\n"
        "ds = load_dataset(\"path/to/this/folder\", split=\"train\")  # images: PIL images\n"
        "# trl.DPOTrainer(model, args=DPOConfig(max_length=None, ...), train_dataset=ds,\n"
        "#                processing_class=processor)\n```\n\n"
        + (f"`{data_file}` holds everything (images embedded).\n" if config.embed_images else
           f"`{data_file}` names each row's frames (under `{IMAGES_DIR}/`) in "
           "`images_file_names`; `datasets` loads them as `images`.\n"))


# --------------------------------------------------------------------------------------------
# Background job


@job_kind("export", gpu=False)
def run_job(ctx) -> dict:
    """The ``export`` job kind (:mod:`tpo.jobs`): params ``{"out_dir": ..., "config": {...}}``
    (and ``"user"``: who asked, the only one the app lets download it when log-ins are on)."""
    config = ExportConfig(**ctx.params.get("config", {}))

    def progress(done: int, total: int, text: str) -> None:
        ctx.check_cancelled()
        ctx.progress(done / max(total, 1), text)

    report = export_pairs(ctx.store, ctx.params["out_dir"], config, progress=progress)
    ctx.log(report.summary())
    return {"summary": report.summary(), **report.as_dict()}
