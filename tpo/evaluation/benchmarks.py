"""Readers of locally downloaded video benchmarks into :class:`tpo.evaluation.mcq.MCQItem` lists.

``load_suite("NAME:PATH")`` reads one of these layouts (the synthetic "needle" suite is built
by :mod:`tpo.evaluation.needle` instead). Nothing is downloaded; the annotation files and the videos must
already be on disk.

**videomme:PATH** - Video-MME. PATH is the annotation file or a folder holding it (searched at
its top and one level down, parquet before json before jsonl). Accepted annotations:

- the Hugging Face release ``lmms-lab/Video-MME``: ``videomme/test-00000-of-00001.parquet``, one
  row per question with ``video_id`` ("001"), ``duration`` (short/medium/long), ``domain``,
  ``sub_category``, ``url``, ``videoID`` (the YouTube id), ``question_id`` ("001-1"),
  ``task_type``, ``question``, ``options`` (["A. ...", "B. ...", ...]) and ``answer`` ("A");
  the same rows as a .json list or .jsonl lines are read too;
- the GitHub release's nested JSON: a list of videos, each with ``video_id``, a duration
  (``duration`` or ``duration_category``), ``domain``/``video_category``,
  ``sub_category``/``video_subcategory``, optionally ``videoID``/``url``, and ``questions``:
  [{question_id, task_type, question, options or choices, answer}].

Videos are ``<videoID>.mp4`` (also .MP4/.mkv, as lmms-eval accepts) in ``data/`` (where
lmms-eval and the unzipped HF chunks put them), ``videos/`` or directly in the root; the root
is PATH's folder, and for an annotation file also its parent (the HF parquet sits in
``videomme/``). duration_class = duration, task = task_type.

**mlvu:PATH** - MLVU dev set (HF ``MLVU/MVLU``, as VLMEvalKit reads it). PATH is the MLVU root
(with ``json/`` and ``video/``), the HF download folder (with ``MLVU/json``), the ``json``
folder, or one task file. Task files ``json/<n>_<task>.json`` (1_plotQA ... 7_topic_reasoning)
hold lists of {video, duration (s), question, candidates (texts), answer (the correct
candidate's TEXT), question_type}; videos are ``video/<n>_<task>/<video>``. The open-ended
tasks (8_sub_scene, 9_summary: no ``candidates``) are skipped. The MLVU *test* set
(``test_question.json``: question_id, candidates, no answers) cannot be scored locally and is
rejected. task = question_type; duration_class is a bucket of the duration: "<3 min",
"3-10 min", "10-30 min", ">30 min" (MLVU videos run from 3 min to 2 h).

MLVU is also read in the layout lmms-eval's ``mlvu_dev`` task reads (HF ``sy1998/MLVU_dev``):
PATH is that annotation file (.parquet/.json/.jsonl) or a folder holding it (at its top or one
level down, e.g. ``mlvu/test-00000-of-00001.parquet``): rows of {video_name, duration,
question (the question followed by "(A) ..." lines, one per option), candidates (texts),
answer (the LETTER; a candidate's text is accepted too), task_type, question_id}. Videos are
``<root>/<video_name>`` as lmms-eval joins them (also under ``video/``, ``videos/``,
``mlvu/`` or MLVU's ``video/<n>_<task>/``; a video_name without an extension is tried as
.mp4), the root being PATH's folder and the annotation file's folder and its parent. task =
task_type; the question keeps its option lines for lmms-eval's prompt (``meta``).

**longvideobench:PATH** - LongVideoBench validation set. PATH is the folder with
``lvb_val.json`` or that file (a .jsonl/.parquet with the same rows works too): a list of
{id, video_id, video_path, question, candidates (texts), correct_choice (index),
duration_group, duration, question_category, topic_category, ...}; the HF parquet's
``option0``..``option4`` ("N/A" when unused) stand in for ``candidates``. Videos are
``<root>/videos/<video_path>``. A folder without ``lvb_val.json`` is searched for the HF
release's ``validation-*.parquet`` (top or one level down), as lmms-eval reads it.
``lvb_test_wo_gt.json`` has no ``correct_choice`` and is rejected; single rows without it are skipped. task = question_category; duration_class from
duration_group, the upper end of the paper's length groups: 15 -> "8-15 s", 60 -> "15-60 s",
600 -> "3-10 min", 3600 -> "15-60 min".

Items whose video file is absent are reported in ``SuiteLoad.missing`` rather than failing the
load; a load where none exists fails with the places the videos were looked for.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from tpo.errors import TPOError
from tpo.evaluation.mcq import LETTERS, MCQItem

SUITES = ("videomme", "mlvu", "longvideobench")


class BenchmarkError(TPOError, ValueError):
    """A benchmark spec or file that cannot be read; the message names the file and why."""


@dataclass
class SuiteLoad:
    """What :func:`load_suite` read: ``items`` whose video exists (absolute paths, file
    order, cut to ``limit``) and ``missing`` (item id, expected video path) for the rest."""

    name: str
    path: str
    items: list[MCQItem] = field(default_factory=list)
    missing: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class _Read:
    file: Path  # the (first) annotation file read, for messages
    items: list[MCQItem]
    video_dirs: list[Path]  # where the videos were looked for, for messages


def load_suite(spec: str, *, limit: int | None = None) -> SuiteLoad:
    """Read ``"videomme:PATH"``, ``"mlvu:PATH"`` or ``"longvideobench:PATH"`` (see the
    module docstring for the layouts). Raises :class:`BenchmarkError`."""
    name, sep, raw = spec.partition(":")
    name = name.strip().lower()
    if name == "needle":
        raise BenchmarkError("the needle suite is synthetic: build it with "
                             "tpo.evaluation.needle.build_needle_suite, not tpo.evaluation.benchmarks.load_suite")
    if name not in _READERS:
        raise BenchmarkError(f"unknown benchmark {name!r} in {spec!r}: expected one of "
                             f"{', '.join(SUITES)} as NAME:PATH")
    if not sep or not raw.strip():
        raise BenchmarkError(f"{spec!r}: give the benchmark's files as {name}:PATH")
    if limit is not None and limit < 0:
        raise BenchmarkError(f"limit must be >= 0, got {limit}")
    path = Path(raw.strip()).expanduser().resolve()
    if not path.exists():
        raise BenchmarkError(f"{name}: {path} does not exist")
    read = _READERS[name](path)
    if not read.items:
        raise BenchmarkError(f"{name}: no multiple-choice questions in {read.file}")
    present = [item for item in read.items if Path(item.video).is_file()]
    missing = [(item.item_id, item.video) for item in read.items if not Path(item.video).is_file()]
    if not present:
        where = ", ".join(str(d) for d in read.video_dirs)
        raise BenchmarkError(f"{name}: none of the {len(read.items)} videos of {read.file} "
                             f"exist; looked in {where} (e.g. {missing[0][1]})")
    return SuiteLoad(name, str(path), present[:limit] if limit is not None else present, missing)


# --- shared helpers -------------------------------------------------------------------------

def _read_rows(file: Path) -> list[dict]:
    """The records of a .parquet, .json (a list, or an object with a list under "data") or
    .jsonl file."""
    try:
        if file.suffix == ".parquet":
            import pandas as pd  # only here: parquet needs pandas + pyarrow

            return pd.read_parquet(file).to_dict("records")
        text = file.read_text(encoding="utf-8")
        if file.suffix == ".jsonl":
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        rows = json.loads(text)
    except (OSError, ValueError, ImportError) as e:
        raise BenchmarkError(f"cannot read {file}: {e}") from e
    if isinstance(rows, dict) and isinstance(rows.get("data"), list):
        rows = rows["data"]
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise BenchmarkError(f"{file}: expected a list of objects (one per question)")
    return rows


def _require(file: Path, rows: list[dict], fields: dict[str, tuple[str, ...]]) -> None:
    """Fail naming the fields (any one spelling of each) the first incomplete row lacks."""
    for index, row in enumerate(rows):
        lacking = [" or ".join(names) for names in fields.values()
                   if not any(row.get(n) is not None for n in names)]
        if lacking:
            raise BenchmarkError(f"{file}: row {index} lacks {', '.join(lacking)} (it has "
                                 f"{', '.join(sorted(row)) or 'no fields'}); not the expected "
                                 f"layout")


def _get(row: dict, *names: str, default=None):
    return next((row[n] for n in names if row.get(n) is not None), default)


def _options(values) -> list[str]:
    """Option texts without their "A. " / "(A) " prefixes. A prefix is only removed when its
    letter is the option's own, so an option like "D. Trump" in position A stays whole."""
    texts = [str(v) for v in list(values)]  # parquet gives numpy arrays
    out = []
    for letter, text in zip(LETTERS, texts):
        m = re.match(r"\s*[(\[]?([A-Z])[.):\]]\s*", text)
        out.append(text[m.end():].strip() if m and m.group(1) == letter else text.strip())
    return out


def _item(file: Path, **fields) -> MCQItem:
    try:
        return MCQItem(**fields)
    except ValueError as e:  # e.g. an answer letter beyond the options
        raise BenchmarkError(f"{file}: {e}") from e


def _first_existing(paths: Iterable[Path]) -> Path:
    """The first path that is a file, else the first path (the one reported as missing)."""
    paths = list(paths)
    return next((p for p in paths if p.is_file()), paths[0])


def _find(folder: Path, patterns: tuple[str, ...]) -> Path | None:
    """The first file matching the patterns in order, sorted within a pattern; hidden files
    and folders (download tools' metadata) are not looked at."""
    for pattern in patterns:
        found = sorted(p for p in folder.glob(pattern)
                       if p.is_file() and not p.relative_to(folder).parts[0].startswith("."))
        if found:
            return found[0]
    return None


# --- Video-MME ------------------------------------------------------------------------------

_VIDEOMME_FILES = ("*.parquet", "*/*.parquet", "*.json", "*/*.json", "*.jsonl", "*/*.jsonl")
_YOUTUBE_ID = re.compile(r"(?:v=|youtu\.be/|/shorts/)([\w-]{6,})")


def _read_videomme(path: Path) -> _Read:
    if path.is_dir():
        file = _find(path, _VIDEOMME_FILES)
        if file is None:
            raise BenchmarkError(f"videomme: no annotation file (.parquet/.json/.jsonl) in {path} "
                                 f"or its subfolders (the HF release has "
                                 f"videomme/test-00000-of-00001.parquet)")
        roots = [path]
    else:
        file = path
        roots = [file.parent, file.parent.parent]  # the HF parquet sits in <root>/videomme/
    rows = _read_rows(file)
    if rows and all("questions" in r for r in rows):  # GitHub layout: one entry per video
        _require(file, rows, {"video_id": ("video_id",), "questions": ("questions",)})
        rows = [{**{k: v for k, v in video.items() if k != "questions"}, **q}
                for video in rows for q in video["questions"]]
    _require(file, rows, {"question": ("question",), "options": ("options", "choices"),
                          "answer": ("answer",), "video": ("videoID", "url", "video_id")})
    video_dirs = [d for root in roots for d in (root / "data", root / "videos", root)]
    videos: dict[str, Path] = {}  # three questions per video: look each file up once
    items = []
    for index, row in enumerate(rows):
        youtube = _get(row, "videoID")
        if youtube is None and (m := _YOUTUBE_ID.search(str(row.get("url") or ""))):
            youtube = m.group(1)
        # The nested JSON may carry only the "001"-style video_id; use it as the file name.
        stem = youtube or row.get("video_id")
        if stem is None:
            raise BenchmarkError(f"{file}: row {index}: no videoID, and no YouTube id in its "
                                 f"url {row.get('url')!r}")
        stem = str(stem)
        if stem not in videos:
            videos[stem] = _first_existing(d / f"{stem}{ext}" for d in video_dirs
                                           for ext in (".mp4", ".MP4", ".mkv"))
        answer = str(row["answer"]).strip().upper()[:1]  # "A" (tolerate "A." / "a")
        items.append(_item(
            file, suite="videomme",
            item_id=str(_get(row, "question_id", default=f"{stem}-{index}")),
            video=str(videos[stem]), question=str(row["question"]),
            options=_options(_get(row, "options", "choices")), answer=answer,
            duration_class=str(_get(row, "duration", "duration_category", default="")),
            task=str(row.get("task_type") or ""),
            meta={"video_id": str(_get(row, "video_id", default=stem)), "videoID": stem,
                  "domain": _get(row, "domain", "video_category"),
                  "sub_category": _get(row, "sub_category", "video_subcategory")},
        ))
    return _Read(file, items, video_dirs)


# --- MLVU -----------------------------------------------------------------------------------

def _mlvu_duration(seconds) -> str:
    """Bucket an MLVU duration in seconds (the benchmark spans 3 min to 2 h)."""
    if seconds is None:
        return ""
    s = float(seconds)
    return ("<3 min" if s < 180 else "3-10 min" if s < 600 else "10-30 min" if s < 1800
            else ">30 min")


def _read_mlvu(path: Path) -> _Read:
    if path.is_file():
        rows = _read_rows(path)
        if _is_mlvu_dev(rows):
            return _read_mlvu_dev(path, rows, [path.parent, path.parent.parent])
        files = [path]
        root = path.parent.parent if path.parent.name == "json" else path.parent
    else:
        dev = _find_mlvu_dev(path)
        if dev is not None:
            return _read_mlvu_dev(dev, _read_rows(dev), [path, dev.parent, dev.parent.parent])
        for root, json_dir in ((path, path / "json"), (path / "MLVU", path / "MLVU" / "json"),
                               (path.parent, path)):
            if json_dir.is_dir() and any(json_dir.glob("*.json")):
                break
        else:
            raise BenchmarkError(f"mlvu: no json/ folder of task files (1_plotQA.json, ...) in "
                                 f"{path} or {path / 'MLVU'}")
        files = sorted(json_dir.glob("*.json"))
    items, video_dirs = [], []
    for file in files:
        rows = _read_rows(file)
        if not any("candidates" in r for r in rows):
            if len(files) == 1:
                raise BenchmarkError(f"mlvu: {file} has no 'candidates': an open-ended task "
                                     f"(sub_scene/summary), not multiple choice")
            continue  # 8_sub_scene / 9_summary: open-ended, no options
        if not any("answer" in r for r in rows):
            raise BenchmarkError(f"mlvu: {file} has no 'answer' fields: the MLVU test set keeps "
                                 f"its answers hidden and cannot be scored here; use the dev set")
        _require(file, rows, {"video": ("video",), "question": ("question",),
                              "candidates": ("candidates",), "answer": ("answer",)})
        task_dir = root / "video" / file.stem  # video/1_plotQA/ for json/1_plotQA.json
        # Older copies name the folder without the number (video/plotQA/).
        alt_dir = root / "video" / re.sub(r"^\d+_", "", file.stem)
        video_dirs += [task_dir]
        for index, row in enumerate(rows):
            candidates = [str(c) for c in row["candidates"]]
            answer = _answer_index(file, index, candidates, str(row["answer"]))
            video = _first_existing([task_dir / row["video"], alt_dir / row["video"],
                                     root / "video" / row["video"]])
            items.append(_item(
                file, suite="mlvu", item_id=f"{file.stem}/{index}", video=str(video),
                question=str(row["question"]), options=candidates, answer=LETTERS[answer],
                duration_class=_mlvu_duration(row.get("duration")),
                task=str(row.get("question_type") or re.sub(r"^\d+_", "", file.stem)),
                meta={"duration_s": row.get("duration")},
            ))
    return _Read(files[0], items, video_dirs or [root / "video"])


# MLVU's video folders per task (video/1_plotQA/, ...); "findNeedle" is MLVU's own json's name
# for the needle task, "needle" lmms-eval's.
_MLVU_TASK_DIRS = {"plotQA": "1_plotQA", "needle": "2_needle", "findNeedle": "2_needle",
                   "ego": "3_ego", "count": "4_count", "order": "5_order",
                   "anomaly_reco": "6_anomaly_reco", "topic_reasoning": "7_topic_reasoning"}
_MLVU_DEV_FILES = ("*.parquet", "*/*.parquet", "*.json", "*/*.json", "*.jsonl", "*/*.jsonl")
_OPTION_LINE = re.compile(r"^\s*\(([A-Z])\)\s?")  # "(A) a man" in MLVU_dev's question


def _is_mlvu_dev(rows: list[dict]) -> bool:
    """Rows in lmms-eval's MLVU_dev layout (``video_name``), not MLVU's own (``video``)."""
    return bool(rows) and "video_name" in rows[0] and "video" not in rows[0]


def _find_mlvu_dev(folder: Path) -> Path | None:
    """The MLVU_dev annotation file in ``folder`` (top or one level down), or None; MLVU's
    own task files (``json/``) are not looked at."""
    for pattern in _MLVU_DEV_FILES:
        for file in sorted(folder.glob(pattern)):
            parts = file.relative_to(folder).parts
            if not file.is_file() or parts[0].startswith(".") or "json" in parts[:-1]:
                continue
            try:
                if _is_mlvu_dev(_read_rows(file)):
                    return file
            except BenchmarkError:
                continue  # not a list of rows: some other file
    return None


def _split_mlvu_question(text: str) -> tuple[str, bool]:
    """(the question without its "(A) ..." option lines, whether it had any)."""
    lines = text.splitlines()
    first = next((k for k, line in enumerate(lines) if _OPTION_LINE.match(line)), None)
    if first is None:
        return text.strip(), False
    return "\n".join(lines[:first]).strip(), True


def _mlvu_dev_answer(file: Path, index: int, candidates: list[str], answer: str) -> int:
    """The answer's index: MLVU_dev gives the letter ("A", "(A)"); a candidate's text works."""
    letter = re.fullmatch(r"\(?([A-Z])\)?\.?", answer.strip())
    if letter and answer not in candidates:
        k = LETTERS.index(letter.group(1))
        if k >= len(candidates):
            raise BenchmarkError(f"{file}: row {index}: answer {answer!r} but only "
                                 f"{len(candidates)} candidates")
        return k
    return _answer_index(file, index, candidates, answer)


def _read_mlvu_dev(file: Path, rows: list[dict], roots: list[Path]) -> _Read:
    _require(file, rows, {"video_name": ("video_name",), "question": ("question",),
                          "candidates": ("candidates",), "answer": ("answer",)})
    roots = list(dict.fromkeys(roots))  # in order, once each
    video_dirs = list(dict.fromkeys(d for root in roots for d in (
        root, root / "video", root / "videos", root / "mlvu")))
    ids = [row.get("question_id") for row in rows]
    unique_ids = None not in ids and len(set(map(str, ids))) == len(ids)
    items = []
    for index, row in enumerate(rows):
        candidates = [str(c) for c in list(row["candidates"])]  # parquet gives numpy arrays
        answer = _mlvu_dev_answer(file, index, candidates, str(row["answer"]))
        task = str(_get(row, "task_type", "question_type", default=""))
        name = str(row["video_name"])
        names = [name] + ([name + ".mp4"] if not Path(name).suffix else [])
        places = [d / n for d in video_dirs for n in names]
        if task in _MLVU_TASK_DIRS:  # MLVU's own folders: video/<n>_<task>/<file>
            places += [root / "video" / _MLVU_TASK_DIRS[task] / Path(n).name
                       for root in roots for n in names]
        raw = str(row["question"])
        question, has_options = _split_mlvu_question(raw)
        items.append(_item(
            file, suite="mlvu",
            item_id=str(ids[index]) if unique_ids else f"{file.stem}/{index}",
            video=str(_first_existing(places)), question=question, options=candidates,
            answer=LETTERS[answer], duration_class=_mlvu_duration(row.get("duration")),
            task=task,
            meta={"duration_s": row.get("duration"),
                  "question_with_options": raw.strip() if has_options else None},
        ))
    return _Read(file, items, video_dirs)


def _answer_index(file: Path, index: int, candidates: list[str], answer: str) -> int:
    """Where the answer text is among the candidates (exact, else ignoring case/spacing)."""
    if answer in candidates:
        return candidates.index(answer)
    folded = [" ".join(c.lower().split()) for c in candidates]
    key = " ".join(answer.lower().split())
    if key in folded:
        return folded.index(key)
    raise BenchmarkError(f"{file}: row {index}: answer {answer!r} is not one of its "
                         f"candidates {candidates}")


# --- LongVideoBench -------------------------------------------------------------------------

_LVB_GROUPS = {15: "8-15 s", 60: "15-60 s", 600: "3-10 min", 3600: "15-60 min"}


def _read_longvideobench(path: Path) -> _Read:
    if path.is_dir():
        file = path / "lvb_val.json"
        if not file.is_file():  # the HF release, as lmms-eval reads it
            file = _find(path, ("validation-*.parquet", "*/validation-*.parquet"))
        if file is None:
            test = " (lvb_test_wo_gt.json is the test split, without answers)" if (
                path / "lvb_test_wo_gt.json").is_file() else ""
            raise BenchmarkError(f"longvideobench: no lvb_val.json or validation-*.parquet "
                                 f"in {path}{test}")
    else:
        file = path
    rows = _read_rows(file)
    _require(file, rows, {"id": ("id",), "question": ("question",),
                          "candidates": ("candidates", "option0"), "video_path": ("video_path",)})
    answered = [r for r in rows if r.get("correct_choice") is not None]
    if rows and not answered:
        raise BenchmarkError(f"longvideobench: {file} has no 'correct_choice' (the test split "
                             f"lvb_test_wo_gt.json keeps its answers hidden); use lvb_val.json")
    # videos/ beside the annotation file; beside PATH too when the parquet sits one level down
    video_dirs = list(dict.fromkeys([file.parent / "videos"]
                                    + ([path / "videos"] if path.is_dir() else [])))
    items = []
    for row in answered:  # rows without an answer cannot be scored: skipped
        candidates = row.get("candidates")
        if candidates is None:  # HF parquet: option0..option4, "N/A" when unused
            candidates = [row[f"option{i}"] for i in range(5)
                          if row.get(f"option{i}") not in (None, "N/A")]
        group, choice = row.get("duration_group"), int(row["correct_choice"])
        items.append(_item(
            file, suite="longvideobench", item_id=str(row["id"]),
            video=str(_first_existing(d / row["video_path"] for d in video_dirs)),
            question=str(row["question"]),
            options=[str(c) for c in candidates],
            answer=LETTERS[choice] if 0 <= choice < len(LETTERS) else str(choice),
            duration_class=_LVB_GROUPS.get(int(group), f"{group} s") if group is not None else "",
            task=str(row.get("question_category") or ""),
            meta={k: row.get(k) for k in ("video_id", "topic_category", "level", "duration",
                                          "duration_group")},
        ))
    return _Read(file, items, video_dirs)


_READERS: dict[str, Callable[[Path], _Read]] = {
    "videomme": _read_videomme, "mlvu": _read_mlvu, "longvideobench": _read_longvideobench,
}
