"""The stages of ``tpo experiment`` (:mod:`tpo.evaluation.experiment` orders, records and resumes them).

Each stage takes the run (config, store, folder, the outputs of earlier stages) and returns
its own outputs as JSON-able data, with a one-line ``summary``. A stage may run again after
an interruption, so each is safe to redo: rendering skips finished videos, ingest skips known
content, generation skips videos done with the same settings, accepting skips accepted pairs,
the export replaces its folder, training starts its folder afresh, and an evaluation stores
a new result.
"""

from __future__ import annotations

import contextlib
import sys
from collections import Counter
from pathlib import Path

from tpo.media import synth
from tpo.evaluation.experiment import (REVIEW_USER, ExperimentError, ExperimentRun, check_disjoint,
                            video_specs)
from tpo.media.library import file_sha256, ingest
from tpo.models.modelref import ModelRef, registered, resolve

KINDS = ("localized", "comprehensive")


def _say(run: ExperimentRun, fraction: float, text: str) -> None:
    run.reporter.progress(max(0.0, min(1.0, fraction)), text)


# --- model, videos, library --------------------------------------------------------------


def stage_model(run: ExperimentRun) -> dict:
    """The base model: the config's, or the demo model (installed once into
    DATA/models/demo-smolvlm, the folder the app uses too)."""
    if run.config.model:
        ref = resolve(run.store, run.config.model)
        if ref.adapter:
            raise ExperimentError(f"{run.config.model} is a fine-tuned adapter: give a base "
                                  "model (hub id or folder) as --model")
    else:
        from tpo.models.demo_model import DEFAULT_FOLDER, ensure_demo_model

        _say(run, 0.0, "installing the demo model (once)")
        path = ensure_demo_model(run.data_dir / "models" / DEFAULT_FOLDER,
                                 progress=lambda i, n, text: _say(run, i / max(n, 1), text))
        ref = ModelRef(Path(path).name, str(Path(path).resolve()))
    return {"ref": ref.as_dict(), "summary": ref.model}


def _video_record(spec: synth.VideoSpec, path: Path) -> dict:
    return {"name": spec.name, "seed": spec.seed, "length_s": spec.duration_s,
            "events": len(spec.events), "path": str(path.resolve()),
            "sha256": file_sha256(path)}


def stage_render(run: ExperimentRun) -> dict:
    """Render the training and held-out videos (each split in its own folder and seed
    range). Held-out files of earlier settings are removed, so the held-out folder (the
    synthetic suite) holds exactly this experiment's held-out videos; earlier training
    videos stay (the library may know them)."""
    split = {name: video_specs(run.config, name) for name in ("train", "heldout")}
    total = sum(s.n_frames for specs in split.values() for s in specs)
    done, records = 0, {}
    for name, specs in split.items():
        folder = run.out / name
        if name == "heldout" and folder.is_dir():
            wanted = {f"{s.name}{suffix}" for s in specs for suffix in (".mp4", ".json")}
            olds = [*folder.glob("heldout-*"), *folder.glob("validation-*")]
            for old in olds:
                if old.name not in wanted:
                    old.unlink()

        def progress(i: int, _n: int, base=done, label=name) -> None:
            _say(run, (base + i) / total, f"rendering {label} videos")

        paths = synth.build_demo_library(folder, specs, progress=progress)
        done += sum(s.n_frames for s in specs)
        records[name] = [_video_record(s, p) for s, p in zip(specs, paths)]
    checks = check_disjoint(records["train"], records["heldout"])
    return {**records, "checks": checks,
            "summary": f"{len(records['train'])} training and {len(records['heldout'])} "
                       f"{'validation' if run.config.validate else 'held-out'} videos in "
                       f"{run.out}"}


def heldout_in_store(run: ExperimentRun) -> list[str]:
    """Held-out videos whose content is in the store's library (must be none)."""
    heldout = run.outputs("render")["heldout"]
    return [v["name"] for v in heldout if run.store.find_video(sha256=v["sha256"]) is not None]


def stage_ingest(run: ExperimentRun) -> dict:
    """Ingest the training videos, never the held-out ones; the training videos' ids."""
    train = run.outputs("render")["train"]
    report = ingest(run.store, [v["path"] for v in train], user=REVIEW_USER,
                    progress=lambda i, n, _p: _say(run, i / max(n, 1), f"ingesting {i}/{n}"))
    ids = []
    for v in train:
        row = run.store.find_video(sha256=v["sha256"])
        if row is None or row["status"] != "ready":
            why = dict(report.failed).get(v["path"], "not in the library after ingest")
            raise ExperimentError(f"training video {v['path']} cannot be used: {why}")
        ids.append(row["id"])
    leaked = heldout_in_store(run)
    if leaked:
        raise ExperimentError(f"held-out video(s) {', '.join(leaked)} are in the library: the "
                              "test would not be fair; remove them from the library")
    return {"video_ids": ids, "heldout_in_library": 0,
            "summary": f"{len(ids)} training videos in the library ({report.summary()})"}


# --- pairs -------------------------------------------------------------------------------


def _base(run: ExperimentRun) -> ModelRef:
    return ModelRef(**run.outputs("model")["ref"])


def run_keys(run: ExperimentRun) -> dict[int, str]:
    """Generation run key per training video id: which stored pairs this experiment made."""
    from tpo.generation.filters import FilterConfig
    from tpo.generation.pairs import run_key

    config = run.config.generation()
    base = _base(run).model
    filters = FilterConfig(drop_truncated=run.config.drop_truncated)  # as stage_generate's
    return {vid: run_key(run.store.get_video(vid)["sha256"], base, None, config,
                         filter_config=filters)
            for vid in run.outputs("ingest")["video_ids"]}


def experiment_pairs(run: ExperimentRun) -> list[dict]:
    """The pairs this experiment generated (training videos, this run key), current state."""
    keys = run_keys(run)
    return [p for vid, key in keys.items() for p in run.store.list_pairs(video_id=vid)
            if p["run_key"] == key]


def stage_generate(run: ExperimentRun) -> dict:
    """Generate pairs for the training videos with the base model (questions from the ground
    truth, answers the model's own); the post-filter runs on every pair."""
    from tpo.generation.filters import FilterConfig
    from tpo.generation.generate import generate
    from tpo.models.vlm import VLM, ModelConfig

    base = _base(run)
    ids = run.outputs("ingest")["video_ids"]
    _say(run, 0.0, f"loading {base.label}")
    with VLM.load(ModelConfig(model=base.model, max_new_tokens=run.config.max_new_tokens,
                              batch_size=run.config.eval_batch_size)) as vlm:
        report = generate(run.store, vlm, run.config.generation(), video_ids=ids,
                          filter_config=FilterConfig(drop_truncated=run.config.drop_truncated),
                          progress=lambda f, t: _say(run, f, t))
    if report.failed and len(report.failed) == len(ids):
        first = next(iter(report.failed.values()))
        raise ExperimentError(f"no training video could be generated for ({first})")
    pairs = experiment_pairs(run)
    return {"generated": len(pairs), "failed": {str(k): v for k, v in report.failed.items()},
            "summary": f"{len(pairs)} pairs ({sum(p['filter_verdict'] == 'kept' for p in pairs)} "
                       f"kept by the post-filter); {len(report.failed)} videos failed"}


def pair_counts(pairs: list[dict], used: set[int]) -> dict:
    """Per kind: generated, kept / filtered by the post-filter, accepted, used for training."""
    out = {}
    for kind in KINDS:
        mine = [p for p in pairs if p["kind"] == kind]
        out[kind] = {"generated": len(mine),
                     "kept": sum(p.get("filter_verdict") == "kept" for p in mine),
                     "filtered": sum(p.get("filter_verdict") == "dropped" for p in mine),
                     "accepted": sum(p["status"] == "accepted" for p in mine),
                     "used": sum(p["id"] in used for p in mine)}
    out["filter_reasons"] = dict(Counter((p.get("filter_reason") or "").split(":")[0]
                                         for p in pairs if p.get("filter_reason")))
    return out


def stage_accept(run: ExperimentRun) -> dict:
    """Accept the kept pairs as user "experiment" (audited), or with ``reviewed`` take the
    training videos' accepted pairs as people left them."""
    from tpo.curation.review import bulk_review

    pairs = experiment_pairs(run)
    if run.config.reviewed:
        used = [p for vid in run.outputs("ingest")["video_ids"]
                for p in run.store.list_pairs(video_id=vid, status="accepted")]
        if not used:
            pending = sum(p["status"] == "pending" for p in pairs)
            raise ExperimentError(f"no accepted pairs of the training videos yet ({pending} "
                                  "pending): review them in the app's Curate tab or with `tpo "
                                  "review`, then run the same command again")
        accepted = []
    else:
        pending = [p["id"] for p in pairs if p["status"] == "pending"]
        accepted = bulk_review(run.store, pending, "accept", user=REVIEW_USER).changed
        pairs = experiment_pairs(run)
        used = [p for p in pairs if p["status"] == "accepted"]
        if not used:
            reasons = Counter((p.get("filter_reason") or "?").split(":")[0] for p in pairs)
            raise ExperimentError(
                f"no pair to train on: the post-filter dropped all {len(pairs)} "
                f"({', '.join(f'{n} {r}' for r, n in reasons.most_common(3))}); try "
                "--keep-truncated or a larger --max-new-tokens")
    ids = sorted(p["id"] for p in used)
    mine = {p["id"] for p in pairs}
    # reviewed: people's accepted pairs may come from other generation runs too
    counts = pair_counts(pairs + [p for p in used if p["id"] not in mine], set(ids))
    how = ("reviewed by people" if run.config.reviewed
           else f"{len(accepted)} accepted now as '{REVIEW_USER}'")
    return {"pair_ids": ids, "accepted_now": len(accepted), "counts": counts,
            "summary": f"{len(ids)} pairs to train on ({how})"}


# --- the dataset -------------------------------------------------------------------------


def _export_dir(run: ExperimentRun) -> Path:
    return run.out / "dataset"


def _hf_cache(run: ExperimentRun) -> str:
    return str(run.out / "hf-cache")


def training_rows(run: ExperimentRun, kinds: tuple[str, ...] = KINDS):
    """The exported rows of this experiment's pairs (of ``kinds``) as a ``datasets.Dataset``."""
    import datasets

    keep = set(run.outputs("accept")["pair_ids"])
    ds = datasets.load_dataset(str(_export_dir(run)), split="train", cache_dir=_hf_cache(run))
    # input_columns: only these two are read, the frames are not decoded
    return ds.filter(lambda pair_id, kind: pair_id in keep and kind in kinds,
                     input_columns=["pair_id", "kind"])


def check_rows(run: ExperimentRun, rows) -> dict:
    """ExperimentError unless every training row is one of this experiment's pairs, of a
    training video, with the pair's own (model-written) chosen answer; what was checked."""
    from tpo.curation.review import effective

    heldout = {v["sha256"] for v in run.outputs("render")["heldout"]}
    keep = set(run.outputs("accept")["pair_ids"])
    meta = rows.select_columns(["pair_id", "video_sha256", "chosen"])
    for row in meta:
        if row["video_sha256"] in heldout:
            raise ExperimentError(f"pair {row['pair_id']} of a held-out video is in the "
                                  "training set: the test would not be fair")
        if row["pair_id"] not in keep:
            raise ExperimentError(f"pair {row['pair_id']} is not one of this experiment's")
        text = "".join(part.get("text") or "" for turn in row["chosen"]
                       for part in turn["content"])
        if text != effective(run.store.get_pair(row["pair_id"]))["chosen"]:
            raise ExperimentError(f"pair {row['pair_id']}: the training row's chosen answer "
                                  "is not the pair's own")
    leaked = heldout_in_store(run)
    if leaked:
        raise ExperimentError(f"held-out video(s) {', '.join(leaked)} are in the library")
    return {"rows": len(rows), "heldout_rows": 0, "foreign_rows": 0,
            "chosen_is_the_models_answer": True, "heldout_in_library": 0,
            "columns": sorted(rows.column_names)}


def stage_export(run: ExperimentRun) -> dict:
    """Export the accepted pairs as the paper's records (``frames`` frames uniform over the
    whole video), then check this experiment's rows: no held-out video, no answer that is
    not the model's own."""
    from tpo.curation.export import ExportConfig, export_pairs

    # frames_from "whole" (the export's default, the paper's records): frames uniform over the
    # whole video, min(frames, one per second), the same for chosen and rejected
    report = export_pairs(run.store, _export_dir(run), ExportConfig(frames=run.config.frames),
                          progress=lambda d, n, t: _say(run, d / max(n, 1), f"exporting {d}/{n}"))
    rows = training_rows(run)
    if len(rows) == 0:
        raise ExperimentError("none of this experiment's pairs could be exported "
                              f"({len(report.skipped)} skipped: their videos cannot be read)")
    checks = check_rows(run, rows)
    by_kind = dict(Counter(rows["kind"]))
    return {"dir": str(_export_dir(run)), "rows": len(rows), "by_kind": by_kind,
            "store_rows": report.n_pairs, "checks": checks,
            "summary": f"{len(rows)} training rows ("
                       + ", ".join(f"{n} {k}" for k, n in by_kind.items()) + ")"}


# --- training and evaluation -------------------------------------------------------------


def _progress_callback(run: ExperimentRun):
    """A transformers callback that reports optimizer steps (and the loss) to the reporter."""
    from transformers import TrainerCallback

    class StepProgress(TrainerCallback):
        loss: float | None = None

        def on_metrics(self, step: int, logs: dict) -> None:  # tpo.training.train's hook (rank 0)
            if isinstance(logs.get("loss"), (int, float)):
                self.loss = float(logs["loss"])

        def on_step_end(self, args, state, control, **kwargs):
            loss = f" · loss {self.loss:.4f}" if self.loss is not None else ""
            _say(run, state.global_step / max(state.max_steps, 1),
                 f"step {state.global_step}/{state.max_steps}{loss}")

    return StepProgress()


def _variant_kinds(variant: str) -> tuple[str, ...]:
    return (variant,) if variant in KINDS else KINDS


def stage_train(run: ExperimentRun, variant: str) -> dict:
    """Fine-tune the base on this experiment's pairs (``tpo``) or an ablation's share or
    objective; registered as a model like ``tpo train`` does."""
    from tpo.training.train import resolve as resolve_training, train
    from tpo.training.train_job import register_model

    rows = training_rows(run, _variant_kinds(variant))
    if len(rows) == 0:
        return {"skipped": f"no {' or '.join(_variant_kinds(variant))} pairs to train on",
                "summary": "skipped: no pairs"}
    out = run.out / "models" / f"{run.config.name}-{variant}"
    config = run.config.training(variant, str(out), base=_base(run).model,
                                 cache_dir=_hf_cache(run))
    _say(run, 0.0, f"loading {_base(run).label}")
    # transformers prints each log line to stdout when not on a terminal: keep stdout for the
    # caller's output (`tpo experiment --json`)
    with contextlib.redirect_stdout(sys.stderr):
        result = train(config, dataset=rows, callbacks=[_progress_callback(run)])
    settings = {**resolve_training(config), "data": str(_export_dir(run))}
    model_id = register_model(run.store, settings, None)
    row = next(m for m in run.store.list_models() if m["id"] == model_id)
    ref = registered(row)
    return {"ref": ref.as_dict(), "model_id": model_id, "output_dir": str(out),
            "pairs": len(rows), "by_kind": dict(Counter(rows["kind"])),
            "steps": result.global_step, "final_loss": result.final_loss,
            "train_runtime_s": round(result.train_runtime_s, 2),
            "settings": {k: settings[k] for k in ("beta", "alpha", "learning_rate",
                                                  "dpo_weight", "num_train_epochs",
                                                  "max_steps", "lora", "max_frames")},
            "summary": f"{result.global_step} steps on {len(rows)} pairs; registered as "
                       f"{ref.label}"}


def variant_ref(run: ExperimentRun, variant: str) -> ModelRef | None:
    """The model of a variant: the base, or the fine-tune (None when it was skipped)."""
    if variant == "base":
        return _base(run)
    outputs = run.outputs(f"train:{variant}")
    return None if outputs.get("skipped") else ModelRef(**outputs["ref"])


def stage_eval(run: ExperimentRun, variant: str, suite: str) -> dict:
    """Evaluate one model on the needle suite or the held-out videos' questions; stored."""
    from tpo.evaluation.eval_results import get_eval
    from tpo.evaluation.evaluate import evaluate

    ref = variant_ref(run, variant)
    if ref is None:
        return {"skipped": "no model: its training was skipped", "summary": "skipped"}
    config = (run.config.needle_eval() if suite == "needle"
              else run.config.synthetic_eval(run.out / "heldout"))
    (eval_id,) = evaluate(run.store, [ref], config, cache_dir=run.out / "needle",
                          out_dir=run.out / "evals", progress=lambda f, t: _say(run, f, t))
    row = get_eval(run.store, eval_id)
    accuracy = "n/a" if row["accuracy"] is None else f"{100 * row['accuracy']:.1f}%"
    return {"eval_id": eval_id, "accuracy": row["accuracy"], "n": row["n_items"],
            "correct": row["n_correct"],
            "summary": f"{accuracy} of {row['n_items']} questions (eval #{eval_id})"}


__all__ = ["check_rows", "experiment_pairs", "pair_counts", "run_keys", "stage_accept",
           "stage_eval", "stage_export", "stage_generate", "stage_ingest", "stage_model",
           "stage_render", "stage_train", "training_rows", "variant_ref"]
