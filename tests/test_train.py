"""TPO training (tpo.training.train) for real: the tiny random models, a real export of reviewed
pairs, TRL's DPOTrainer on the CPU - LoRA and full fine-tune, the SFT term, resume, the
`train` job (metrics, cancel, clear failures, model registry) and two processes over gloo."""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from media import make_video, read_index
from transformers import TrainerCallback

from tpo.curation import export as export_module
from tpo import jobs
from tpo.training import train_job
from tpo.curation.export import ExportConfig, export_pairs
from tpo.media.library import ingest
from tpo.curation.review import review
from tpo.store import Store
from tpo.training.config import TRAINER_DEFAULTS, TPOArguments, check_options
from tpo.training.train import (LANGUAGE_LORA_TARGET, OOM, TrainConfig, _clear_errors, build_parser,
                                config_from_args, make_config, resolve, train)
from tpo.training.train_data import NO_DATA, TrainError, cap_frames, load_pairs
from tpo.training.train_job import _free_port, job_params
from tpo.media.video import open_video
from tpo.models.vlm import ModelConfig, ModelLoadError, time_prompt

FPS = 4
ROOT = Path(__file__).resolve().parents[1]
JOB_TIMEOUT_S = 150
# Every logged training step must carry these (TRL's DPO metrics).
STEP_KEYS = {"step", "epoch", "loss", "rewards/accuracies", "rewards/margins", "logps/chosen",
             "logps/rejected", "learning_rate", "grad_norm"}


def _pair(kind, strategy, question, chosen, rejected, segment, chosen_t, rejected_t):
    return {"kind": kind, "strategy": strategy, "question": question, "chosen": chosen,
            "rejected": rejected, "segment_start": segment[0] if segment else None,
            "segment_end": segment[1] if segment else None, "chosen_timestamps": chosen_t,
            "rejected_timestamps": rejected_t, "prompt": question, "status": "pending",
            "generator": {"model": "tiny"}, "filter_verdict": "kept"}


def _accept_pairs(store, clip):
    """Three accepted pairs (two localized, one comprehensive) of ``clip`` in ``store``."""
    video_id = ingest(store, [clip], user="ana").added[0]
    with open_video(clip) as vid:
        t = vid.times.tolist()
    ids = store.save_generation(video_id, "k", [
        _pair("localized", "irrelevant", "What is drawn at 2 s?", "Bars in two rows.",
              "Nothing at all.", (1.0, 3.0), t[4:12:2], t[12:32:4]),
        _pair("comprehensive", "dense-sparse", "Summarize the video.",
              "Counting bars that change.", "A dog runs.", None, t[::2], t[::8]),
        _pair("localized", "irrelevant", "What happens at the end?",
              "The bars show a larger number.", "The video is blank.", (5.0, 7.0),
              t[20:28:2], t[0:20:5]),
    ], params={}, seconds=0)
    for pair_id in ids:
        review(store, pair_id, "accept", user="ana")


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    """The pairs of an 8 s clip exported as jsonl with 4 frames a row (uniform over the whole
    clip, at 1, 3, 5 and 7 s); plus a datasets cache for the module."""
    root = tmp_path_factory.mktemp("train")
    store = Store(root / "tpo.db")
    clip = make_video(root / "clip.mp4", duration_s=8, fps=FPS)
    _accept_pairs(store, clip)
    report = export_pairs(store, root / "export", ExportConfig(frames=4))
    dense = export_pairs(store, root / "export-8", ExportConfig(frames=8))  # 1 frame a second
    store.close()
    assert report.n_pairs == 3
    return SimpleNamespace(dir=report.out_dir, dense=dense.out_dir, root=root, clip=clip,
                           cache=str(root / "hf"))


def _config(model, export, out, **overrides) -> TrainConfig:
    """A quick run: lr high enough to move a random model, no warm-up (step 1 has lr > 0)."""
    options = dict(model=str(model), data=str(export.dir), output_dir=str(out),
                   learning_rate=1e-3, warmup_steps=0.0, lora_r=8, lora_alpha=16,
                   max_steps=3, cache_dir=export.cache)
    options.update(overrides)
    return TrainConfig(**options)


def _metric_rows(path):
    rows = [json.loads(line) for line in Path(path).read_text().splitlines()]
    return [r for r in rows if "loss" in r]


class _Snapshots(TrainerCallback):
    """The trainable tensors when training begins and ends, and the step it began at."""

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.start_step = state.global_step
        self.before = {n: p.detach().clone() for n, p in model.named_parameters()
                       if p.requires_grad}

    def on_train_end(self, args, state, control, model=None, **kwargs):
        self.after = {n: p.detach().clone() for n, p in model.named_parameters()
                      if n in self.before}
        self.frozen = {n: p.detach().clone() for n, p in model.named_parameters()
                       if not p.requires_grad}


def _logits(vlm, export):
    """The model's next-token logits for the first exported prompt with its frames."""
    row = load_pairs(export.dir, cache_dir=export.cache)[0]
    text = vlm.processor.apply_chat_template(row["prompt"], add_generation_prompt=True)
    inputs = vlm.processor(text=[text], images=[row["images"]], return_tensors="pt")
    with torch.no_grad():
        return vlm.model(**inputs).logits[0, -1]


# --------------------------------------------------------------------------------------------
# train()


def test_lora_run_trains_the_language_model_and_writes_its_outputs(tiny_smolvlm_dir, export,
                                                                   tmp_path):
    from tpo.models.vlm import VLM

    out = tmp_path / "run"
    snap = _Snapshots()
    started = time.monotonic()
    result = train(_config(tiny_smolvlm_dir, export, out), callbacks=[snap])
    seconds = time.monotonic() - started
    assert result.global_step == 3 and result.world_size == 1 and result.resumed_from is None

    # Only LoRA tensors train, all of them move, and none sits in the vision tower.
    assert snap.before and all("lora_" in n for n in snap.before)
    assert all("text_model.layers" in n for n in snap.before)
    changed = [n for n in snap.before if not torch.equal(snap.before[n], snap.after[n])]
    assert sorted(changed) == sorted(snap.before)

    names = {p.name for p in out.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "processor_config.json",
            "tokenizer.json", "tpo_train_args.json", "command.txt", "metrics.jsonl",
            "train_result.json"} <= names
    args = json.loads((out / "tpo_train_args.json").read_text())
    assert (args["beta"], args["alpha"], args["learning_rate"]) == (0.3, 0.5, 1e-3)  # preset
    assert args["bf16"] is False and args["use_cpu"] is True
    adapter = json.loads((out / "adapter_config.json").read_text())
    assert adapter["target_modules"] == LANGUAGE_LORA_TARGET and adapter["r"] == 8

    rows = _metric_rows(out / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert all(STEP_KEYS <= set(r) and math.isfinite(r["loss"]) for r in rows)
    assert result.final_loss == rows[-1]["loss"]

    # command.txt's `tpo train` line parses back into this very configuration.
    line = next(x for x in (out / "command.txt").read_text().splitlines()
                if x.startswith("tpo train "))
    again = config_from_args(build_parser().parse_args(shlex.split(line)[2:]))
    assert resolve(again) == resolve(_config(tiny_smolvlm_dir, export, out))
    assert "accelerate launch --config_file configs/accelerate/" in \
        (out / "command.txt").read_text()

    # The saved adapter loads on the base and changes what the model computes.
    with VLM.load(ModelConfig(model=str(tiny_smolvlm_dir), device="cpu")) as base, \
            VLM.load(ModelConfig(model=str(tiny_smolvlm_dir), adapter=str(out),
                                 device="cpu")) as tuned:
        assert not torch.allclose(_logits(base, export), _logits(tuned, export))
    print(f"3 LoRA steps: {seconds:.1f} s with loading, {result.train_runtime_s:.2f} s of "
          f"training ({result.train_runtime_s / 3:.3f} s/step), losses "
          f"{[round(r['loss'], 3) for r in rows]}")


def test_sft_term_is_in_the_loss(tiny_smolvlm_dir, export, tmp_path):
    """Same batch and seed: alpha = 0 is plain DPO (ln 2 at step 1: a fresh LoRA equals the
    reference); alpha = 0.5 adds half the chosen answer's per-token NLL."""
    first = {}
    # alpha = 0 from an in-memory dataset (train's `dataset=`), 0.5 from the export folder.
    train(_config(tiny_smolvlm_dir, export, tmp_path / "a0", data=None, alpha=0.0, max_steps=1),
          dataset=load_pairs(export.dir, cache_dir=export.cache))
    train(_config(tiny_smolvlm_dir, export, tmp_path / "a05", alpha=0.5, max_steps=1))
    for alpha, out in ((0.0, tmp_path / "a0"), (0.5, tmp_path / "a05")):
        first[alpha] = _metric_rows(out / "metrics.jsonl")[0]
    assert first[0.0]["loss"] == pytest.approx(math.log(2), abs=1e-4)
    assert first[0.0]["rewards/margins"] == 0
    assert first[0.0]["logps/chosen"] == pytest.approx(first[0.5]["logps/chosen"])  # same batch
    # A random 512-token model: per-token NLL ~ ln 512 = 6.2, so the SFT part is ~3.1.
    assert first[0.5]["loss"] > first[0.0]["loss"] + 1.0
    print(f"first-step loss: alpha=0 {first[0.0]['loss']:.4f}, "
          f"alpha=0.5 {first[0.5]['loss']:.4f}")


def test_resume_continues_from_the_last_checkpoint(tiny_smolvlm_dir, export, tmp_path):
    out = tmp_path / "run"
    first = train(_config(tiny_smolvlm_dir, export, out, max_steps=2, save_steps=1))
    assert first.global_step == 2 and (out / "checkpoint-2").is_dir()
    with pytest.raises(TrainError, match="already holds a training run"):
        train(_config(tiny_smolvlm_dir, export, out, max_steps=4))
    snap = _Snapshots()
    resumed = train(_config(tiny_smolvlm_dir, export, out, max_steps=4, save_steps=1,
                            resume=True), callbacks=[snap])
    assert resumed.global_step == 4
    assert resumed.resumed_from == str(out / "checkpoint-2")
    assert snap.start_step == 2  # began at the checkpoint's step, not at 0
    assert [r["step"] for r in _metric_rows(out / "metrics.jsonl")] == [1, 2, 3, 4]
    assert json.loads((out / "train_result.json").read_text())["global_step"] == 4


def test_full_fine_tune_freezes_the_vision_encoder(tiny_smolvlm_dir, export, tmp_path):
    out = tmp_path / "full"
    snap = _Snapshots()
    result = train(_config(tiny_smolvlm_dir, export, out, lora=False, max_steps=2),
                   callbacks=[snap])
    assert result.global_step == 2
    assert snap.frozen and all(".vision_model." in n for n in snap.frozen)
    assert not any(".vision_model." in n for n in snap.before)
    moved = [n for n in snap.before if not torch.equal(snap.before[n], snap.after[n])]
    assert any("text_model.layers" in n for n in moved)
    assert (out / "model.safetensors").is_file() and not (out / "adapter_config.json").exists()
    from tpo.models.vlm import VLM

    with VLM.load(ModelConfig(model=str(out), device="cpu")) as tuned:  # a complete model
        assert torch.isfinite(_logits(tuned, export)).all()


def test_qwen2vl_lora_stays_out_of_the_vision_tower(tiny_qwen2vl_dir, export, tmp_path):
    snap = _Snapshots()
    result = train(_config(tiny_qwen2vl_dir, export, tmp_path / "qwen", max_steps=1),
                   callbacks=[snap])
    assert result.global_step == 1
    assert snap.before and all("language_model.layers" in n and "lora_" in n
                               for n in snap.before)
    assert not any(".visual." in n for n in snap.before)


def test_max_frames_caps_images_and_rewrites_the_time_prompt(export):
    full = load_pairs(export.dir, cache_dir=export.cache)
    capped = load_pairs(export.dir, max_frames=2, cache_dir=export.cache)
    assert capped.column_names == ["prompt", "chosen", "rejected", "images"]
    for before, after in zip(full, capped):
        content = after["prompt"][0]["content"]
        assert len(after["images"]) == 2
        assert [p["type"] for p in content] == ["image", "image", "text"]
        assert content[-1]["text"].split("\n")[-1] == before["prompt"][0]["content"][-1][
            "text"].split("\n")[-1]  # the question itself is untouched
        assert "and 2 frames are sampled" in content[-1]["text"]


@pytest.mark.parametrize("column", ["frame_times", "frame_timestamps"])
def test_cap_frames_keeps_a_uniform_subset_of_the_whole_video(export, column):
    """8 frames at 0.5, 1.5, ... 7.5 s capped to 4: every other one, still spanning the clip
    evenly; frame_times (or an older export's frame_timestamps), placeholders and the time
    prompt follow. A row already within the cap is left alone."""
    import datasets

    ds = datasets.load_dataset(str(export.dense), split="train", cache_dir=export.cache)
    assert all(r["frame_times"] == [k + 0.5 for k in range(8)] for r in ds)
    if column != "frame_times":
        ds = ds.rename_column("frame_times", column)
    capped = cap_frames(ds, 4)
    for row in capped:
        times = row[column]
        assert times == [1.5, 3.5, 5.5, 7.5] and np.allclose(np.diff(times), 2.0)
        assert [read_index(np.asarray(im.convert("RGB"))) for im in row["images"]] == \
            [round(t * FPS) for t in times]  # the images are the frames at those times
        content = row["prompt"][0]["content"]
        assert [p["type"] for p in content] == ["image"] * 4 + ["text"]
        assert content[-1]["text"] == time_prompt(times, 8.0, row["question"])
    same = cap_frames(ds, 8)
    assert [r[column] for r in same] == [r[column] for r in ds]
    assert [len(r["images"]) for r in same] == [8] * len(ds)


def test_clear_errors_for_missing_data_model_oom_and_full_disk(tiny_smolvlm_dir, export,
                                                                tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "no-rows").mkdir()
    (tmp_path / "no-rows" / "README.md").write_text("an export's card, but no data file")
    for data in (tmp_path / "missing", tmp_path / "empty", tmp_path / "no-rows"):
        with pytest.raises(TrainError, match=re.escape(NO_DATA)):
            train(_config(tiny_smolvlm_dir, export, tmp_path / "out", data=str(data)))
    with pytest.raises(ModelLoadError, match="no such folder"):
        train(_config(tmp_path / "no-model", export, tmp_path / "out2"))
    with pytest.raises(TrainError, match=re.escape(OOM)):
        with _clear_errors(tmp_path):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
    with pytest.raises(TrainError, match="disk full"):
        with _clear_errors(tmp_path):
            raise OSError(28, "No space left on device")


def test_importing_the_module_loads_no_ml_library():
    """The app process imports tpo.training.train, tpo.training.config for the run's settings and
    tpo.training.train_job for job_params (docs/architecture.md): no torch, so no TrainConfig."""
    code = ("import sys, tpo.training.train as t, tpo.training.train_job as j, "
            "tpo.training.config as c; "
            "p = j.job_params({'model': 'm', 'data': 'd', 'output_dir': 'o', 'lr_scheduler_type': "
            "'linear'}); print(p['config']['lr_scheduler_type'], t.cli_args(p['config'])[-1]); "
            "print(sorted({'torch', 'transformers', 'trl', 'peft', 'datasets'} & "
            "set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout.split("\n")
    assert out[:2] == ["linear linear", "[]"]
    from transformers import TrainerCallback

    from tpo.training.train import MetricsCallback  # built on first use

    assert issubclass(MetricsCallback, TrainerCallback)


def test_train_config_is_trls_dpo_config_plus_tpos_fields():
    """TrainConfig builds on TRL's DPOConfig: tpo declares none of its fields, only changes
    some defaults (the paper's schedule; beta and lr from the preset) and adds short options;
    every DPOConfig option parses, and DPOConfig's own checks apply."""
    import dataclasses

    from trl import DPOConfig

    dpo = {f.name: f for f in dataclasses.fields(DPOConfig)}
    ours = {f.name: f for f in dataclasses.fields(TrainConfig)}
    assert issubclass(TrainConfig, DPOConfig) and issubclass(TrainConfig, TPOArguments)
    assert not {f.name for f in dataclasses.fields(TPOArguments)} & set(dpo)
    assert set(ours) == set(dpo) | {f.name for f in dataclasses.fields(TPOArguments)}
    for name, f in ours.items():  # a DPOConfig field keeps its help; its default is DPOConfig's or TPO's
        if name in dpo:
            assert f.metadata.get("help", "").startswith(dpo[name].metadata.get("help", "")[:40])
            expected = TRAINER_DEFAULTS.get(name, dpo[name].default)
            assert f.default == expected or f.default_factory is not dataclasses.MISSING, name
    config = config_from_args(build_parser().parse_args([
        "--model", "m", "--output", "o", "--weight-decay", "0.01", "--optim", "sgd",
        "--gradient-accumulation-steps", "4", "--batch-size", "2", "--epochs", "2"]))
    assert isinstance(config, DPOConfig)
    assert (config.weight_decay, config.optim.value, config.gradient_accumulation_steps,
            config.per_device_train_batch_size, config.num_train_epochs) == (0.01, "sgd", 4, 2, 2.0)
    # TPO's run: sigmoid DPO + alpha x SFT, the preset's beta / lr, no truncation, fp32 on CPU.
    assert (config.loss_type, config.loss_weights) == (["sigmoid", "sft"], [1.0, 0.5])
    assert (config.beta, config.learning_rate, config.max_length) == (0.3, 4e-6, None)
    assert (config.seed, config.save_steps, config.logging_steps, config.warmup_steps) == \
        (0, 100, 1, 0.1)
    assert config.bf16 is False and config.use_cpu is True and config.activation_checkpointing
    # DPOConfig's own validation, for its own fields; the job reports it as a clear error.
    with pytest.raises(ValueError, match="SchedulerType"):
        make_config({"model": "m", "output_dir": "o", "lr_scheduler_type": "bogus"})
    with pytest.raises(TypeError, match="colour"):
        make_config({"model": "m", "output_dir": "o", "colour": "red"})


def test_config_validation_and_cli():
    assert "--max-frames" in build_parser().format_help()
    ns = build_parser().parse_args(["--model", "m", "--data", "d", "--output", "o", "--full",
                                    "--lr", "2e-5", "--preset", "llava-video", "--bf16",
                                    "false", "--no-gradient-checkpointing", "--max-frames",
                                    "8"])
    config = config_from_args(ns)
    assert (config.lora, config.learning_rate, config.bf16, config.max_frames) == \
        (False, 2e-5, False, 8)
    settings = resolve(config)
    assert (settings["beta"], settings["alpha"], settings["learning_rate"]) == (0.2, 1.0, 2e-5)
    with pytest.raises(ValueError, match="launcher"):
        job_params(config, launcher="slurm")
    with pytest.raises(ValueError, match="frames must be a positive number"):
        job_params(config, export_from_store=True, frames=0)
    with pytest.raises(ValueError, match="frames_from must be one of whole"):
        job_params(config, export_from_store=True, frames_from="segment")
    assert job_params(config)["export"] == {"frames": 64, "frames_from": "whole"}
    # train_job repeats tpo.curation.export's choices (importing it would load datasets in the app).
    assert train_job.FRAME_SOURCES == export_module.FRAME_SOURCES
    assert train_job.DEFAULT_FRAMES == export_module.DEFAULT_FRAMES == ExportConfig().frames
    for bad, message in (({"preset": "gpt"}, "preset must be one of"),
                         ({"alpha": -1.0}, "alpha must be >= 0"),
                         ({"warmup_ratio": -1.0}, "warmup_steps"),  # the earlier name
                         ({"learning_rate": 0}, "learning_rate must be > 0"),
                         ({"save_steps": 0}, "save_steps must be >= 1"),
                         ({"resume": True, "overwrite": True}, "contradict"),
                         ({"bf16": "maybe"}, "bf16 must be auto"),
                         ({"dpo_weight": 0, "alpha": 0}, "leave no loss"),
                         ({"output_dir": ""}, "output_dir is required")):
        options = {"model": "m", "data": "d", "output_dir": "o", **bad}
        with pytest.raises(ValueError, match=message):  # in the app, without torch
            check_options(options)
        with pytest.raises(ValueError, match=message):  # in the training process
            make_config(options)
        with pytest.raises(ValueError, match=message):
            job_params(options)
    with pytest.raises(ValueError, match="loss_type and loss_weights are TPO's"):
        make_config({"model": "m", "output_dir": "o", "loss_type": ["ipo"]})
    # A job submitted before TrainConfig built on DPOConfig resumes with its settings.
    old = {"model": "m", "output_dir": "o", "warmup_ratio": 0.0, "bf16": "auto",
           "gradient_checkpointing": True, "use_cpu": None, "lora_target": LANGUAGE_LORA_TARGET}
    assert make_config(old).warmup_steps == 0.0 and make_config(old).bf16 is False


def test_train_command_frames_options_shape_the_from_store_export(store, settings, tmp_path,
                                                                   monkeypatch):
    from click.testing import CliRunner

    from tpo.cli import cli

    monkeypatch.setenv("TPO_DATA_DIR", str(settings.data_dir))

    def run(*args):
        return CliRunner().invoke(cli, ["--db", str(settings.db_path), "train", "--model", "m",
                                        "--output", str(tmp_path / "o"), *args])

    for args, message in ((["--data", str(tmp_path), "--frames", "8"], "shape the --from-store"),
                          (["--from-store", "--frames", "0"], "--frames must be at least 1"),
                          (["--from-store", "--frames-from", "segment"], "invalid choice")):
        result = run(*args)
        assert result.exit_code == 2 and message in result.output, result.output
        assert "Traceback" not in result.output
    assert jobs.list_jobs(store, kind="train") == []  # nothing was submitted
    help_text = " ".join(run("--help").output.split())
    assert "--frames-from" in help_text and "the paper's setting" in help_text


def test_from_store_export_follows_frames_and_frames_from(export, store, tmp_path):
    """The job's export step alone (no training): whole-video by default, the chosen side's
    frames when asked; --max-frames lowers the count."""
    _accept_pairs(store, export.clip)
    ctx = SimpleNamespace(store=store, progress=lambda *a: None, check_cancelled=lambda: None,
                          log=lambda *a: None)
    options = {"model": "m", "data": None, "output_dir": str(tmp_path / "whole")}
    data = train_job._export_for_run(ctx, options, {})  # the defaults: whole, 64
    rows = [json.loads(x) for x in (Path(data["data"]) / "metadata.jsonl").read_text().splitlines()]
    assert [r["frame_times"] for r in rows] == [[k + 0.5 for k in range(8)]] * 3  # 1 a second
    chosen = train_job._export_for_run(ctx, {
        "model": "m", "data": None, "output_dir": str(tmp_path / "chosen"), "max_frames": 3},
        {"frames": 64, "frames_from": "chosen"})
    rows = {r["question"]: r for r in (json.loads(x) for x in (
        Path(chosen["data"]) / "metadata.jsonl").read_text().splitlines())}
    local = rows["What is drawn at 2 s?"]  # segment [1, 3): its chosen frames, 3 of them
    assert len(local["frame_times"]) == 3 and all(1.0 <= t < 3.0 for t in local["frame_times"])


# --------------------------------------------------------------------------------------------
# The `train` job


def _submit(store, settings, config: TrainConfig, **params):
    return jobs.submit(store, "train", job_params(config, **params), log_dir=settings.log_dir)


def _models(store):
    return list(store.db.query("SELECT * FROM models ORDER BY id"))


def test_train_job_on_the_accepted_pairs_reports_metrics_and_registers_the_model(
        tiny_smolvlm_dir, export, store, settings, tmp_path):
    """No data folder: the job exports the store's accepted pairs into the run's folder."""
    assert "train" in jobs.KINDS, "tpo.jobs.KINDS needs 'train': 'tpo.training.train_job:run_job'"
    _accept_pairs(store, export.clip)
    out = tmp_path / "job-run"
    job_id = _submit(store, settings, _config(tiny_smolvlm_dir, export, out, data=None,
                                              max_frames=4),
                     launcher="python", num_processes=1, export_from_store=True)
    row = jobs.wait(store, job_id, JOB_TIMEOUT_S)
    assert row["status"] == "succeeded", jobs.log_tail(row)
    assert row["output"]["global_step"] == 3 and row["output"]["world_size"] == 1
    assert (out / "dataset" / "metadata.jsonl").is_file()  # the pairs it trained on
    # The paper's records: --max-frames 4 (lower than the default 64) frames over the whole
    # 8 s clip, the same for every pair whatever its segment.
    exported = [json.loads(line) for line in
                (out / "dataset" / "metadata.jsonl").read_text().splitlines()]
    assert [r["frame_times"] for r in exported] == [[1.0, 3.0, 5.0, 7.0]] * 3
    assert row["output"]["command"].startswith("tpo train --model ")
    assert row["progress_text"].startswith("step 3/3 · loss ")
    losses = jobs.metrics(store, job_id, "loss")
    assert [m["step"] for m in losses] == [1, 2, 3]
    assert f"loss {losses[-1]['value']:.4f}" in row["progress_text"]
    names = {m["name"] for m in jobs.metrics(store, job_id)}
    assert {"loss", "rewards/accuracies", "rewards/margins", "logps/chosen", "learning_rate",
            "grad_norm"} <= names
    (model,) = _models(store)
    assert model["id"] == row["output"]["model_id"] and model["job_id"] == job_id
    assert (model["name"], model["base"]) == ("job-run", str(tiny_smolvlm_dir))
    assert model["adapter_path"] == str(out) and model["dataset"] == str(out / "dataset")
    assert json.loads(model["params"])["alpha"] == 0.5


def test_train_job_cancelled_mid_run_ends_cancelled(tiny_smolvlm_dir, export, store, settings,
                                                    tmp_path):
    job_id = _submit(store, settings, _config(tiny_smolvlm_dir, export, tmp_path / "long",
                                              max_steps=100_000),
                     launcher="python", num_processes=1)
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while not jobs.metrics(store, job_id, "loss"):  # training is under way
        assert time.monotonic() < deadline, jobs.log_tail(jobs.get(store, job_id))
        assert jobs.get(store, job_id)["status"] in ("queued", "running"), \
            jobs.log_tail(jobs.get(store, job_id))
        time.sleep(0.2)
    jobs.cancel(store, job_id)
    row = jobs.wait(store, job_id, 60)
    assert row["status"] == "cancelled", jobs.log_tail(row)
    assert row["error"] is None and _models(store) == []
    assert not (tmp_path / "long" / "train_result.json").exists()  # no final save


def test_a_second_train_job_waits_for_the_first(tiny_smolvlm_dir, export, store, settings,
                                                tmp_path):
    """One training run at a time: the later job queues until the earlier one has ended."""
    first = _submit(store, settings, _config(tiny_smolvlm_dir, export, tmp_path / "first",
                                             max_steps=100_000))
    second = _submit(store, settings, _config(tiny_smolvlm_dir, export, tmp_path / "second",
                                              max_steps=2))
    waiting = f"queued: 1st in line for the GPU, waiting for train job #{first}"
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while waiting not in (jobs.get(store, second)["progress_text"] or ""):
        assert time.monotonic() < deadline, jobs.log_tail(jobs.get(store, second))
        time.sleep(0.2)
    assert jobs.get(store, second)["status"] == "queued"
    assert jobs.metrics(store, second) == []  # queued: it has not trained a step
    jobs.cancel(store, first)
    assert jobs.wait(store, first, 60)["status"] == "cancelled"
    row = jobs.wait(store, second, JOB_TIMEOUT_S)
    assert row["status"] == "succeeded", jobs.log_tail(row)
    assert [m["step"] for m in jobs.metrics(store, second, "loss")] == [1, 2]


def test_train_job_without_data_or_model_fails_with_a_clear_message(tiny_smolvlm_dir, export, store,
                                                           settings, tmp_path):
    (tmp_path / "empty").mkdir()
    ids = [_submit(store, settings, _config(tiny_smolvlm_dir, export, tmp_path / f"o{i}",
                                            data=str(data)))
           for i, data in enumerate((tmp_path / "empty", tmp_path / "missing"))]
    ids.append(_submit(store, settings,  # nothing accepted in this store to export
                       _config(tiny_smolvlm_dir, export, tmp_path / "o2", data=None)))
    no_model = _submit(store, settings, _config(tmp_path / "no-model", export, tmp_path / "o3"))
    for job_id in ids:
        row = jobs.wait(store, job_id, JOB_TIMEOUT_S)
        assert row["status"] == "failed"
        assert row["error"].startswith("TrainError: " + NO_DATA), row["error"]
    row = jobs.wait(store, no_model, JOB_TIMEOUT_S)
    assert row["status"] == "failed"
    assert row["error"].startswith("ModelLoadError: Cannot load model"), row["error"]
    assert _models(store) == []


# --------------------------------------------------------------------------------------------
# Two processes (gloo on the CPU)


def test_two_ranks_with_torchrun(tiny_smolvlm_dir, export, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               "--master_port", str(_free_port()), "-m", "tpo.training.train",
               "--model", str(tiny_smolvlm_dir), "--data", str(export.dir), "--output", str(out),
               "--max-steps", "2", "--lr", "1e-3", "--warmup-ratio", "0", "--lora-r", "8",
               "--cache-dir", export.cache, "--use-cpu"]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((out / "train_result.json").read_text())
    assert result["world_size"] == 2 and result["global_step"] == 2
    rows = _metric_rows(out / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2]  # written by rank 0 only
    # 3 pairs over 2 ranks with batch 1: 2 steps are one epoch (each rank took 2 pairs).
    assert rows[-1]["epoch"] == pytest.approx(1.0)
    assert (out / "adapter_model.safetensors").is_file()


def test_train_job_with_accelerate_on_two_processes(tiny_smolvlm_dir, export, store, settings,
                                                    tmp_path):
    assert "train" in jobs.KINDS, "tpo.jobs.KINDS needs 'train': 'tpo.training.train_job:run_job'"
    out = tmp_path / "accel"
    job_id = _submit(store, settings, _config(tiny_smolvlm_dir, export, out, max_steps=2),
                     launcher="accelerate", num_processes=2,
                     accelerate_config=str(ROOT / "configs/accelerate/multi_gpu_ddp.yaml"))
    row = jobs.wait(store, job_id, JOB_TIMEOUT_S + 60)
    assert row["status"] == "succeeded", jobs.log_tail(row)
    assert row["output"]["world_size"] == 2 and row["output"]["global_step"] == 2
    assert "accelerate.commands.launch" in jobs.log_tail(row, 400)
    # Rank 0 of the child processes wrote the metrics and progress to this job's row.
    assert [m["step"] for m in jobs.metrics(store, job_id, "loss")] == [1, 2]
    assert row["progress_text"].startswith("step 2/2")
    (model,) = _models(store)
    assert model["job_id"] == job_id and model["adapter_path"] == str(out)
