"""Side-by-side comparisons of two models on one video, blind votes, and the leaderboard.

A comparison is one row in ``comparisons``: a video, a question, two models (A and B) and
their answers. The answers come from a ``compare`` background job (:func:`run_job`) that
samples the video's frames once, lets model A and then model B answer on exactly those
frames, and writes each answer into the row *while it is generated*, so the app shows it
streaming. One job can answer a list of comparisons (every suggested question of a video),
loading each model once. In **blind** mode (Chatbot Arena style) the two models are put in random order
as A and B when the comparison is made, and the app shows their names only once the person
has voted.

Votes: ``a`` (A is better), ``b``, ``tie``, ``both_bad``; one per person and comparison.
The leaderboard counts, per pair of models, wins, ties and "both bad", and gives each
model's win rate (ties count half, "both bad" is left out) with a 95 % Wilson interval.

Torch-free except :func:`run_job`, which runs in the job's process.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Sequence

from tpo import jobs
from tpo.models.modelref import ModelRef
from tpo.store import Store, StoreError, now

VOTES = ("a", "b", "tie", "both_bad")
VOTE_LABELS = {"a": "A is better", "b": "B is better", "tie": "Tie", "both_bad": "Both are bad"}
STREAM_WRITE_INTERVAL_S = 0.2  # at most five writes a second while an answer streams
Z95 = 1.959964  # two-sided 95 % normal quantile, for the Wilson interval


class VoteError(StoreError):
    """A vote that cannot be counted (unknown choice, answers not ready, voted already)."""


@dataclass
class CompareConfig:
    """How both models are asked (the same for A and B, so only the model differs)."""

    frames: int = 16          # frames sampled uniformly over the whole video
    max_new_tokens: int = 256  # longest answer, in tokens

    def __post_init__(self) -> None:
        if self.frames < 1:
            raise ValueError(f"frames must be at least 1, got {self.frames}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {self.max_new_tokens}")


# -- making and reading comparisons ----------------------------------------------------


def create(store: Store, video_id: int, question: str, model_a: ModelRef, model_b: ModelRef, *,
           user: str, blind: bool = True, config: CompareConfig | None = None,
           rng: random.Random | None = None) -> int:
    """Store a new comparison (answers still empty) and return its id.

    Blind: the two models are swapped with probability 1/2, so "A" says nothing about which
    model was picked first. ``rng`` makes that choice reproducible in tests.
    """
    question = (question or "").strip()
    if not question:
        raise ValueError("ask a question")
    video = store.get_video(video_id)
    if video["status"] != "ready":
        raise ValueError(f"video {video['name']} cannot be read: {video['error']}")
    config = config or CompareConfig()
    if blind and (rng or random.SystemRandom()).random() < 0.5:
        model_a, model_b = model_b, model_a
    row = {"video_id": video_id, "question": question, "model_a": model_a.label,
           "model_b": model_b.label, "spec_a": json.dumps(model_a.spec()),
           "spec_b": json.dumps(model_b.spec()), "answer_a": "", "answer_b": "",
           "frames": json.dumps({"n": config.frames, "max_new_tokens": config.max_new_tokens,
                                 "timestamps": []}),
           "blind": int(blind), "status": "answering", "user": user, "created_at": now()}
    return store.add_comparison(row)


def get(store: Store, comparison_id: int) -> dict:
    """The comparison with its JSON decoded (``frames`` → ``timestamps``, ``n``), its votes."""
    row = store.get_comparison(comparison_id)
    frames = json.loads(row["frames"] or "{}")
    row.update(timestamps=frames.get("timestamps", []), n_frames=frames.get("n"),
               max_new_tokens=frames.get("max_new_tokens"),
               spec_a=json.loads(row["spec_a"] or "{}"), spec_b=json.loads(row["spec_b"] or "{}"),
               blind=bool(row["blind"]))
    row["votes"] = store.comparison_votes(comparison_id)
    if row["status"] == "answering" and row["job_id"]:
        # A job killed from outside (out of memory, an app restart) never wrote its outcome
        # here; jobs.get notices a dead worker, and its error then stands for the comparison.
        job = jobs.get(store, row["job_id"])
        if job["status"] in ("failed", "cancelled"):
            row["status"] = "failed"
            row["error"] = job["error"] or f"the answering job was {job['status']}"
    return row


def list_comparisons(store: Store, limit: int = 50) -> list[dict]:
    """Newest first, with their vote counts."""
    return store.list_comparisons(limit)


def questions_for_video(store: Store, video_id: int) -> list[str]:
    """Questions worth asking about a video: its ground truth's (synthetic videos), then its
    pairs' (as reviewed: an edited question replaces the generated one); no repeats."""
    video = store.get_video(video_id)
    found: list[str] = []
    truth = video.get("ground_truth") or {}
    found += [e["question"] for e in truth.get("events", [])]
    found += [q["question"] for q in truth.get("questions", [])]
    for pair in store.list_pairs(video_id=video_id):
        found.append(pair.get("edited_question") or pair["question"])
    return list(dict.fromkeys(q for q in found if q))


# -- votes -----------------------------------------------------------------------------


def vote(store: Store, comparison_id: int, user: str, choice: str) -> dict:
    """Record `user`'s vote and return the comparison (names and all votes) - the reveal."""
    if choice not in VOTES:
        raise VoteError(f"a vote is one of {', '.join(VOTES)}, got {choice!r}")
    current = get(store, comparison_id)  # its status as people see it (a dead job: failed)
    if current["status"] == "failed":
        raise VoteError(f"comparison {comparison_id} failed, there is nothing to vote on: "
                        f"{current['error']}")
    with store.transaction():  # the checks and the vote, under one write lock
        status = store.get_comparison(comparison_id)["status"]
        if status != "done":
            raise VoteError("both answers must be complete before a vote "
                            f"(this comparison is {status})")
        if store.has_voted(comparison_id, user):
            raise VoteError(f"{user} has already voted on comparison {comparison_id}")
        store.add_vote(comparison_id, user, choice)
    return get(store, comparison_id)


def wilson(successes: float, n: float, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion (``(0, 1)`` when n is 0)."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def leaderboard(store: Store) -> list[dict]:
    """One row per pair of models that has votes, by decreasing number of votes.

    Each row names ``model`` and ``opponent`` (alphabetical, so A/B order does not matter)
    with ``wins``, ``losses``, ``ties``, ``both_bad``, ``votes``, and ``win_rate`` of
    ``model`` = (wins + ties / 2) / (wins + losses + ties) with its 95 % Wilson interval
    ``ci_low``..``ci_high`` (ties as half a win: the interval is then approximate).
    """
    counts: dict[tuple[str, str], dict[str, int]] = defaultdict(
        lambda: {"wins": 0, "losses": 0, "ties": 0, "both_bad": 0})
    for r in store.votes_with_models():
        first, second = sorted((r["model_a"], r["model_b"]))
        c = counts[(first, second)]
        if r["vote"] in ("tie", "both_bad"):
            c["ties" if r["vote"] == "tie" else "both_bad"] += 1
        else:  # by position, so a model compared with itself gets A's wins and B's losses
            first_won = (r["vote"] == "a") == (r["model_a"] == first)
            c["wins" if first_won else "losses"] += 1
    rows = []
    for (model, opponent), c in counts.items():
        decided = c["wins"] + c["losses"] + c["ties"]
        score = c["wins"] + c["ties"] / 2
        low, high = wilson(score, decided)
        rows.append({"model": model, "opponent": opponent, **c, "votes": decided + c["both_bad"],
                     "win_rate": score / decided if decided else None,
                     "ci_low": low if decided else None, "ci_high": high if decided else None})
    return sorted(rows, key=lambda r: (-r["votes"], r["model"], r["opponent"]))


# -- the job ---------------------------------------------------------------------------


def submit(store: Store, comparison_ids: int | Sequence[int], *, log_dir) -> int:
    """Start the ``compare`` job that answers these comparisons; returns the job id."""
    ids = [comparison_ids] if isinstance(comparison_ids, int) else list(comparison_ids)
    job_id = jobs.submit(store, "compare", {"comparison_ids": ids}, log_dir=log_dir)
    with store.transaction():
        for comparison_id in ids:
            store.update_comparison(comparison_id, {"job_id": job_id})
    return job_id


@jobs.job_kind("compare", gpu=True)
def run_job(ctx) -> dict:
    """The ``compare`` job kind (:mod:`tpo.jobs`): answer a list of comparisons.

    Each video is sampled once for all its comparisons, and each model is loaded once and
    answers its side of every comparison before the next model loads (one model in memory
    at a time; a blind list has the two models on either side in turn). A comparison is
    ``done`` as soon as both of its answers are written, so the first can be voted on while
    the job answers the rest.
    """
    store = ctx.store
    ids = ctx.params.get("comparison_ids") or [ctx.params["comparison_id"]]
    rows = [get(store, comparison_id) for comparison_id in ids]
    try:
        return _answer_all(ctx, store, rows)
    except BaseException as err:  # cancelled or failed: the rows say so, not "answering"
        store.fail_answering(ids, f"{type(err).__name__}: {err}")
        raise


def _answer_all(ctx, store: Store, rows: list[dict]) -> dict:
    from tpo.media import video
    from tpo.models.prompts import VideoQuestion
    from tpo.models.vlm import VLM, ModelConfig  # torch loads in the job process only

    items = {}  # comparison id -> VideoQuestion; frames sampled once per (video, count)
    sampled: dict[tuple[int, int], tuple] = {}
    for row in rows:
        key = (row["video_id"], row["n_frames"])
        if key not in sampled:
            vid = store.get_video(row["video_id"])
            ctx.progress(0.01, f"sampling {row['n_frames']} frames of {vid['name']}")
            sampled[key] = (video.sample(vid["path"], row["n_frames"]), vid["duration_s"])
        frames, duration = sampled[key]
        meta = {"n": row["n_frames"], "max_new_tokens": row["max_new_tokens"],
                "timestamps": [round(float(t), 3) for t in frames.timestamps]}
        store.update_comparison(row["id"], {"frames": json.dumps(meta)})
        items[row["id"]] = VideoQuestion(frames, row["question"], duration)

    specs: list[dict] = []  # distinct models, in order of first appearance
    for row in rows:
        for side in ("a", "b"):
            if row[f"spec_{side}"] not in specs:
                specs.append(row[f"spec_{side}"])
    tasks = [(spec, row, side) for spec in specs for row in rows for side in ("a", "b")
             if row[f"spec_{side}"] == spec]
    answered: dict[int, set[str]] = {row["id"]: set() for row in rows}
    done = 0
    for spec in specs:
        ctx.progress(done / len(tasks), f"loading {spec['model']}")
        ctx.log(f"loading {spec['model']}" + (f" with adapter {spec['adapter']}"
                                              if spec.get("adapter") else ""))
        with VLM.load(ModelConfig(model=spec["model"], adapter=spec.get("adapter"),
                                  max_new_tokens=rows[0]["max_new_tokens"])) as model:
            for _, row, side in (t for t in tasks if t[0] == spec):
                where = f"comparison {rows.index(row) + 1}/{len(rows)}" if len(rows) > 1 else ""
                ctx.progress(done / len(tasks), f"model {side.upper()} is answering {where}".strip())
                last_write, text = 0.0, ""
                for text in model.stream(items[row["id"]],
                                         max_new_tokens=row["max_new_tokens"]):
                    ctx.check_cancelled()
                    if time.monotonic() - last_write >= STREAM_WRITE_INTERVAL_S:
                        _write_answer(store, row["id"], side, text)
                        last_write = time.monotonic()
                _write_answer(store, row["id"], side, text)
                answered[row["id"]].add(side)
                if answered[row["id"]] == {"a", "b"}:
                    store.update_comparison(row["id"], {"status": "done"})
                done += 1
    ctx.progress(1.0, "all answers ready: vote" if len(rows) > 1 else "both answers ready: vote")
    return {"comparison_ids": [row["id"] for row in rows],
            "timestamps": {str(row["id"]): [round(float(t), 3) for t in
                                            items[row["id"]].frames.timestamps] for row in rows}}


def _write_answer(store: Store, comparison_id: int, side: str, text: str) -> None:
    store.update_comparison(comparison_id, {f"answer_{side}": text})
