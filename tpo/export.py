"""Reviewed pairs -> a Hugging Face dataset in TRL's preference format, and files -> pairs.

**Export** (:func:`export_pairs`) writes one row per pair, as the reviewer left it
(:func:`tpo.review.effective`: edits and swaps applied), in the layout TRL's ``DPOTrainer``
takes for vision-language models: a conversational ``prompt`` whose user turn holds one
``{"type": "image"}`` per frame and then the text (:func:`tpo.vlm.time_prompt`: the video's
length and the frame times, then the question - exactly what generation showed the model),
``chosen`` / ``rejected`` assistant turns, and the frames as ``images``. Provenance columns
say where every row came from (see :data:`COLUMNS`).

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
  round trip keeps them (TPO's loaders read only the keys they need).

Every export also writes ``OUT/README.md`` (a short dataset card) and ``OUT/.tpo-export.json``
(hidden, so ``datasets`` ignores it: what was exported, how; it also marks the folder as an
export that a later export may replace). The export is written beside OUT and moved into
place at the end, so a failed export never leaves half a dataset.

Each video is opened and decoded once per export: the frames of all its pairs are planned
first (timestamps -> frame indices on the video's own per-frame times) and their union is
decoded.

**Import** (:func:`import_file`) reads such a ``.jsonl`` / ``.parquet`` file (or a
``tpo-json`` ``.json``), validates every row first and imports nothing while any row is bad
(unless ``skip_bad``). Pairs are stored with their generated texts and the reviewer's state
(edits, swap, status) re-applied as one audited ``import`` review, so
``effective(imported) == the row``. Importing the same file again adds nothing.
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
from typing import Any, Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from datasets import Features, Image, List, Value
from PIL import Image as PILImage

from tpo import library, video
from tpo.review import effective
from tpo.store import PAIR_STATUSES, Store, now
from tpo.prompts import time_prompt

__all__ = ["COLUMNS", "FORMATS", "PAIR_KINDS", "ExportConfig", "ExportError", "ExportReport",
           "ImportReport", "ImportValidationError", "export_pairs", "import_file"]

FORMATS = ("jsonl", "parquet", "tpo-json")
FRAME_SOURCES = ("chosen", "rejected", "union")
PAIR_KINDS = ("localized", "comprehensive")
# Kind given to rows of a TPO / LLaVA-Hound file, which carry none: a question about the video
# without a segment is what a comprehensive pair is.
DEFAULT_IMPORT_KIND = "comprehensive"

IMAGES_DIR = "images"
_EMPTIABLE = ("segment", "chosen_timestamps", "rejected_timestamps")  # may be null / [] in a row
MANIFEST = ".tpo-export.json"  # hidden: datasets' data-file patterns skip dot files
README = "README.md"
DATA_FILES = {"jsonl": "metadata.jsonl", "parquet": "metadata.parquet",
              "parquet-embedded": "train.parquet", "tpo-json": "tpo_pairs.json"}
JPEG_QUALITY = 90
UNTIMED_FRAMES = 16  # frames of a pair that recorded none (imported), when max_frames is None
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
                "train.parquet with embed_images) or tpo-json (TPO / LLaVA-Hound JSON list, "
                "video paths instead of frames)."})
    status: str = field(default="accepted", metadata={
        "help": f"Export the pairs with this review status: one of {', '.join(PAIR_STATUSES)}."})
    frames_from: str = field(default="chosen", metadata={
        "help": "Whose frames become the row's images: chosen (the evidence the preferred "
                "answer saw, default), rejected, or union (both sides' frames, in time order)."})
    max_frames: int | None = field(default=16, metadata={
        "help": "At most this many frames per row (an evenly spaced subset) so a sample fits "
                "the model's context; None keeps all."})
    max_side: int = field(default=384, metadata={
        "help": "Frames are downscaled so their longer side is at most this many px (the "
                "processor resizes again to the model's own size)."})
    embed_images: bool = field(default=False, metadata={
        "help": "parquet only: store the JPEG bytes in the file (one self-contained "
                "train.parquet) instead of files under OUT/images/."})
    time_prompt: bool = field(default=True, metadata={
        "help": "The prompt text states the video's length and the frame times before the "
                "question, as generation asked it; off: the question alone."})

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {self.format!r}")
        if self.status not in PAIR_STATUSES:
            raise ValueError(f"status must be one of {', '.join(PAIR_STATUSES)}, "
                             f"got {self.status!r}")
        if self.frames_from not in FRAME_SOURCES:
            raise ValueError(f"frames_from must be one of {', '.join(FRAME_SOURCES)}, "
                             f"got {self.frames_from!r}")
        if self.max_frames is not None and (isinstance(self.max_frames, bool)
                                            or not isinstance(self.max_frames, int)
                                            or self.max_frames < 1):
            raise ValueError(f"max_frames must be a positive integer or None, "
                             f"got {self.max_frames!r}")
        if (isinstance(self.max_side, bool) or not isinstance(self.max_side, int)
                or self.max_side < 1):
            raise ValueError(f"max_side must be a positive number of px, got {self.max_side!r}")
        if self.embed_images and self.format != "parquet":
            raise ValueError("embed_images only applies to the parquet format")


class ExportError(Exception):
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


class ImportValidationError(Exception):
    """Rows of an import file that cannot be imported; nothing was imported.

    ``errors`` lists ``(line, message)``: the JSONL line, the JSON list position + 1 or the
    parquet row + 1 (1-based, as an editor shows it); 0 for a problem with the whole file.
    """

    def __init__(self, path: str | os.PathLike, errors: list[tuple[int, str]]):
        self.path, self.errors = os.fspath(path), list(errors)
        shown = "; ".join(f"line {n}: {m}" if n else m for n, m in self.errors[:10])
        more = f" (and {len(self.errors) - 10} more)" if len(self.errors) > 10 else ""
        super().__init__(f"{self.path}: {len(self.errors)} bad row(s), nothing imported - "
                         f"{shown}{more}")

    def __reduce__(self):  # picklable across job processes despite the two-argument init
        return type(self), (self.path, self.errors)


@dataclass
class ImportReport:
    """What one import did."""

    path: Path
    format: str
    run_key: str  # "import:<file sha256 prefix>": the same file is imported once
    imported: list[int] = field(default_factory=list)  # ids of the new pairs
    already_imported: int = 0  # rows skipped because this file was imported before
    skipped: list[tuple[int, str]] = field(default_factory=list)  # bad rows left out (skip_bad)
    videos_ingested: list[int] = field(default_factory=list)  # videos added to the library

    def summary(self) -> str:
        parts = [f"imported {len(self.imported)} pairs from {self.path.name}"]
        if self.already_imported:
            parts.append(f"{self.already_imported} already imported from this file before")
        if self.skipped:
            parts.append(f"skipped {len(self.skipped)} bad rows")
        if self.videos_ingested:
            parts.append(f"added {len(self.videos_ingested)} videos to the library")
        return "; ".join(parts)

    def as_dict(self) -> dict:
        d = asdict(self)
        d.update(path=str(self.path), skipped=[{"line": n, "error": m} for n, m in self.skipped])
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
    "frame_timestamps": List(Value("float64")),  # s: the frames in `images`, in order
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
    # Written beside the target (same file system: the final move is a rename), under a name
    # of its own, so concurrent exports never share a folder.
    tmp = out.parent / f".{out.name}.partial-{uuid.uuid4().hex[:12]}"
    tmp.mkdir(parents=True)
    try:
        if config.format == "tpo-json":
            rows, skipped, n_images = _tpo_rows(store, pairs), [], 0
        else:
            rows, skipped = _trl_rows(store, pairs, config, tmp, progress)
            n_images = sum(len(r["frame_timestamps"]) for r in rows)
        if not rows:
            reasons = "; ".join(f"pair {p}: {r}" for p, r in skipped[:5])
            raise ExportError(f"none of the {len(pairs)} {config.status} pairs could be "
                              f"exported ({reasons})")
        data_file = _write_rows(rows, config, tmp)
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
                        files=[out / data_file.name, out / README, out / MANIFEST],
                        n_pairs=len(rows), by_kind=by_kind, n_images=n_images, skipped=skipped,
                        seconds=time.monotonic() - started)


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


def _frame_times(eff: dict, frames_from: str) -> list[float]:
    """Seconds of the frames the row should show: one side's, or both sides' in time order."""
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
    """Frame indices of the row's images (``config.frames_from``), at most max_frames."""
    wanted = _frame_times(eff, config.frames_from)
    if wanted:
        indices = _frame_indices(vid.times, wanted)
    else:  # imported from a file without timestamps: the whole video, evenly spaced
        indices = vid.uniform(config.max_frames or UNTIMED_FRAMES)
    if config.max_frames and len(indices) > config.max_frames:
        indices = video.Video.sparse(indices, config.max_frames)  # evenly spaced, as generation
    return indices


def _trl_rows(store: Store, pairs: list[dict], config: ExportConfig, tmp: Path,
              progress: Progress | None) -> tuple[list[dict], list[tuple[int, str]]]:
    """Rows with frames written under ``tmp/images``; one decode pass per video."""
    by_video: dict[int, list[dict]] = {}
    for pair in pairs:
        by_video.setdefault(pair["video_id"], []).append(pair)
    rows, skipped, done = [], [], 0
    for video_id, group in by_video.items():
        info = store.get_video(video_id)
        if progress:
            progress(done, len(pairs), f"decoding frames of {info['name']}")
        try:
            with video.open_video(info["path"]) as vid:
                effs = [effective(p) for p in group]
                plans = [_plan_pair(vid, e, config) for e in effs]
                jpegs = _decode_jpegs(vid, sorted({i for plan in plans for i in plan}),
                                      config.max_side)
                times, duration = vid.times, vid.info.duration_s
        except video.VideoError as err:  # moved, deleted or damaged since it was ingested
            skipped += [(p["id"], f"video {info['path']}: {err}") for p in group]
            done += len(group)
            continue
        for pair, eff, plan in zip(group, effs, plans):
            names = [f"{IMAGES_DIR}/{pair['id']}/{k:03d}.jpg" for k in range(len(plan))]
            (tmp / IMAGES_DIR / str(pair["id"])).mkdir(parents=True, exist_ok=True)
            for name, index in zip(names, plan):
                (tmp / name).write_bytes(jpegs[index])
            frame_times = [float(times[i]) for i in plan]
            rows.append(_trl_row(pair, eff, info, names, frame_times, duration, config))
            done += 1
        if progress:
            progress(done, len(pairs), f"wrote frames of {info['name']}")
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


def _originals(pair: dict) -> tuple[str, str]:
    """Generated texts of the sides as they are now (after a swap): (chosen, rejected)."""
    if pair.get("swapped"):
        return pair["rejected"], pair["chosen"]
    return pair["chosen"], pair["rejected"]


def _trl_row(pair: dict, eff: dict, info: dict, names: list[str], frame_times: list[float],
             duration_s: float, config: ExportConfig) -> dict:
    text = (time_prompt(frame_times, duration_s, eff["question"]) if config.time_prompt
            else eff["question"])
    content = [{"type": "image"} for _ in names] + [{"type": "text", "text": text}]
    chosen_original, rejected_original = _originals(pair)
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
        "frame_timestamps": frame_times,
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


def _tpo_rows(store: Store, pairs: list[dict]) -> list[dict]:
    videos: dict[int, dict] = {}
    rows = []
    for pair in pairs:
        if pair["video_id"] not in videos:
            videos[pair["video_id"]] = store.get_video(pair["video_id"])
        info = videos[pair["video_id"]]
        eff = effective(pair)
        rows.append({"id": str(pair["id"]), "video": info["path"], "prompt": eff["question"],
                     "chosen": eff["chosen"], "rejected": eff["rejected"],
                     "kind": pair["kind"], "strategy": pair.get("strategy"),
                     "segment": _segment(pair),
                     "chosen_timestamps": list(eff["chosen_timestamps"] or []),
                     "rejected_timestamps": list(eff["rejected_timestamps"] or []),
                     "video_sha256": info.get("sha256"), "status": pair["status"]})
    return rows


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
    if config.format == "tpo-json":
        return head + how + (
            f"`{data_file}` is a JSON list of `id`, `video` (path), `prompt` (the question), "
            "`chosen`, `rejected` (TPO / LLaVA-Hound layout) plus `kind`, `strategy`, "
            "`segment`, `chosen_timestamps`, `rejected_timestamps` (s), `video_sha256`, "
            "`status`. No frames: a trainer samples them from the videos.\n")
    frames = (f"the frames the {config.frames_from} side saw"
              + (f" (at most {config.max_frames}, evenly spaced)" if config.max_frames else "")
              + f", longer side <= {config.max_side} px")
    text = ("the video's length and the frame times, then the question" if config.time_prompt
            else "the question")
    return head + how + (
        f"Each row is in TRL's vision preference format: `prompt` is one user turn with an "
        f"image placeholder per frame and then {text}; `chosen` / `rejected` are assistant "
        f"turns; `images` are {frames}. Provenance: `pair_id`, `video`, `video_sha256`, "
        "`kind`, `strategy`, `segment` ([start, end) s), `question`, `chosen_timestamps`, "
        "`rejected_timestamps`, `frame_timestamps` (s, of `images`), `question_original`, "
        "`chosen_original`, `rejected_original`, `edited`, `swapped`, `generator` (JSON), "
        "`status`.\n\n## Load\n\n```python\nfrom datasets import load_dataset\n\n"
        "ds = load_dataset(\"path/to/this/folder\", split=\"train\")  # images: PIL images\n"
        "# trl.DPOTrainer(model, args=DPOConfig(max_length=None, ...), train_dataset=ds,\n"
        "#                processing_class=processor)\n```\n\n"
        + (f"`{data_file}` holds everything (images embedded).\n" if config.embed_images else
           f"`{data_file}` names each row's frames (under `{IMAGES_DIR}/`) in "
           "`images_file_names`; `datasets` loads them as `images`.\n"))


# --------------------------------------------------------------------------------------------
# Import


@dataclass
class _Row:
    """One valid import row, normalised."""

    line: int
    video_key: tuple[str, str | None]  # (resolved path, sha256 or None)
    kind: str
    strategy: str | None
    question: str
    chosen: str
    rejected: str
    segment: list[float] | None
    chosen_timestamps: list[float]
    rejected_timestamps: list[float]
    status: str
    swapped: bool
    question_original: str
    chosen_original: str
    rejected_original: str
    generator: Any
    row_id: Any


def import_file(store: Store, path: str | os.PathLike, *, skip_bad: bool = False,
                user: str = "import", video_dir: str | os.PathLike | None = None) -> ImportReport:
    """Import the pairs of an export file (``.jsonl``, ``.parquet``, a ``tpo-json`` ``.json``,
    or an export folder).

    Every row is validated first: required fields and their types, a known kind, readable
    video - a file that exists (relative paths are taken from ``video_dir``, default the
    file's folder) or a video already in the library with that path or ``video_sha256``.
    A video file not in the library yet is ingested. With any bad row
    :class:`ImportValidationError` lists them all and nothing is imported, unless
    ``skip_bad``: then the good rows are imported and the bad ones reported.

    Pairs get the row's status when it is a known one (else pending); edits and swaps in the
    row are re-applied as one review by ``user`` (action ``import``) so they stay audited and
    the generated texts stay the originals. All pairs go in in one transaction under run key
    ``import:<sha256 of the file>``: importing the same file again adds nothing.
    """
    path = _data_file(Path(path).expanduser().resolve())
    if not path.is_file():
        raise ImportValidationError(path, [(0, "no such file")])
    fmt = {".jsonl": "jsonl", ".parquet": "parquet", ".json": "tpo-json"}.get(path.suffix.lower())
    if fmt is None:
        raise ImportValidationError(path, [(0, "unknown file type: expected .jsonl, .parquet "
                                               "or .json (tpo-json)")])
    file_sha = library.file_sha256(path)
    report = ImportReport(path=path, format=fmt, run_key=f"import:{file_sha[:24]}")
    base = Path(video_dir).expanduser().resolve() if video_dir else path.parent

    rows, errors = [], []
    for line, raw in _read_rows(path, fmt):
        if isinstance(raw, str):  # the reader's own complaint (bad JSON, not an object)
            errors.append((line, raw))
            continue
        row, problems = _parse_row(raw, line, fmt, base)
        errors += [(line, p) for p in problems]
        if row is not None and not problems:
            rows.append(row)
    videos, video_errors = _resolve_videos(store, rows)
    for row in rows:
        problem = video_errors.get(row.video_key) or _check_times(row, videos.get(row.video_key))
        if problem:
            errors.append((row.line, problem))
    bad_lines = {n for n, _ in errors}
    rows = [r for r in rows if r.line not in bad_lines]
    errors.sort(key=lambda e: e[0])
    if errors and not skip_bad:
        raise ImportValidationError(path, errors)
    report.skipped = errors

    # Only now, with every row checked, may the library change.
    ids: dict[tuple[str, str | None], int] = {}
    used = {r.video_key for r in rows}
    for key, target in videos.items():
        if key not in used:  # only bad rows (skipped) point at it
            continue
        if target.get("id") is None:  # a readable file the library does not have yet
            ingest = library.ingest(store, [target["path"]], user=user)
            report.videos_ingested += ingest.added + ingest.updated
            target = store.find_video(sha256=target["sha256"]) or {}
        if target.get("id") is None:
            raise ImportValidationError(path, [(0, f"cannot add {key[0]} to the library")])
        ids[key] = target["id"]

    by_video: dict[int, list[_Row]] = {}
    for row in rows:
        by_video.setdefault(ids[row.video_key], []).append(row)
    params = {"source": "import", "file": str(path), "sha256": file_sha, "format": fmt}
    with store.transaction():
        for video_id, group in by_video.items():
            if store.has_generation(video_id, report.run_key):
                report.already_imported += len(group)
                continue
            new = store.save_generation(video_id, report.run_key,
                                        [_pair_columns(r, path, file_sha) for r in group],
                                        params=params, seconds=0.0)
            for pair_id, row in zip(new, group):
                changes = _review_changes(row)
                if changes:
                    store.update_pair(pair_id, changes, user=user, action="import",
                                      expected_version=1,
                                      note=f"imported from {path.name} line {row.line}")
            report.imported += new
    return report


def _data_file(path: Path) -> Path:
    """The data file of an export folder, or the path itself."""
    if not path.is_dir():
        return path
    for name in DATA_FILES.values():
        if (path / name).is_file():
            return path / name
    raise ImportValidationError(path, [(0, "folder holds no export data file ("
                                           + ", ".join(DATA_FILES.values()) + ")")])


def _read_rows(path: Path, fmt: str) -> Iterator[tuple[int, dict | str]]:
    """(line number, row dict or a message saying why the line is no row)."""
    if fmt == "jsonl":
        with open(path, "rb") as f:  # bytes: a line that is not UTF-8 is that line's problem
            for n, data in enumerate(f, start=1):
                if not data.strip():
                    continue
                try:
                    value = json.loads(data.decode("utf-8"))
                except ValueError as err:  # UnicodeDecodeError is a ValueError too
                    yield n, f"not valid JSON ({err})"
                    continue
                yield n, value if isinstance(value, dict) else "not a JSON object"
        return
    if fmt == "tpo-json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as err:
            raise ImportValidationError(path, [(0, f"not valid JSON ({err})")]) from err
        if not isinstance(data, list):
            raise ImportValidationError(path, [(0, "a tpo-json file is a JSON list of pairs")])
        for n, value in enumerate(data, start=1):
            yield n, value if isinstance(value, dict) else "not a JSON object"
        return
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as err:
        raise ImportValidationError(path, [(0, f"not a parquet file ({err})")]) from err
    # The frames are not needed (the pairs point at their videos): skip reading their bytes.
    columns = [c for c in parquet.schema_arrow.names if c not in ("images", "images_file_names")]
    n = 0
    try:
        for batch in parquet.iter_batches(columns=columns, batch_size=PARQUET_BATCH):
            for value in batch.to_pylist():
                n += 1
                yield n, value
    except (pa.ArrowException, OSError) as err:
        raise ImportValidationError(
            path, [(n + 1, f"cannot read the parquet file here ({err})")]) from err


def _text(value: Any, role: str) -> str | None:
    """The text of a plain string or of a conversation's ``role`` turns (TRL's two forms)."""
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        return None
    parts = []
    for message in value:
        if not isinstance(message, dict) or message.get("role") != role:
            continue
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts += [c["text"] for c in content if isinstance(c, dict)
                      and c.get("type") == "text" and isinstance(c.get("text"), str)]
    return "\n".join(parts) if parts else None


def _times(value: Any, name: str, problems: list[str]) -> list[float]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(
            isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t) and t >= 0
            for t in value):
        problems.append(f"{name} must be a list of seconds (numbers >= 0)")
        return []
    return [float(t) for t in value]


def _parse_row(raw: dict, line: int, fmt: str, base: Path) -> tuple[_Row | None, list[str]]:
    """The row normalised, and what is wrong with it (nothing: a valid row)."""
    problems = []
    required = ("video", "prompt", "chosen", "rejected") + (() if fmt == "tpo-json" else ("kind",))
    missing = [k for k in required if raw.get(k) is None]
    if missing:
        problems.append(f"missing field(s): {', '.join(missing)}")

    video_path = raw.get("video")
    if video_path is not None and (not isinstance(video_path, str) or not video_path.strip()):
        problems.append("video must be a file path")
        video_path = None
    sha = raw.get("video_sha256")
    if sha is not None and not isinstance(sha, str):
        problems.append("video_sha256 must be a string")
        sha = None

    kind = raw.get("kind")
    if kind is None and fmt == "tpo-json":
        kind = DEFAULT_IMPORT_KIND
    if kind is not None and kind not in PAIR_KINDS:
        problems.append(f"unknown kind {kind!r} (expected {' or '.join(PAIR_KINDS)})")
    strategy = raw.get("strategy") or None  # exports write "" for an unknown strategy
    if strategy is not None and not isinstance(strategy, str):
        problems.append("strategy must be a string")

    # Exports carry the question on its own; otherwise it is the prompt's user text.
    question = raw.get("question")
    if not isinstance(question, str):
        question = _text(raw.get("prompt"), "user")
    texts = {"question": question, "chosen": _text(raw.get("chosen"), "assistant"),
             "rejected": _text(raw.get("rejected"), "assistant")}
    for name, text in texts.items():
        source = "prompt" if name == "question" else name
        if raw.get(source) is None:
            continue  # reported as missing
        if text is None:
            problems.append(f"{source} must be text or a conversation with {name} text")
        elif not text.strip():
            problems.append(f"{name} is empty")

    segment = raw.get("segment")
    if segment is None:
        if kind == "localized":
            problems.append("a localized pair needs its segment [start, end]")
    elif (not isinstance(segment, list) or len(segment) != 2
          or not all(isinstance(t, (int, float)) and not isinstance(t, bool) for t in segment)
          or not 0 <= segment[0] < segment[1]):
        problems.append("segment must be [start, end] seconds with 0 <= start < end, or null")
    else:
        segment = [float(t) for t in segment]
    chosen_t = _times(raw.get("chosen_timestamps"), "chosen_timestamps", problems)
    rejected_t = _times(raw.get("rejected_timestamps"), "rejected_timestamps", problems)

    originals = {}
    for name in ("question_original", "chosen_original", "rejected_original"):
        value = raw.get(name)
        if value is not None and not isinstance(value, str):
            problems.append(f"{name} must be a string")
        originals[name] = value if isinstance(value, str) and value.strip() else None
    swapped = raw.get("swapped") or False
    if not isinstance(swapped, bool):
        problems.append("swapped must be true or false")
    generator = raw.get("generator")
    if isinstance(generator, str):
        try:
            generator = json.loads(generator)
        except ValueError:
            pass  # keep the text as it is
    if problems:
        return None, problems

    path = Path(video_path).expanduser()
    path = path if path.is_absolute() else base / path
    status = raw.get("status") if raw.get("status") in PAIR_STATUSES else "pending"
    return _Row(
        line=line, video_key=(os.path.normpath(path), sha), kind=kind, strategy=strategy,
        question=question.strip(), chosen=texts["chosen"].strip(),
        rejected=texts["rejected"].strip(), segment=segment, chosen_timestamps=chosen_t,
        rejected_timestamps=rejected_t, status=status, swapped=swapped,
        question_original=originals["question_original"] or question.strip(),
        chosen_original=originals["chosen_original"] or texts["chosen"].strip(),
        rejected_original=originals["rejected_original"] or texts["rejected"].strip(),
        generator=generator, row_id=raw.get("id", raw.get("pair_id")),
    ), []


def _resolve_videos(store: Store, rows: list[_Row]) -> tuple[dict, dict]:
    """For each (path, sha) of the rows: the library's video row, or {path, sha256,
    duration_s} of a readable file to ingest; and what is wrong where neither works.

    Checks only; changes nothing.
    """
    found, errors = {}, {}
    for key in dict.fromkeys(r.video_key for r in rows):
        path, sha = key
        known = (store.find_video(sha256=sha) if sha else None) or store.find_video(path=path)
        if known is not None and sha and known.get("sha256") != sha:
            errors[key] = (f"video {path} in the library is not the video of this pair (its "
                           f"content differs from video_sha256 {sha[:12]}...)")
            continue
        if known is None and os.path.isfile(path):
            file_sha = library.file_sha256(Path(path))
            if sha and file_sha != sha:
                errors[key] = (f"video {path} is not the video of this pair (its content "
                               f"differs from video_sha256 {sha[:12]}...)")
                continue
            known = store.find_video(sha256=file_sha)  # the same bytes elsewhere in the library
            if known is None:
                try:
                    info = video.probe(path)
                except video.VideoError as err:
                    errors[key] = f"video {path} is not readable ({err.reason})"
                    continue
                found[key] = {"id": None, "path": path, "sha256": file_sha,
                              "duration_s": info.duration_s}
                continue
        if known is None:
            errors[key] = (f"video not found: {path} (no such file, and no video in the library "
                           f"with this path or sha256)")
        elif known.get("status") != "ready":
            errors[key] = (f"video #{known['id']} ({known['path']}) is unreadable: "
                           f"{known.get('error')}")
        else:
            found[key] = known
    return found, errors


def _check_times(row: _Row, target: dict | None) -> str | None:
    """A problem when a frame time or the segment's start lies past the end of its video."""
    duration = (target or {}).get("duration_s")
    if not duration:
        return None
    starts = [row.segment[0]] if row.segment else []
    latest = max([*row.chosen_timestamps, *row.rejected_timestamps, *starts], default=0.0)
    if latest > duration + TIME_SLACK_S:
        return f"times up to {latest:.3f} s lie past the end of the video ({duration:.3f} s)"
    return None


def _pair_columns(row: _Row, path: Path, file_sha: str) -> dict:
    """The pair as generated: original texts, each generated side with the frames it saw."""
    # The row's sides are as reviewed: after a swap, the generated chosen side is the row's
    # rejected one (and its *_original texts are the generated texts of the row's sides).
    row_chosen = (row.chosen_original, row.chosen_timestamps)
    row_rejected = (row.rejected_original, row.rejected_timestamps)
    chosen_side, rejected_side = ((row_rejected, row_chosen) if row.swapped
                                  else (row_chosen, row_rejected))
    imported = {"file": str(path), "sha256": file_sha, "line": row.line, "id": row.row_id}
    generator = ({**row.generator, "imported_from": imported} if isinstance(row.generator, dict)
                 else {"original": row.generator, "imported_from": imported})
    return {
        "kind": row.kind, "strategy": row.strategy, "question": row.question_original,
        "chosen": chosen_side[0], "rejected": rejected_side[0],
        "segment_start": row.segment[0] if row.segment else None,
        "segment_end": row.segment[1] if row.segment else None,
        "chosen_timestamps": chosen_side[1], "rejected_timestamps": rejected_side[1],
        "prompt": row.question, "generator": generator, "filter_verdict": "kept",
        "status": "pending",  # the row's own status comes with the import review
    }


def _review_changes(row: _Row) -> dict:
    """Reviewable columns that make the stored pair read as the row (see review.effective)."""
    # Edits are stored on the generated side: after a swap that is the row's other side.
    row_chosen = (row.chosen, row.chosen_original)  # (text as reviewed, generated text)
    row_rejected = (row.rejected, row.rejected_original)
    gen_chosen, gen_rejected = ((row_rejected, row_chosen) if row.swapped
                                else (row_chosen, row_rejected))
    changes: dict[str, Any] = {}
    if row.status != "pending":
        changes["status"] = row.status
    if row.swapped:
        changes["swapped"] = 1
    for column, (text, original) in (("edited_question", (row.question, row.question_original)),
                                     ("edited_chosen", gen_chosen),
                                     ("edited_rejected", gen_rejected)):
        if text != original:
            changes[column] = text
    return changes



def run_job(ctx) -> dict:
    """The ``export`` job kind (:mod:`tpo.jobs`): params ``{"out_dir": ..., "config": {...}}``."""
    config = ExportConfig(**ctx.params.get("config", {}))

    def progress(done: int, total: int, text: str) -> None:
        ctx.check_cancelled()
        ctx.progress(done / max(total, 1), text)

    report = export_pairs(ctx.store, ctx.params["out_dir"], config, progress=progress)
    ctx.log(report.summary())
    return {"summary": report.summary(), **report.as_dict()}
