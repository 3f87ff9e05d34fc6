"""TPO preference-pair generation: pure orchestration over a video-LM and a video handle.

*Localized* pairs (fine-grained grounding): pick segments spread over the video, caption each
segment, have a writer turn the caption into a question only that segment answers (or
"None": skipped), then answer it twice — **chosen** on the segment's frames, **rejected** on
the video with the segment cut out (``irrelevant``) or on a sparse subset of the segment's
frames (``incomplete``).

*Comprehensive* pairs (whole-video understanding): caption chunks across the whole video, have
the writer ask about the whole video (summary, order, counting, cause), then answer on dense
frames (**chosen**, default 64) and on a sparse subset of them (**rejected**, default 8).

Videos with known ground truth (the synthetic library) take their segments and questions from
it when ``questions="auto"``: the events' spans and questions are exact, so the pairs test the
pipeline and the model rather than the question writer.

Each video is decoded once: every plan is made first (frame indices), the union is decoded,
and each answer reuses those frames. Every pair records which frames each side saw.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from dataclasses import dataclass, field
from typing import Callable, Literal, Protocol, Sequence, get_args

import numpy as np
from pydantic import Field, model_validator

from tpo.generation import filters
from tpo.media import video
from tpo.configs import Config
from tpo.media.video import Frames
from tpo.models.prompts import CAPTION_PROMPT, Reply, VideoQuestion, time_prompt

PAIR_FORMAT_VERSION = 1  # bump when the generation logic changes what a run produces

LOCALIZED_WRITER_PROMPT = """Below is a description of a short clip from a longer video.
Description: {caption}

Write ONE question about a specific thing that happens or is visible in this clip, which can
only be answered by watching this clip (not the rest of the video). Reply with the question
only. If the description holds nothing specific enough to ask about, reply with: None"""

COMPREHENSIVE_WRITER_PROMPT = """Below are descriptions of consecutive parts of one video, in order.
{captions}

Write ONE question about the video as a whole that needs all of it to answer, focused on
{focus}. Reply with the question only. If no good question exists, reply with: None"""

COMPREHENSIVE_FOCUS = ("the order in which things happen", "how many times something appears",
                       "a summary of what happens", "why or how something changes over time")


class Model(Protocol):
    """What generation needs from a video-LM (:class:`tpo.models.vlm.VLM` provides it)."""

    model_id: str

    def replies(self, items: Sequence[VideoQuestion]) -> list[Reply]: ...
    def chat(self, prompt: str) -> str: ...


class TextModel(Protocol):
    """A question writer or judge (:class:`tpo.models.textlm.TextLM` provides it); a plain
    ``prompt -> reply`` function works too (recorded by its ``name`` or function name)."""

    name: str

    def chat(self, prompt: str) -> str: ...


Chat = Callable[[str], str]
SELF_WRITER = "self"  # what pairs record as writer when the video-LM wrote the question


def speaker(model: TextModel | Chat | None) -> tuple[Chat | None, str | None]:
    """(``prompt -> reply`` function, name to record) of a writer or judge; (None, None)
    for None."""
    if model is None:
        return None, None
    chat = getattr(model, "chat", model)
    name = getattr(model, "name", None) or getattr(model, "__qualname__", None) or repr(model)
    return chat, str(name)


class GenerationConfig(Config):
    """How pairs are generated; every field is recorded with each pair and enters the run's
    fingerprint (:func:`run_key`). Checked by declaration: a bad value raises
    :class:`tpo.configs.ConfigError` (a ValueError) naming the field."""

    localized: int = Field(5, ge=0, description="Localized pairs to attempt per video.")
    comprehensive: int = Field(5, ge=0, description=(
        "Comprehensive pairs to attempt per video (5:5 is the paper's best mix)."))
    strategy: Literal["irrelevant", "incomplete", "mixed"] = Field("irrelevant", description=(
        "Localized rejected side: 'irrelevant' (video without the segment), 'incomplete' "
        "(sparse subset of the segment) or 'mixed' (alternate)."))
    segment_min_s: float = Field(5.0, gt=0, description="Shortest segment, seconds.")
    segment_max_s: float = Field(30.0, gt=0, description="Longest segment, seconds.")
    segment_frames: int = Field(16, ge=1, description=(
        "Frames of the segment the chosen answer sees (and of the rest, for irrelevant)."))
    incomplete_frames: int = Field(4, ge=1, description=(
        "Frames of the segment the 'incomplete' rejected answer sees."))
    # sparse >= 1 and sparse < dense: dense is at least 2
    dense: int = Field(64, ge=2, description="Frames the comprehensive chosen answer sees.")
    sparse: int = Field(8, ge=1, description="Frames the comprehensive rejected answer sees.")
    caption_frames: int = Field(8, ge=1, description="Frames per caption.")
    overview_chunks: int = Field(4, ge=1, description=(
        "Parts of the video captioned for comprehensive questions."))
    questions: Literal["auto", "model", "ground_truth"] = Field("auto", description=(
        "Question source. auto: ground-truth questions when the video has them, written ones "
        "for the rest; model: always written; ground_truth: only the video's own questions "
        "(fewer pairs rather than written ones). Ground-truth answers never enter a pair; the "
        "judge alone sees them, as its reference."))
    max_side: int = Field(448, ge=1, description=(
        "Frames are downscaled so the longer side is at most this many px."))
    max_new_tokens: int = Field(128, ge=1, description=(
        "Longest answer or caption (and question, when the video-LM writes them), in tokens: "
        "the limit the video-LM is loaded with."))
    seed: int = Field(0, description="Seeds segment choice and sparse subsets.")

    @model_validator(mode="after")
    def _consistent(self) -> "GenerationConfig":
        if self.localized + self.comprehensive == 0:
            raise ValueError("ask for at least one localized or comprehensive pair per video")
        if self.segment_min_s > self.segment_max_s:
            raise ValueError("need 0 < segment_min_s <= segment_max_s")
        if self.sparse >= self.dense:
            raise ValueError(f"sparse ({self.sparse}) must be fewer frames than dense ({self.dense})")
        return self


STRATEGIES = get_args(GenerationConfig.model_fields["strategy"].annotation)
QUESTION_SOURCES = get_args(GenerationConfig.model_fields["questions"].annotation)


@dataclass
class _Draft:
    """A pair being built: the plan (indices) first, texts later."""

    kind: str
    strategy: str
    question: str | None
    chosen_idx: list[int]
    rejected_idx: list[int]
    segment: tuple[float, float] | None = None
    reference: str = ""  # what the judge compares against: caption or ground-truth answer
    source: str = "model"  # where the question came from: model / ground_truth
    captions: dict = field(default_factory=dict)
    chosen: Reply = Reply("", False)
    rejected: Reply = Reply("", False)


def run_key(video_sha256: str, model_id: str, adapter: str | None, config: GenerationConfig,
            writer: str | None = SELF_WRITER, judge: str | None = None,
            filter_config: filters.FilterConfig | None = None) -> str:
    """Fingerprint of (video content, model, adapter, the whole generation config - token
    limit included -, question writer, judge, rule-filter thresholds): equal keys mean the
    same run, so changing any one of them is a new run. ``writer``/``judge`` are the names
    :func:`speaker` gives; ``filter_config`` None means the default thresholds.

    Every setting enters, always: keys stored before the config held ``max_new_tokens`` (or
    before writer and judge were always hashed) no longer match, so those videos are
    generated again when asked for, not skipped as "already generated" with other settings.
    """
    fields = {"video": video_sha256, "model": model_id, "adapter": adapter,
              "config": config.model_dump(), "writer": writer or SELF_WRITER, "judge": judge,
              "filters": (filter_config or filters.FilterConfig()).model_dump(),
              "format": PAIR_FORMAT_VERSION}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:24]


# --- segments ---------------------------------------------------------------------------------


def choose_segments(duration_s: float, n: int, config: GenerationConfig,
                    rng: random.Random) -> list[tuple[float, float]]:
    """Up to ``n`` segments spread over the video: one per equal slot, random length in
    [segment_min_s, segment_max_s] (clipped to the slot) at a random place inside it.

    A video too short for ``n`` slots of ``segment_min_s`` gets fewer segments; one shorter
    than ``segment_min_s`` gets none.
    """
    n = min(n, int(duration_s // config.segment_min_s))
    segments = []
    slot = duration_s / n if n else 0
    for i in range(n):
        length = min(rng.uniform(config.segment_min_s, config.segment_max_s), slot)
        start = i * slot + rng.uniform(0, slot - length)
        segments.append((round(start, 3), round(start + length, 3)))
    return segments


def ground_truth_segments(ground_truth: dict, n: int, duration_s: float,
                          config: GenerationConfig) -> list[tuple[tuple[float, float], dict]]:
    """Up to ``n`` known events spread over the video, each with its span padded to at
    least ``segment_min_s`` (centred, clipped to the video)."""
    events = ground_truth.get("events") or []
    if not events or n == 0:
        return []
    picks = np.linspace(0, len(events) - 1, min(n, len(events))).round().astype(int)
    out = []
    for event in (events[i] for i in sorted(set(picks.tolist()))):
        start, end = float(event["start_s"]), float(event["end_s"])
        pad = max(0.0, config.segment_min_s - (end - start)) / 2
        start, end = max(0.0, start - pad), min(duration_s, end + pad)
        out.append(((round(start, 3), round(end, 3)), event))
    return out


# --- planning ---------------------------------------------------------------------------------


def _localized_strategy(config: GenerationConfig, i: int) -> str:
    if config.strategy == "mixed":
        return ("irrelevant", "incomplete")[i % 2]
    return config.strategy


def plan_localized(vid: video.Video, segment: tuple[float, float], strategy: str,
                   config: GenerationConfig, seed: int) -> tuple[list[int], list[int], str]:
    """(chosen indices, rejected indices, strategy actually used) for one segment.

    ``irrelevant`` falls back to ``incomplete`` when nothing lies outside the segment.
    """
    chosen = vid.segment(*segment, n=config.segment_frames)
    if strategy == "irrelevant":
        try:
            return chosen, vid.excluding(*segment, n=config.segment_frames), strategy
        except ValueError:
            strategy = "incomplete"
    return chosen, video.Video.sparse(chosen, config.incomplete_frames, seed=seed), strategy


def _frames(vid: video.Video, indices: list[int], images: dict[int, np.ndarray]) -> Frames:
    return Frames(timestamps=[float(vid.times[i]) for i in indices], indices=list(indices),
                  images=[images[i] for i in indices])


# --- generation -------------------------------------------------------------------------------


def generate_for_video(model: Model, path: str, config: GenerationConfig, *,
                       ground_truth: dict | None = None, writer: TextModel | Chat | None = None,
                       judge: TextModel | Chat | None = None,
                       filter_config: filters.FilterConfig = filters.FilterConfig(),
                       progress: Callable[[str], None] | None = None) -> list[dict]:
    """Generate, answer and post-filter the pairs of one video; returns pair rows.

    ``writer`` (default: the video-LM's own ``chat``, recorded as ``"self"``) writes the
    questions that do not come from ground truth; ``judge``, when given, runs the paper's
    three checks. Each is a :class:`TextModel` or a ``prompt -> reply`` function; every
    row's ``generator`` records their names. Rows are ready for
    :meth:`tpo.store.Store.save_generation`: status ``pending`` or ``filtered`` (with
    ``filter_reason``). Raises ``VideoError``, and whatever the writer or judge raises
    (:class:`tpo.models.textlm.TextModelError`).
    """
    write, writer_name = speaker(writer)
    if write is None:
        write, writer_name = model.chat, SELF_WRITER
    judge_chat, judge_name = speaker(judge)
    say = progress or (lambda _stage: None)
    timing: dict[str, float] = {}
    rng = random.Random(config.seed)
    use_truth = config.questions == "ground_truth" or (config.questions == "auto" and ground_truth)
    with video.open_video(path) as vid:
        duration = vid.info.duration_s
        drafts, caption_plans = _plan(vid, config, rng, ground_truth if use_truth else None)
        # Decode every frame any plan needs, once.
        t0 = time.perf_counter()
        wanted = sorted({i for d in drafts for i in (*d.chosen_idx, *d.rejected_idx)}
                        | {i for idx in caption_plans.values() for i in idx})
        images = dict(zip(wanted, vid.decode(wanted, max_side=config.max_side)))
        timing["decode_s"] = time.perf_counter() - t0
        say(f"decoded {len(wanted)} frames")

        t0 = time.perf_counter()
        # One batched call captions every segment and part.
        asks = [VideoQuestion(_frames(vid, idx, images), CAPTION_PROMPT, duration)
                for idx in caption_plans.values()]
        captions = dict(zip(caption_plans, (r.text for r in model.replies(asks)))) if asks else {}
        timing["caption_s"] = time.perf_counter() - t0
        say(f"captioned {len(captions)} parts")

        t0 = time.perf_counter()
        _write_questions(drafts, captions, write)
        timing["write_s"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        asked = [d for d in drafts if not filters.is_no_question(d.question)]
        items = [VideoQuestion(_frames(vid, idx, images), d.question, duration)
                 for d in asked for idx in (d.chosen_idx, d.rejected_idx)]
        answers = model.replies(items) if items else []
        for d, chosen, rejected in zip(asked, answers[0::2], answers[1::2]):
            d.chosen, d.rejected = chosen, rejected
        timing["answer_s"] = time.perf_counter() - t0
        say(f"answered {len(items)} prompts")

        rows = [_row(vid, d, config, filter_config, (judge_chat, judge_name), writer_name,
                     model, duration) for d in drafts]
    for row in rows:
        row["generator"]["timing"] = timing
    return rows


def _plan(vid: video.Video, config: GenerationConfig, rng: random.Random,
          ground_truth: dict | None) -> tuple[list[_Draft], dict[str, list[int]]]:
    """All drafts and caption frame plans of a video; no pixels yet."""
    duration = vid.info.duration_s
    drafts: list[_Draft] = []
    captions: dict[str, list[int]] = {}
    if ground_truth:
        spans = ground_truth_segments(ground_truth, config.localized, duration, config)
    else:
        spans = [(s, None) for s in choose_segments(duration, config.localized, config, rng)]
    for i, (segment, event) in enumerate(spans):
        chosen, rejected, strategy = plan_localized(
            vid, segment, _localized_strategy(config, i), config, seed=config.seed + i)
        draft = _Draft("localized", strategy, None, chosen, rejected, segment=segment)
        if event:
            draft.question, draft.reference, draft.source = event["question"], event["answer"], "ground_truth"
        else:
            key = f"segment {i}"
            captions[key] = video.Video.sparse(chosen, config.caption_frames)
            draft.captions = {"segment": key}
        drafts.append(draft)

    dense = vid.uniform(config.dense)
    sparse = video.Video.sparse(dense, config.sparse)
    truth_questions = (ground_truth or {}).get("questions") or []
    # questions="ground_truth" means only those: a video with fewer whole-video questions
    # than asked for gets fewer comprehensive pairs, never a written question.
    wanted = config.comprehensive
    if ground_truth and config.questions == "ground_truth":
        wanted = min(wanted, len(truth_questions))
    for i in range(wanted):
        draft = _Draft("comprehensive", "dense-sparse", None, dense, sparse)
        if i < len(truth_questions):
            q = truth_questions[i]
            draft.question, draft.reference, draft.source = q["question"], q["answer"], "ground_truth"
        else:
            draft.captions = {"overview": COMPREHENSIVE_FOCUS[i % len(COMPREHENSIVE_FOCUS)]}
        drafts.append(draft)
    if any(d.kind == "comprehensive" and d.question is None for d in drafts):
        for c, chunk in enumerate(np.array_split(np.asarray(dense), config.overview_chunks)):
            if len(chunk):
                captions[f"part {c + 1}"] = video.Video.sparse(chunk.tolist(), config.caption_frames)
    return drafts, captions


def _write_questions(drafts: list[_Draft], captions: dict[str, str],
                     writer: Callable[[str], str]) -> None:
    overview = "\n".join(f"Part {k.split()[-1]}: {v}" for k, v in captions.items() if k.startswith("part"))
    for d in drafts:
        if d.question is not None:
            continue
        if d.kind == "localized":
            caption = captions[d.captions["segment"]]
            prompt = LOCALIZED_WRITER_PROMPT.format(caption=caption)
            d.captions = {"segment": caption}
            d.reference = caption
        else:
            focus = d.captions["overview"]
            prompt = COMPREHENSIVE_WRITER_PROMPT.format(captions=overview, focus=focus)
            d.captions = {"overview": overview, "focus": focus}
            d.reference = overview
        d.captions["writer_prompt"] = prompt
        d.question = writer(prompt).strip()


def _row(vid: video.Video, d: _Draft, config: GenerationConfig,
         filter_config: filters.FilterConfig, judge: tuple[Chat | None, str | None],
         writer_name: str, model: Model, duration_s: float) -> dict:
    judge, judge_name = judge
    reason = filters.rule_reason(d.question, d.chosen.text, d.rejected.text,
                                 chosen_truncated=d.chosen.truncated,
                                 rejected_truncated=d.rejected.truncated, config=filter_config)
    if reason is None and judge is not None:
        reason = filters.judge_reason(judge, question=d.question, chosen=d.chosen.text,
                                      rejected=d.rejected.text, reference=d.reference)
    chosen_times = [float(vid.times[i]) for i in d.chosen_idx]
    return {
        "kind": d.kind, "strategy": d.strategy, "question": d.question or "",
        "chosen": d.chosen.text, "rejected": d.rejected.text,
        "segment_start": d.segment[0] if d.segment else None,
        "segment_end": d.segment[1] if d.segment else None,
        "chosen_timestamps": chosen_times,
        "rejected_timestamps": [float(vid.times[i]) for i in d.rejected_idx],
        "prompt": time_prompt(chosen_times, duration_s, d.question or ""),  # the chosen side's text
        "captions": {**d.captions, "reference": d.reference},
        # writer: None where the question came from ground truth (no writer was asked)
        "generator": {"model": model.model_id, "question_source": d.source,
                      "config": config.model_dump(), "judge": judge_name,
                      "writer": writer_name if d.source == "model" else None},
        "filter_verdict": "dropped" if reason else "kept",
        "filter_reason": reason,
        "status": "filtered" if reason else "pending",
    }
