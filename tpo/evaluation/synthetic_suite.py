"""The ``synthetic`` evaluation suite: the ground-truth questions of a folder of synthetic videos.

Every ``*.mp4`` rendered by :func:`tpo.media.synth.render_video` has its ground truth beside it
(``<stem>.json``): each event's question, options and answer, and the whole-video questions
(count, order, sequence) with their options. :func:`load_synthetic_suite` turns each of those
questions into one :class:`~tpo.evaluation.mcq.MCQItem`:

* ``item_id``: ``<stem>/event<k>`` (k-th event, in time order) or ``<stem>/<type><k>``
  (k-th whole-video question);
* ``answer``: the letter of the ground-truth option;
* ``duration_class``: the video's length as a label ("60 s", "2 min", "1.5 h");
* ``task``: the question type - ``colour`` (a shape event: which colour), ``number`` (a
  number event: which number), ``count``, ``order`` or ``sequence``;
* ``meta``: ``length_s`` (s); for an event also ``start_s``, ``end_s`` and its relative
  ``depth_start`` (start / length) and ``depth_duration`` ((end - start) / length), both in
  [0, 1]. (Not ``depth``: that key makes a summary draw the needle grid.)

A video without its JSON, or with a JSON that is not synth's ground truth, is left out and
listed in ``missing``. Torch-free, like the other suite readers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from tpo.evaluation.mcq import LETTERS, MCQItem

SUITE = "synthetic"


@dataclass
class SyntheticSuite:
    """The items of a folder, and the videos left out with why."""

    items: list[MCQItem]
    missing: list[tuple[str, str]] = field(default_factory=list)  # (video file, why)


def length_label(seconds: float) -> str:
    """A video length as people say it: 60 -> "60 s", 90 -> "90 s", 120 -> "2 min",
    150 -> "2.5 min", 7200 -> "2 h". Under 2 min in seconds, so 60 s and 90 s stay apart."""
    if seconds < 120:
        return f"{round(seconds):d} s"
    if seconds < 7200:
        return f"{round(seconds / 60, 1):g} min"
    return f"{round(seconds / 3600, 1):g} h"


def _event_task(event: dict) -> str:
    return "number" if event.get("kind") == "number" else "colour"


def _item(stem: str, item_id: str, video: Path, question: str, options: list, answer: str,
          length_s: float, task: str, meta: dict) -> MCQItem:
    options = [str(o) for o in options]
    return MCQItem(suite=SUITE, item_id=f"{stem}/{item_id}", video=str(video),
                   question=question, options=tuple(options),
                   answer=LETTERS[options.index(str(answer))],
                   duration_class=length_label(length_s), task=task,
                   meta={"length_s": length_s, **meta})


def video_items(video: Path, truth: dict) -> list[MCQItem]:
    """The MCQ items of one video from its ground truth (synth's JSON, decoded)."""
    length = float(truth["duration_s"])
    stem = video.stem
    items = []
    for k, event in enumerate(truth.get("events") or []):
        if not event.get("options") or event.get("answer") not in event["options"]:
            continue  # an event written without options has no multiple-choice form
        start, end = float(event["start_s"]), float(event["end_s"])
        items.append(_item(stem, f"event{k}", video, event["question"], event["options"],
                           event["answer"], length, _event_task(event),
                           {"start_s": start, "end_s": end,
                            "depth_start": round(start / length, 4),
                            "depth_duration": round((end - start) / length, 4)}))
    seen: dict[str, int] = {}
    for q in truth.get("questions") or []:
        if len(q.get("options") or []) < 2 or q.get("answer") not in q["options"]:
            continue
        kind = q.get("type") or "question"
        k = seen[kind] = seen.get(kind, -1) + 1
        items.append(_item(stem, f"{kind}{k}", video, q["question"], q["options"], q["answer"],
                           length, kind, {}))
    return items


def _truth(video: Path) -> dict | None:
    """synth's ground truth beside ``video``, or None when there is none (or another JSON)."""
    try:
        data = json.loads(video.with_suffix(".json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("events"), list) \
            or "duration_s" not in data:
        return None
    return data


def load_synthetic_suite(folder: str | Path, *, limit: int | None = None) -> SyntheticSuite:
    """Every ground-truth question of the synthetic videos in ``folder`` (not recursive),
    videos in name order; ValueError when the folder does not exist."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise ValueError(f"synthetic suite: {folder} is not a folder (give a folder of videos "
                         "rendered by tpo.media.synth, each with its .json ground truth)")
    suite = SyntheticSuite(items=[])
    for video in sorted(folder.glob("*.mp4")):
        truth = _truth(video)
        if truth is None:
            suite.missing.append((str(video), "no synthetic ground truth (.json) beside it"))
            continue
        suite.items += video_items(video.resolve(), truth)
    if limit:
        suite.items = suite.items[:limit]
    return suite
