"""Multiple-choice evaluation of video-LMs: benchmark files and the needle suite → accuracy.

:func:`evaluate` asks each model every question of a suite - Video-MME, MLVU or
LongVideoBench annotation files the user has locally (:mod:`tpo.evaluation.benchmarks`), or the
synthetic needle-in-a-haystack suite (:mod:`tpo.evaluation.needle`), or the ground-truth questions of
a folder of synthetic videos (``synthetic:FOLDER``, :mod:`tpo.evaluation.synthetic_suite`) - on
``frames`` frames sampled uniformly over the whole video, the way those benchmarks are
usually run. The option letter is read from the answer with :func:`tpo.evaluation.mcq.parse_choice`;
an answer with no readable letter counts as wrong (and is counted as *unparsed*, so a model
that ignores the format shows).

``protocol`` says whose way each question is asked and read (:mod:`tpo.evaluation.protocols`):
``tpo``, the above, or ``lmms-eval``, lmms-eval's prompts, answer parsers, frame sampling and
MLVU M-avg, for numbers comparable with published ones (Video-MME, MLVU, LongVideoBench only).

Every run is stored: one ``evals`` row per model (accuracy overall and per duration class
and task, the needle grid) and one ``eval_items`` row per question with the raw answer, so
results are comparable across models and auditable. The needle suite also gets a heatmap
PNG (length × depth, like Figure 3 of the TPO paper). Reading results back, tables and
comparing two runs live in :mod:`tpo.evaluation.eval_results`.

Models load one at a time (GPU memory); each model decodes the videos again, which on a
real model is a small part of the time (see ``bench/generate_bench.py``). Beyond one
process, :mod:`tpo.evaluation.shard` shares the questions among N processes under
``accelerate launch`` with the same result.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal, Sequence, get_args

from pydantic import Field, model_validator

from tpo.configs import Config
from tpo.evaluation.eval_results import frames_label, get_eval, results_table
from tpo.jobs import job_kind
from tpo.evaluation import protocols
from tpo.evaluation.mcq import MCQItem, match_option
from tpo.models.modelref import ModelRef
from tpo.store import Store, now

SUITES = ("needle", "videomme", "mlvu", "longvideobench", "synthetic")
Progress = Callable[[float, str], None]  # (fraction done 0..1, what is happening)


class EvalConfig(Config):
    """What to evaluate on and how each question is asked (checked by declaration: a bad
    value raises :class:`tpo.configs.ConfigError`, a ValueError, naming the field)."""

    suite: str = Field("needle", description=(
        "'needle', or NAME:PATH with NAME one of videomme, mlvu, longvideobench and PATH the "
        "benchmark's annotation file or folder (videos beside it as the benchmark ships "
        "them), or synthetic:FOLDER (the ground-truth questions of synthetic videos)."))
    frames: int = Field(16, ge=0, description=(
        "Frames per question, uniform over the video; 0 with the needle suite: every frame of "
        "the haystack (1 fps), as in V-NIAH."))
    answers: Literal["letter", "open"] = Field("letter", description=(
        "letter: the multiple-choice prompt, graded by the letter read from the reply; open: "
        "the question alone, right when the reply is exactly the right option's text (for "
        "models that do not follow the multiple-choice format)."))
    max_new_tokens: int = Field(16, ge=1, description="Longest answer, in tokens.")
    batch_size: int = Field(4, ge=1, description="Questions generated together.")
    limit: int | None = Field(None, ge=1, description="Only the first N questions.")
    needle_lengths: tuple[float, ...] | None = Field(None, description=(
        "Needle suite: haystack lengths in s (default: tpo.evaluation.needle.NeedleConfig's)."))
    needle_depths: tuple[float, ...] | None = Field(None, description=(
        "Needle suite: needle depths in [0, 1] (default: NeedleConfig's)."))
    needle_per_cell: int = Field(1, ge=1, description=(
        "Needle suite: videos per (length, depth) cell."))
    protocol: Literal["tpo", "lmms-eval"] = Field("tpo", description=(
        "tpo: our prompt, strict answer reader, frames at time-bin centres, plain accuracy; "
        "lmms-eval: lmms-eval's prompts, answer parsers and frame sampling, MLVU scored as "
        "M-avg (videomme, mlvu, longvideobench only), for numbers comparable with published "
        "ones."))

    @model_validator(mode="after")
    def _suite_fits(self) -> "EvalConfig":
        if self.suite_name not in SUITES:
            raise ValueError(f"unknown suite {self.suite_name!r}: use needle, or videomme:PATH, "
                             "mlvu:PATH, longvideobench:PATH, synthetic:FOLDER")
        if self.suite_name != "needle" and not self.suite_path:
            raise ValueError(f"suite {self.suite_name} needs a path: {self.suite_name}:PATH")
        if self.frames == 0 and self.suite_name != "needle":
            raise ValueError("frames 0 (every frame) is for the needle suite only: benchmark "
                             "videos have tens of thousands of frames")
        protocols.check(self.protocol, self.suite_name)
        if self.protocol == "lmms-eval" and self.answers != "letter":
            raise ValueError("protocol lmms-eval asks for an option letter: use answers letter")
        return self

    @property
    def suite_name(self) -> str:
        return self.suite.split(":", 1)[0].strip().lower()

    @property
    def suite_path(self) -> str | None:
        _, _, path = self.suite.partition(":")
        return path.strip() or None

    def needle_config(self):
        from tpo.evaluation.needle import NeedleConfig

        overrides = {"per_cell": self.needle_per_cell}
        if self.needle_lengths:
            overrides["lengths_s"] = tuple(self.needle_lengths)
        if self.needle_depths:
            overrides["depths"] = tuple(self.needle_depths)
        return NeedleConfig(**overrides)


ANSWER_MODES = get_args(EvalConfig.model_fields["answers"].annotation)


def float_list(text: str | None) -> tuple[float, ...] | None:
    """``"30, 60, 120"`` -> ``(30.0, 60.0, 120.0)`` (needle lengths and depths as typed);
    None for an empty text; ValueError for anything that is not a number."""
    if not (text or "").strip():
        return None
    return tuple(float(x) for x in text.split(",") if x.strip())


@dataclass
class Suite:
    """The questions of a suite whose videos exist, and those left out (no video file)."""

    name: str
    path: str | None
    items: list[MCQItem]
    missing: list[tuple[str, str]] = field(default_factory=list)  # (item id, expected video)


def load_suite(config: EvalConfig, cache_dir: Path, progress: Progress | None = None) -> Suite:
    """The suite's items: read from the benchmark files, or the needle videos (rendered into
    ``cache_dir`` on first use)."""
    if config.suite_name == "needle":
        from tpo.evaluation.needle import build_needle_suite

        def rendered(done: int, total: int) -> None:
            if progress:
                progress(0.0, f"rendering needle videos {done}/{total}")

        items = build_needle_suite(Path(cache_dir), config.needle_config(), progress=rendered)
        return Suite("needle", None, items[:config.limit] if config.limit else items)
    if config.suite_name == "synthetic":
        from tpo.evaluation.synthetic_suite import load_synthetic_suite

        folder = Path(config.suite_path).expanduser().resolve()
        loaded = load_synthetic_suite(folder, limit=config.limit)
        return Suite("synthetic", str(folder), loaded.items,
                     [(Path(video).stem, video) for video, _why in loaded.missing])
    from tpo.evaluation.benchmarks import load_suite as read_benchmark

    loaded = read_benchmark(config.suite, limit=config.limit)
    return Suite(loaded.name, str(loaded.path), list(loaded.items), list(loaded.missing))


def answer_items(model, items: Sequence[MCQItem], config: EvalConfig, *,
                 progress: Progress | None = None) -> list[dict]:
    """Ask `model` (a :class:`tpo.models.vlm.VLM`) every item; one record per item, in order.

    A video that cannot be decoded gives a record with ``error`` set and no answer; it is
    left out of the accuracy (it says nothing about the model) and reported.
    """
    from tpo.media import video
    from tpo.models.prompts import VideoQuestion

    records: list[tuple[int, dict]] = []  # (position in items, record): ids may repeat
    for start in range(0, len(items), config.batch_size):
        batch = list(enumerate(items))[start:start + config.batch_size]
        asked, questions = [], []
        for k, item in batch:
            try:
                with video.open_video(item.video) as vid:
                    n = config.frames or len(vid.times)  # 0: every frame
                    picked = protocols.frame_indices(config.protocol, vid, n)
                    frames, duration = vid.frames(picked), vid.info.duration_s
            except video.VideoError as err:
                records.append((k, _record(item, None, error=str(err))))
                continue
            asked.append((k, item))
            prompt = (item.question if config.answers == "open"
                      else protocols.prompt(config.protocol, item))
            questions.append(VideoQuestion(frames, prompt, duration))
        if questions:
            replies = model.replies(questions, max_new_tokens=config.max_new_tokens)
            records += [(k, _record(item, reply.text, open_answer=config.answers == "open",
                                    protocol=config.protocol))
                        for (k, item), reply in zip(asked, replies)]
        if progress:
            done = min(start + config.batch_size, len(items))
            progress(done / len(items), f"{done}/{len(items)} questions")
    return [record for _, record in sorted(records, key=lambda kr: kr[0])]


def _record(item: MCQItem, response: str | None, error: str | None = None, *,
            open_answer: bool = False, protocol: str = "tpo") -> dict:
    guessed = False
    if response is None:
        prediction = None
    elif open_answer:
        prediction = match_option(response, item.options)
    else:
        reading = protocols.read(protocol, item, response)
        prediction, guessed = reading.letter, reading.guessed
    # a guessed letter (lmms-eval's LongVideoBench) is scored, and marked in meta
    meta = {**item.meta, **({"guessed": True} if guessed else {})}
    return {"item_id": item.item_id, "video": item.video, "question": item.question,
            "options": list(item.options), "answer": item.answer, "response": response,
            "prediction": prediction, "correct": prediction == item.answer,
            "duration_class": item.duration_class, "task": item.task, "meta": meta,
            "error": error}


def summarize(records: Sequence[dict], *, suite: str | None = None) -> dict:
    """Accuracy overall, per duration class and per task (groups in order of appearance);
    needle records also give the length × depth grid; MLVU (``suite="mlvu"``) also M-avg, the
    mean of the per-task accuracies. Records with an error are left out. *unparsed* counts
    replies with no readable letter, including those a protocol guessed a letter for."""
    scored = [r for r in records if not r.get("error")]

    def group(key: str) -> dict[str, dict]:
        out: dict[str, dict] = {}
        for r in scored:
            g = out.setdefault(r[key] or "-", {"n": 0, "correct": 0})
            g["n"] += 1
            g["correct"] += int(r["correct"])
        for g in out.values():
            g["accuracy"] = g["correct"] / g["n"]
        return out

    n, correct = len(scored), sum(int(r["correct"]) for r in scored)
    summary = {"n": n, "correct": correct, "accuracy": correct / n if n else None,
               "unparsed": sum(r["prediction"] is None or bool(r["meta"].get("guessed"))
                               for r in scored),
               "errors": [{"item_id": r["item_id"], "error": r["error"]}
                          for r in records if r.get("error")],
               "by_duration": group("duration_class"), "by_task": group("task")}
    if scored and all("depth" in r["meta"] for r in scored):
        summary["grid"] = [{"length_s": r["meta"]["length_s"], "depth": r["meta"]["depth"],
                            "correct": int(r["correct"])} for r in scored]
    if suite == "mlvu":
        summary["m_avg"] = protocols.m_avg(summary["by_task"])
    return summary


# -- the store -------------------------------------------------------------------------


def save(store: Store, model: ModelRef, suite: Suite, config: EvalConfig, records: list[dict],
         *, job_id: int | None = None, heatmap_path: str | None = None) -> int:
    """One ``evals`` row and its ``eval_items``, in one transaction; returns the eval id."""
    summary = summarize(records, suite=suite.name)
    # questions of the benchmark file whose video is not on disk: not asked, but reported
    summary["missing"] = [{"item_id": item_id, "video": video} for item_id, video in suite.missing]
    row = {"job_id": job_id, "suite": suite.name, "suite_path": suite.path, "model": model.label,
           "spec": json.dumps(model.spec()), "frames": config.frames, "n_items": summary["n"],
           "n_correct": summary["correct"], "n_unparsed": summary["unparsed"],
           "accuracy": summary["accuracy"], "summary": json.dumps(summary),
           "heatmap_path": heatmap_path, "config": json.dumps(config.model_dump()),
           "protocol": config.protocol, "created_at": now()}
    items = ({**{k: r[k] for k in ("item_id", "video", "question", "answer", "response",
                                   "prediction", "duration_class", "task")},
              "options": json.dumps(r["options"]), "correct": int(r["correct"]),
              "meta": json.dumps({**r["meta"], **({"error": r["error"]} if r["error"] else {})})}
             for r in records)
    return store.add_evaluation(row, items)


# -- running it ------------------------------------------------------------------------


def evaluate(store: Store, models: Sequence[ModelRef], config: EvalConfig, *, cache_dir: Path,
             out_dir: Path, job_id: int | None = None, progress: Progress | None = None,
             load: Callable[[ModelRef, EvalConfig], object] | None = None) -> list[int]:
    """Evaluate each model on the suite, store the results; returns the new eval ids.

    ``load(ref, config)`` gives a loaded model with ``replies()`` and ``close()`` (default:
    :class:`tpo.models.vlm.VLM`). Raises ``ValueError`` (``BenchmarkError``) before loading any
    model when the suite cannot be read.
    """
    say = progress or (lambda _f, _t: None)
    suite = load_suite(config, cache_dir, say)
    if not suite.items:
        raise ValueError(f"suite {suite.name} has no questions to ask")
    load = load or load_vlm
    ids = []
    for k, ref in enumerate(models):
        def step(fraction: float, text: str, _k=k, _ref=ref) -> None:
            say((_k + fraction) / len(models), f"{_ref.label}: {text}")

        step(0.0, "loading")
        model = load(ref, config)
        try:
            records = answer_items(model, suite.items, config, progress=step)
        finally:
            model.close()
        eval_id = save(store, ref, suite, config, records, job_id=job_id)
        if suite.name == "needle":
            draw_needle_heatmap(store, eval_id, ref, records, out_dir, config.frames)
        ids.append(eval_id)
    say(1.0, f"{len(ids)} evaluation(s) stored: " + ", ".join(f"#{i}" for i in ids))
    return ids


def load_vlm(ref: ModelRef, config: EvalConfig, device: str = "auto"):
    """The model ``ref`` names, loaded to answer ``config``'s questions: a
    :class:`tpo.models.vlm.VLM` on ``device`` (auto: cuda when there is one), or a client of
    the OpenAI-compatible server its URL names."""
    from tpo.models.server_vlm import is_server, open_server
    from tpo.models.vlm import VLM, ModelConfig

    if is_server(ref.model):  # --model http://host:port/v1[#model]: a serving engine answers
        return open_server(ref.model, max_new_tokens=config.max_new_tokens)
    return VLM.load(ModelConfig(model=ref.model, adapter=ref.adapter,
                                max_new_tokens=config.max_new_tokens,
                                batch_size=config.batch_size, device=device))


def draw_needle_heatmap(store: Store, eval_id: int, ref: ModelRef, records: list[dict],
                        out_dir: Path, frames: int) -> str | None:
    """The needle suite's length x depth heatmap of one evaluation, as a PNG in ``out_dir``
    (its path, also stored on the eval row); None when no needle video could be read."""
    from tpo.evaluation.needle import heatmap_png, needle_grid

    scored = [{"length_s": r["meta"]["length_s"], "depth": r["meta"]["depth"],
               "correct": r["correct"]} for r in records if not r.get("error")]
    if not scored:  # every needle video failed to decode: nothing to draw
        return None
    path = heatmap_png(needle_grid(scored), Path(out_dir) / f"eval-{eval_id}-needle.png",
                       title=f"Needle in a haystack: {ref.label}, {frames_label(frames)} "
                             f"(eval #{eval_id})")
    store.update_evaluation(eval_id, {"heatmap_path": str(path)})
    return str(path)


def job_params(models: Sequence[ModelRef], config: EvalConfig, *, cache_dir: Path,
               out_dir: Path, num_processes: int = 1) -> dict:
    """The JSON parameters of an ``eval`` background job (see :func:`run_job`);
    ``num_processes`` > 1 shares the questions among that many processes
    (:mod:`tpo.evaluation.shard`)."""
    if num_processes < 1:
        raise ValueError(f"num_processes must be at least 1, got {num_processes}")
    return {"models": [m.as_dict() for m in models], "config": config.model_dump(),
            "cache_dir": str(Path(cache_dir).resolve()), "out_dir": str(Path(out_dir).resolve()),
            "num_processes": num_processes}


def config_from_json(params: dict) -> EvalConfig:
    """An :class:`EvalConfig` from its ``model_dump()`` after a JSON round trip (lists back
    into tuples)."""
    return EvalConfig(**{**params, "needle_lengths": _tuple(params.get("needle_lengths")),
                         "needle_depths": _tuple(params.get("needle_depths"))})


@job_kind("eval", gpu=True)
def run_job(ctx) -> dict:
    """The ``eval`` job kind (:mod:`tpo.jobs`)."""
    p = ctx.params
    config = config_from_json(p["config"])
    models = [ModelRef(**m) for m in p["models"]]

    def progress(fraction: float, text: str) -> None:
        ctx.check_cancelled()
        ctx.progress(fraction, text)

    if int(p.get("num_processes") or 1) > 1:
        from tpo.evaluation.shard import evaluate_sharded

        ids = evaluate_sharded(ctx.store, models, config, int(p["num_processes"]),
                               cache_dir=Path(p["cache_dir"]), out_dir=Path(p["out_dir"]),
                               job_id=ctx.job_id, progress=progress, log=ctx.log)
    else:
        ids = evaluate(ctx.store, models, config, cache_dir=Path(p["cache_dir"]),
                       out_dir=Path(p["out_dir"]), job_id=ctx.job_id, progress=progress)
    stored = [get_eval(ctx.store, i) for i in ids]
    ctx.log(results_table(stored).to_string(index=False))
    return {"eval_ids": ids, "summary": f"{len(ids)} evaluation(s): "
            + ", ".join(f"{m.label} {_fmt(e['accuracy'])}" for m, e in zip(models, stored))}


def _tuple(value):
    return tuple(value) if value else None


def _fmt(accuracy: float | None) -> str:
    return "n/a" if accuracy is None else f"{100 * accuracy:.1f}%"
