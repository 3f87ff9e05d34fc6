"""What the offline demo model learns from: short synthetic clips and questions about them.

The demo model (:mod:`tpo.models.demo_model`) is trained like a real video-LM on *short clips*:
4-40 s of a synthetic video (:mod:`tpo.media.synth`) with one to five events, each covering a
good part of the clip, seen through 4-64 frames spread uniformly over the clip. Every
example is one question with its answer, taken from the clip's ground truth:

* ``event``: one event's question ("What colour is the circle in the top-left of the
  frame?" -> "Red.", "Which number is shown in green?" -> "7."),
* ``video``: a whole-clip question (how many shapes / numbers, which appeared first, the
  order of the numbers),
* ``mcq``: either kind asked as a lettered multiple-choice question in the evaluation's
  own prompt (:meth:`tpo.evaluation.mcq.MCQItem.prompt`) -> "B",
* ``caption``: the caption prompt the pair generator uses -> "The red circle, then the
  green number 7."

Long videos, where an event is one or two of 64 frames, are never seen in training: that
is the gap TPO should close. Clips are rendered straight to pixels
(:func:`tpo.media.synth.render_frames`), so thousands are made a minute without a codec.
Nothing here imports torch.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

import numpy as np

from tpo.evaluation.mcq import LETTERS, MCQItem
from tpo.media.synth import (COLORS, POSITIONS, SHAPES, VideoSpec, ground_truth, random_event,
                             render_frames)
from tpo.models.prompts import CAPTION_PROMPT

#: Frames per training clip and how often each count is drawn (short contexts dominate).
FRAME_COUNTS = (4, 8, 16, 32, 64)
FRAME_WEIGHTS = (0.25, 0.25, 0.2, 0.15, 0.15)
CLIP_S = (4.0, 40.0)  # clip length range, seconds
FRAME_SIZES = ((320, 180), (160, 96))  # the demo library's and the needle suite's frame sizes
TASKS = ("event", "video", "mcq", "caption")
TASK_WEIGHTS = (0.35, 0.25, 0.35, 0.05)


@dataclass(frozen=True)
class Example:
    """One training or test question: frames of a clip, the question and its answer."""

    frames: list[np.ndarray]  # (height, width, 3) uint8 RGB, in time order
    times: list[float]  # seconds, one per frame
    duration_s: float  # of the clip, as the time prompt states it
    question: str
    answer: str
    task: str  # one of TASKS, or "mcq/<type>"


def uniform_times(duration_s: float, n: int) -> list[float]:
    """Centres of n equal bins of [0, duration_s), as :meth:`tpo.media.video.Video.uniform` picks."""
    return [(i + 0.5) * duration_s / n for i in range(n)]


def clip_spec(rng: random.Random, duration_s: float | None = None,
              n_events: int | None = None) -> VideoSpec:
    """A short clip: 1-5 events, one per equal slot (>= 3 s), each 40-90 % of its slot."""
    duration = round(duration_s or rng.uniform(*CLIP_S), 1)
    k = n_events or rng.choices((1, 2, 3, 4, 5), weights=(0.3, 0.25, 0.2, 0.15, 0.1))[0]
    k = max(1, min(k, int(duration // 3)))  # slots of at least 3 s
    width, height = rng.choice(FRAME_SIZES)
    slot = duration / k
    events, questions = [], set()
    for i in range(k):
        length = slot * rng.uniform(0.4, 0.9)
        start = round(i * slot + rng.uniform(0, slot - length), 1)
        end = round(min(start + length, (i + 1) * slot), 1)
        for _ in range(100):  # distinct questions, as the synthetic library has
            event = random_event(rng, start, max(end, start + 0.2))
            if event.question not in questions:
                break
        questions.add(event.question)
        events.append(event)
    return VideoSpec(f"clip{rng.randrange(10**9)}", duration, 8, width, height, tuple(events),
                     seed=rng.randrange(10**6))


def visible(spec: VideoSpec, times: list[float]) -> VideoSpec:
    """``spec`` without the events no sampled frame shows (so every answer is in the frames).

    Frame ``floor(t * fps)`` is on screen at ``t``; an event shows on it when it starts
    before and ends after that frame's own time.
    """
    shown = [int(t * spec.fps + 1e-9) / spec.fps for t in times]
    keep = tuple(e for e in spec.events if any(e.start_s <= s < e.end_s for s in shown))
    return replace(spec, events=keep)


def describe(event) -> str:
    """How answers and captions name an event: "the red circle", "the green number 7"."""
    return f"the {event.label}" if event.kind == "shape" else f"the {event.color} number {event.label}"


def event_answer(event) -> str:
    """The free-text answer to an event's own question: its colour, or its number."""
    return f"{event.color.capitalize()}." if event.kind == "shape" else f"{event.label}."


def video_answer(question: dict) -> str:
    """The free-text answer to a whole-clip ground-truth question."""
    answer = question["answer"]
    return f"{answer[0].upper()}{answer[1:]}."


def caption(spec: VideoSpec) -> str:
    if not spec.events:
        return "Only the grey background."
    text = ", then ".join(describe(e) for e in spec.events)
    return f"{text[0].upper()}{text[1:]}."


def mcq_item(question: str, options: list[str], answer: str, rng: random.Random) -> MCQItem:
    """The multiple-choice version of a question, its options in a fresh random order."""
    options = list(options)
    rng.shuffle(options)
    return MCQItem("demo", "x", "", question, tuple(options), LETTERS[options.index(answer)])


def questions(spec: VideoSpec) -> list[tuple[str, str, str, list[str] | None, str]]:
    """Every ground-truth question of ``spec``: (type, question, free answer, options,
    correct option text). Types: colour, number (per event), count, order, sequence."""
    truth = ground_truth(spec)
    out = []
    for e in spec.events:
        kind = "colour" if e.kind == "shape" else "number"
        out.append((kind, e.question, event_answer(e), list(e.options), e.answer))
    for q in truth["questions"]:
        out.append((q["type"], q["question"], video_answer(q), q["options"], q["answer"]))
    return out


def sample_example(rng: random.Random, *, n_frames: int | None = None,
                   task: str | None = None, n_events: int | None = None) -> Example:
    """One random short-clip example (``n_frames``, ``task`` and ``n_events`` drawn when not
    given)."""
    n = n_frames or rng.choices(FRAME_COUNTS, weights=FRAME_WEIGHTS)[0]
    task = task or rng.choices(TASKS, weights=TASK_WEIGHTS)[0]
    for _ in range(20):
        spec = clip_spec(rng, n_events=n_events)
        times = uniform_times(spec.duration_s, n)
        spec = visible(spec, times)
        if spec.events:
            break
    frames = render_frames(spec, times)
    if task == "caption":
        return Example(frames, times, spec.duration_s, CAPTION_PROMPT, caption(spec), task)
    asked = questions(spec)
    per_event = [q for q in asked if q[0] in ("colour", "number")]
    whole = [q for q in asked if q[0] not in ("colour", "number")]
    if task == "event" or (task == "video" and not whole):
        pool = per_event
    elif task == "video":
        pool = whole
    else:  # mcq: over every question
        pool = asked
    kind, question, answer, options, correct = rng.choice(pool)
    if task == "mcq":
        item = mcq_item(question, options, correct, rng)
        return Example(frames, times, spec.duration_s, item.prompt(), item.answer, f"mcq/{kind}")
    return Example(frames, times, spec.duration_s, question, answer, kind)


#: What the vision pre-training (:func:`tpo.models.demo_train.pretrain_vision`) predicts from one
#: frame: the event's colour, its shape or digit, its position; the last class of each is
#: "no event on screen".
FRAME_LABELS = (tuple(COLORS), (*SHAPES, *map(str, range(10))), POSITIONS)


def sample_frame(rng: random.Random) -> tuple[np.ndarray, tuple[int, int, int]]:
    """One random frame (one event, or the bare background 15 % of the time) and its labels:
    indices into each of :data:`FRAME_LABELS` (``len(...)`` when no event is on screen)."""
    width, height = rng.choice(FRAME_SIZES)
    if rng.random() < 0.15:
        events: tuple = ()
        labels = tuple(len(names) for names in FRAME_LABELS)
    else:
        e = random_event(rng, 0.0, 2.0)
        events = (e,)
        what = e.shape if e.kind == "shape" else e.label
        labels = (FRAME_LABELS[0].index(e.color), FRAME_LABELS[1].index(what),
                  FRAME_LABELS[2].index(e.position))
    spec = VideoSpec("frame", 2.0, 8, width, height, events, seed=rng.randrange(10**6))
    (frame,) = render_frames(spec, [rng.uniform(0.0, 1.9)])
    return frame, labels
