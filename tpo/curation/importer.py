"""Files -> validated pairs in the store: the import side of :mod:`tpo.curation.export`.

:func:`import_file` reads a file that :mod:`tpo.curation.export` writes - ``metadata.jsonl`` /
``metadata.parquet`` / ``train.parquet`` (TRL's preference format, plain-text or
conversational ``prompt`` / ``chosen`` / ``rejected``), a ``tpo-json`` ``.json`` (the TPO /
LLaVA-Hound list of ``{"id", "video", "prompt", "chosen", "rejected"}``), or an export folder
holding one of them. Frames are never read: the pairs point at their videos.

Every row is validated first (fields and their types, a known kind, a readable video, times
inside it) and nothing is imported while any row is bad (unless ``skip_bad``). A row's
``frame_times`` (the times of its images; ``frame_timestamps`` in exports made before the
rename) are checked like the other times but not stored: they follow from the video and the
export's settings, so exporting the imported pairs again with those settings gives the same
frames. Pairs are
stored with their generated texts and the reviewer's state (edits, swap, status) re-applied
as one audited ``import`` review, so ``effective(imported) == the row``. Importing the same
file again adds nothing.

A file is untrusted input: a question or answer longer than :data:`MAX_TEXT_CHARS` characters
(20,000; generated texts are a few hundred) is a bad row, and so is a row nested deeper than
:data:`MAX_NESTING` levels; JSON nested too deep for the parser is reported as such, never as a
crash.

The layout's names (:data:`tpo.curation.export.DATA_FILES`, :data:`tpo.curation.export.PAIR_KINDS`, ...) are
defined by :mod:`tpo.curation.export`, the writer; this module only reads them.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from tpo.media import library, video
from tpo.errors import TPOError
from tpo.curation.export import DATA_FILES, PAIR_KINDS, PARQUET_BATCH, TIME_SLACK_S
from tpo.store import PAIR_STATUSES, Store, swap_sides

__all__ = ["ImportReport", "ImportValidationError", "import_file"]

# Kind given to rows of a TPO / LLaVA-Hound file, which carry none: a question about the video
# without a segment is what a comprehensive pair is.
DEFAULT_IMPORT_KIND = "comprehensive"

# Limits on what one row may hold. Generated texts are a few hundred characters (128 new
# tokens by default); a reviewer's edit is a paragraph. 20,000 leaves room for any real pair
# and keeps a hostile file from putting megabytes into every page that shows the pair.
MAX_TEXT_CHARS = 20_000
# An export row is a flat object with lists of numbers and a small generator record.
MAX_NESTING = 32

_TOO_DEEP = "file nesting too deep (JSON nested deeper than a pair file ever is)"


# --------------------------------------------------------------------------------------------
# Results


class ImportValidationError(TPOError):
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
# Rows


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
    frame_times: list[float]  # s: the row's images (checked, not stored)
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
                except RecursionError:
                    yield n, _TOO_DEEP
                    continue
                yield n, value if isinstance(value, dict) else "not a JSON object"
        return
    if fmt == "tpo-json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as err:
            raise ImportValidationError(path, [(0, f"not valid JSON ({err})")]) from err
        except RecursionError:
            raise ImportValidationError(path, [(0, _TOO_DEEP)]) from None
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
    if _deeper_than(raw, MAX_NESTING):
        return None, [f"row nested deeper than {MAX_NESTING} levels (MAX_NESTING)"]
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
        elif len(text) > MAX_TEXT_CHARS:
            problems.append(_too_long(name, text))

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
    # Exports before the rename called the images' times frame_timestamps.
    frames_key = "frame_times" if raw.get("frame_times") is not None else "frame_timestamps"
    frame_t = _times(raw.get(frames_key), frames_key, problems)

    originals = {}
    for name in ("question_original", "chosen_original", "rejected_original"):
        value = raw.get(name)
        if value is not None and not isinstance(value, str):
            problems.append(f"{name} must be a string")
        elif value is not None and len(value) > MAX_TEXT_CHARS:
            problems.append(_too_long(name, value))
        originals[name] = value if isinstance(value, str) and value.strip() else None
    swapped = raw.get("swapped") or False
    if not isinstance(swapped, bool):
        problems.append("swapped must be true or false")
    generator = raw.get("generator")
    if isinstance(generator, str):
        try:
            generator = json.loads(generator)
        except (ValueError, RecursionError):
            pass  # keep the text as it is
        if _deeper_than(generator, MAX_NESTING):
            problems.append(f"generator nested deeper than {MAX_NESTING} levels (MAX_NESTING)")
    if problems:
        return None, problems

    path = Path(video_path).expanduser()
    path = path if path.is_absolute() else base / path
    status = raw.get("status") if raw.get("status") in PAIR_STATUSES else "pending"
    return _Row(
        line=line, video_key=(os.path.normpath(path), sha), kind=kind, strategy=strategy,
        question=question.strip(), chosen=texts["chosen"].strip(),
        rejected=texts["rejected"].strip(), segment=segment, chosen_timestamps=chosen_t,
        rejected_timestamps=rejected_t, frame_times=frame_t, status=status, swapped=swapped,
        question_original=originals["question_original"] or question.strip(),
        chosen_original=originals["chosen_original"] or texts["chosen"].strip(),
        rejected_original=originals["rejected_original"] or texts["rejected"].strip(),
        generator=generator, row_id=raw.get("id", raw.get("pair_id")),
    ), []


def _too_long(name: str, text: str) -> str:
    return (f"{name} is {len(text):,} characters, longer than the limit of "
            f"{MAX_TEXT_CHARS:,} (MAX_TEXT_CHARS)")


def _deeper_than(value: Any, limit: int) -> bool:
    """True when lists/dicts in ``value`` nest more than ``limit`` levels (iteratively: a
    deep value must not exhaust the stack here either)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = (item.values() if isinstance(item, dict)
                    else item if isinstance(item, list) else None)
        if children is None:
            continue
        if depth > limit:
            return True
        stack += [(c, depth + 1) for c in children if isinstance(c, (dict, list))]
    return False


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
    latest = max([*row.chosen_timestamps, *row.rejected_timestamps, *row.frame_times,
                  *starts], default=0.0)
    if latest > duration + TIME_SLACK_S:
        return f"times up to {latest:.3f} s lie past the end of the video ({duration:.3f} s)"
    return None


def _pair_columns(row: _Row, path: Path, file_sha: str) -> dict:
    """The pair as generated: original texts, each generated side with the frames it saw."""
    # The row's sides are as reviewed: after a swap, the generated chosen side is the row's
    # rejected one (and its *_original texts are the generated texts of the row's sides).
    row_chosen = (row.chosen_original, row.chosen_timestamps)
    row_rejected = (row.rejected_original, row.rejected_timestamps)
    chosen_side, rejected_side = swap_sides(row.swapped, row_chosen, row_rejected)
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
    """Reviewable columns that make the stored pair read as the row (see Pair.effective)."""
    # Edits are stored on the generated side: after a swap that is the row's other side.
    row_chosen = (row.chosen, row.chosen_original)  # (text as reviewed, generated text)
    row_rejected = (row.rejected, row.rejected_original)
    gen_chosen, gen_rejected = swap_sides(row.swapped, row_chosen, row_rejected)
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
