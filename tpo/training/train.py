"""Fine-tune a video-LM on exported preference pairs: TPO = DPO + an SFT term, with TRL.

The objective (the TPO paper's, arXiv 2501.13919) is
``L = L_DPO(beta) + alpha * L_SFT(chosen)``. TRL's ``DPOTrainer`` computes exactly that
with ``loss_type=["sigmoid", "sft"]`` and ``loss_weights=[1.0, alpha]``; nothing here computes a loss, and several processes are always
started by ``accelerate launch`` or ``torchrun``, never by a launcher of our own. For
ablations, ``dpo_weight`` scales the DPO term (``loss_weights=[dpo_weight, alpha]``): 0 trains
SFT on the chosen answers alone, and ``alpha=0`` is plain DPO.

* **Data** (:mod:`tpo.training.train_data`): an export folder of :mod:`tpo.curation.export`
  (``datasets.load_dataset(DIR, split="train")``: conversational ``prompt`` / ``chosen`` /
  ``rejected`` plus the frames as an ``images`` list), or an embedded ``train.parquet``.
  ``max_frames`` caps the frames of a row at load time (an evenly spaced subset - of the
  default export's whole-video frames, again uniform over the whole video; ``frame_times``
  and the time prompt are rewritten to match).
* **Model**: any ``AutoModelForImageTextToText`` (:func:`tpo.models.vlm` loads it, with the same
  clear :class:`~tpo.models.vlm.ModelLoadError`), its processor prepared by
  :func:`tpo.models.vlm.configure_for_frames` so DPO sees frames exactly as generation did.
* **LoRA** (default): PEFT adapters on the *language model's* attention and MLP projections
  only (:data:`LANGUAGE_LORA_TARGET`; ``all-linear`` would also wrap the vision tower). The
  reference model is the same network with its adapters disabled, so there is one copy of
  the weights in memory. **Full fine-tune** (``lora=False``): the vision encoder is frozen and
  TRL loads a second, frozen copy of the model as the reference. Memory: the policy's weights,
  gradients and AdamW's two moments (4x the weights or more) plus the reference (1x): a 7B
  model in bf16 (14 GB of weights) needs 70 GB or more before activations, where LoRA needs
  the 14 GB once plus small adapters and their optimizer state.
* **Precision**: bf16 on a CUDA GPU that supports it, fp32 on CPU (TRL's bf16 default fails
  there). ``max_length=None``: TRL's default 1024 would cut frame-heavy samples from the end
  (answers silently lost, or a cut inside the image tokens).
* **Outputs** (``output_dir``): the adapter (or full weights) and the processor,
  ``tpo_train_args.json`` (the resolved configuration), ``command.txt`` (the same run as
  ``tpo train`` / ``accelerate launch`` / ``torchrun`` command lines), ``metrics.jsonl`` (one
  JSON object per logged step), ``train_result.json`` (:class:`TrainResult`), and
  ``checkpoint-<step>/`` folders every ``save_steps`` (``resume`` continues from the last).
* **Processes**: ``python -m tpo.training.train`` trains in one process; the same module runs under
  ``accelerate launch --config_file configs/accelerate/<X>.yaml -m tpo.training.train ...`` (DDP, FSDP,
  DeepSpeed) or ``torchrun --nproc_per_node N -m tpo.training.train ...``. Only rank 0 writes files.
  On CPU, ``accelerate launch --num_processes 2 --cpu`` silently starts ONE process: use
  ``--multi_gpu --num_processes 2`` (gloo) or ``OMP_NUM_THREADS=1 torchrun ... --use-cpu``.
* **Job**: :func:`tpo.training.train_job.run_job` is the ``train`` job kind of :mod:`tpo.jobs`; it
  reports metrics and progress to the store, stops on cancel, and registers the result in
  ``models``.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import functools
import json
import logging
import os
import re
import shlex
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Iterable, Mapping, Sequence

from tpo.store import Store
from tpo.training.train_data import NO_DATA, TRAIN_COLUMNS, TrainError, cap_frames, check_data, load_pairs

# torch, transformers, TRL, PEFT and datasets are imported where they are used: the app
# process imports this module for TrainConfig and PRESETS (tpo.training.train_job for job_params) and
# must not load them (docs/architecture.md); MetricsCallback is built on first use (see
# __getattr__ below), so it is not in __all__: a star import would load transformers.

__all__ = ["LANGUAGE_LORA_TARGET", "MAIN_METRICS", "PRESETS", "TrainConfig", "TrainResult",
           "build_parser", "command_lines", "config_from_args", "hyperparameters", "main",
           "parse_command_line", "resolve", "train"]

logger = logging.getLogger("tpo.training.train")  # also when run as __main__

# The paper's hyper-parameters (Li et al. 2025, TPO): beta of DPO, alpha of the SFT term, lr.
PRESETS: Mapping[str, Mapping[str, float]] = {
    "longva": {"beta": 0.3, "alpha": 0.5, "learning_rate": 4e-6},  # LongVA-TPO (paper)
    "llava-video": {"beta": 0.2, "alpha": 1.0, "learning_rate": 3e-7},  # LLaVA-Video-TPO
}
HYPER_PARAMETERS = ("beta", "alpha", "learning_rate")

# PEFT full-matches this against module names. It accepts the decoder layers' projections of
# the language model only: SmolVLM / Idefics3 ``model.text_model.layers.N.self_attn.q_proj``,
# Qwen2-VL / LLaVA-OneVision (transformers 5) ``model.language_model.layers.N.mlp.up_proj``,
# older LLaVA layouts ``language_model.model.layers.N...``. Vision towers
# (``vision_model.encoder.layers``, ``visual.blocks``) and the connector never match.
LANGUAGE_LORA_TARGET = (r".*(?:language_model|text_model)\.(?:model\.)?layers\.\d+\."
                        r"(?:self_attn\.(?:q|k|v|o)_proj|mlp\.(?:gate|up|down)_proj)")

# Logged by TRL's DPOTrainer every logging step; the ones a job writes to the store.
MAIN_METRICS = ("loss", "rewards/accuracies", "rewards/margins", "rewards/chosen",
                "rewards/rejected", "logps/chosen", "logps/rejected", "learning_rate",
                "grad_norm")

ARGS_FILE = "tpo_train_args.json"
COMMAND_FILE = "command.txt"
METRICS_FILE = "metrics.jsonl"
RESULT_FILE = "train_result.json"
OOM = "out of GPU memory: lower --max-frames / batch size, or use LoRA"
ERROR_PREFIX = "tpo.training.train: error: "  # how main() reports a clear error; the job looks for it
_CHECKPOINT = re.compile(r"checkpoint-(\d+)")  # transformers' PREFIX_CHECKPOINT_DIR-<step>


# --------------------------------------------------------------------------------------------
# Configuration


def _help(text: str, **extra: Any) -> dict:
    return {"help": text, **extra}


@dataclass
class TrainConfig:
    """One TPO fine-tuning run (in the style of TRL's ``DPOConfig``: every field documented).

    ``beta``, ``alpha`` and ``learning_rate`` left at None come from ``preset``;
    :func:`resolve` gives the effective values. Paths may be relative to the working
    directory; :func:`resolve` makes them absolute.
    """

    # model and output_dir are required (checked below) but have an empty default, so a
    # YAML config (--config) may give them and the command line need not.
    model: str = field(default="", metadata=_help(
        "Base model: hub id or local folder of an image-text-to-text model (SmolVLM2, "
        "Qwen2-VL, LLaVA-OneVision, ...)."))
    data: str | None = field(default=None, metadata=_help(
        "The dataset: an export folder of `tpo export` (jsonl or parquet layout) or an "
        "embedded train.parquet. None only when train() is given a dataset."))
    output_dir: str = field(default="", metadata=_help(
        "Folder for the adapter (or weights), processor, checkpoints, metrics.jsonl, "
        "tpo_train_args.json and command.txt.", aliases=["--output"]))
    preset: str = field(default="longva", metadata=_help(
        f"Paper hyper-parameters to start from: {', '.join(PRESETS)} "
        "(longva: beta 0.3, alpha 0.5, lr 4e-6; llava-video: beta 0.2, alpha 1, lr 3e-7; "
        "configs/<preset>.yaml hold the same as files for --config).",
        choices=tuple(PRESETS)))
    beta: float | None = field(default=None, metadata=_help(
        "DPO beta: how far the model may move from the reference (higher = closer). "
        "None: the preset's."))
    alpha: float | None = field(default=None, metadata=_help(
        "Weight of the SFT term on the chosen answer (per-token mean NLL); 0 is plain DPO. "
        "None: the preset's."))
    dpo_weight: float = field(default=1.0, metadata=_help(
        "Weight of the DPO term; 0 (with alpha > 0) trains SFT on the chosen answers alone, "
        "an ablation of TPO."))
    learning_rate: float | None = field(default=None, metadata=_help(
        "Peak learning rate of AdamW. None: the preset's.", aliases=["--lr"]))
    num_train_epochs: float = field(default=1.0, metadata=_help(
        "Passes over the dataset (the paper: 1).", aliases=["--epochs"]))
    max_steps: int = field(default=-1, metadata=_help(
        "Stop after this many optimizer steps (overrides epochs); -1: run the epochs."))
    lr_scheduler_type: str = field(default="cosine", metadata=_help(
        "Learning-rate schedule (transformers' names: cosine, linear, constant, ...)."))
    warmup_ratio: float = field(default=0.1, metadata=_help(
        "Fraction of the steps spent warming the learning rate up linearly from 0, in [0, 1)."))
    per_device_train_batch_size: int = field(default=1, metadata=_help(
        "Pairs per process per forward pass.", aliases=["--batch-size"]))
    gradient_accumulation_steps: int = field(default=1, metadata=_help(
        "Forward passes per optimizer step (effective batch = batch size x this x processes)."))
    lora: bool = field(default=True, metadata=_help(
        "Train LoRA adapters (PEFT) instead of all weights; --full trains all weights."))
    lora_r: int = field(default=64, metadata=_help("LoRA rank."))
    lora_alpha: int = field(default=128, metadata=_help(
        "LoRA scaling numerator (the update is scaled by lora_alpha / lora_r)."))
    lora_dropout: float = field(default=0.05, metadata=_help("Dropout on the LoRA input."))
    lora_target: str = field(default=LANGUAGE_LORA_TARGET, metadata=_help(
        "Regex (full match) of the module names that get LoRA adapters; the default takes "
        "the language model's attention and MLP projections, never the vision tower."))
    max_frames: int | None = field(default=None, metadata=_help(
        "Use at most this many frames per pair (evenly spaced, so a whole-video export stays "
        "uniform over the video; the time prompt follows); None: all the export holds."))
    gradient_checkpointing: bool = field(default=True, metadata=_help(
        "Recompute activations in the backward pass: far less memory, about a third more "
        "time."))
    save_steps: int = field(default=100, metadata=_help(
        "Write a checkpoint (resumable with --resume) every this many steps."))
    save_total_limit: int | None = field(default=2, metadata=_help(
        "Keep at most this many checkpoints (a full fine-tune's hold weights and optimizer "
        "state: many GB each); None keeps all."))
    logging_steps: int = field(default=1, metadata=_help(
        "Log loss, rewards and log-probabilities every this many steps."))
    seed: int = field(default=0, metadata=_help("Seed of the LoRA init, data order and dropout."))
    resume: bool = field(default=False, metadata=_help(
        "Continue from the last checkpoint in output_dir (starts afresh when there is none)."))
    overwrite: bool = field(default=False, metadata=_help(
        "Start afresh in an output_dir that holds an earlier run (its checkpoints are "
        "deleted); without it such a folder is refused, so no run is lost by accident."))
    # Given as auto / true / false; __post_init__ stores True, False or "auto".
    bf16: str = field(default="auto", metadata=_help(
        "bf16 mixed precision: auto (on a CUDA GPU that supports it, never on CPU), true, "
        "false.", choices=("auto", "true", "false")))
    use_cpu: bool | None = field(default=None, metadata=_help(
        "Train on the CPU; None (auto): when no CUDA GPU is available.",
        nargs="?", const=True))  # a bare --use-cpu means true
    cache_dir: str | None = field(default=None, metadata=_help(
        "Where `datasets` caches the loaded export; None: its default (HF_DATASETS_CACHE)."))

    def __post_init__(self) -> None:
        if isinstance(self.bf16, str):
            value = self.bf16.strip().lower()
            if value not in ("auto", "true", "false"):
                raise ValueError(f"bf16 must be auto, true or false, got {self.bf16!r}")
            self.bf16 = "auto" if value == "auto" else value == "true"
        if self.preset not in PRESETS:
            raise ValueError(f"preset must be one of {', '.join(PRESETS)}, got {self.preset!r}")
        if not self.model:
            raise ValueError("model is required")
        if not self.output_dir:
            raise ValueError("output_dir is required")
        for name in ("beta", "learning_rate"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be > 0, got {value}")
        if self.alpha is not None and not self.alpha >= 0:
            raise ValueError(f"alpha must be >= 0, got {self.alpha}")
        if not self.dpo_weight >= 0:
            raise ValueError(f"dpo_weight must be >= 0, got {self.dpo_weight}")
        if self.dpo_weight == 0 and self.alpha == 0:
            raise ValueError("dpo_weight 0 and alpha 0 leave no loss to train on")
        if not self.num_train_epochs > 0:
            raise ValueError(f"num_train_epochs must be > 0, got {self.num_train_epochs}")
        if self.max_steps != -1 and self.max_steps < 1:
            raise ValueError(f"max_steps must be -1 (use epochs) or >= 1, got {self.max_steps}")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if not 0 <= self.lora_dropout < 1:
            raise ValueError(f"lora_dropout must be in [0, 1), got {self.lora_dropout}")
        for name in ("per_device_train_batch_size", "gradient_accumulation_steps", "lora_r",
                     "lora_alpha", "save_steps", "logging_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("max_frames", "save_total_limit"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 or None, got {value}")
        try:
            re.compile(self.lora_target)
        except re.error as err:
            raise ValueError(f"lora_target is not a valid regex: {err}") from err
        if self.resume and self.overwrite:
            raise ValueError("resume and overwrite contradict each other: pick one")


@dataclass
class TrainResult:
    """What a finished run produced (also written to ``output_dir/train_result.json``)."""

    output_dir: Path
    global_step: int  # optimizer steps taken in total (a resumed run counts the earlier ones)
    metrics_path: Path
    train_runtime_s: float  # seconds of trainer.train() in this process (this session only)
    world_size: int  # processes that trained together (2 for a 2-rank torchrun)
    resumed_from: str | None = None  # the checkpoint folder this session started from
    final_loss: float | None = None  # the last logged training loss

    def as_dict(self) -> dict:
        d = asdict(self)
        d.update(output_dir=str(self.output_dir), metrics_path=str(self.metrics_path))
        return d


def hyperparameters(config: TrainConfig) -> dict[str, float]:
    """beta, alpha and learning_rate as the run uses them: the preset's unless overridden."""
    return {name: PRESETS[config.preset][name] if getattr(config, name) is None
            else getattr(config, name) for name in HYPER_PARAMETERS}


def resolve(config: TrainConfig) -> dict:
    """The run's effective settings: the config with the preset's beta / alpha / lr filled
    in, bf16 and use_cpu decided for this machine (imports torch to ask about CUDA), and
    local paths made absolute."""
    import torch

    out = asdict(config)
    out.update(hyperparameters(config))
    use_cpu = (not torch.cuda.is_available()) if config.use_cpu is None else bool(config.use_cpu)
    out["use_cpu"] = use_cpu
    if config.bf16 == "auto":
        out["bf16"] = (not use_cpu) and torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    elif config.bf16 and use_cpu:
        raise ValueError("bf16 training needs a CUDA GPU: leave --bf16 auto on CPU")
    out["output_dir"] = str(Path(config.output_dir).expanduser().resolve())
    for name in ("data", "model", "cache_dir"):
        value = out[name]
        if value and (name != "model" or Path(value).expanduser().exists()):
            out[name] = str(Path(value).expanduser().resolve())
    return out


# --------------------------------------------------------------------------------------------
# Callbacks


@functools.cache  # one class object per process, so isinstance() and pickling agree
def callback_classes() -> SimpleNamespace:
    """The TrainerCallback subclasses, defined when first needed (transformers loads here)."""
    from transformers import TrainerCallback

    class MetricsCallback(TrainerCallback):
        """Appends every log of the trainer to ``path`` (JSON lines, rank 0 only) and calls
        ``fn(step, logs)`` (rank 0 only), e.g. to write the metrics to the job's store.

        A per-step row holds step, epoch, loss, rewards/*, logps/*, learning_rate, grad_norm...;
        the last row of a run is the trainer's summary (train_runtime, train_loss).
        """

        def __init__(self, path: str | os.PathLike,
                     fn: Callable[[int, dict], None] | None = None):
            self.path = Path(path)
            self.fn = fn

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not state.is_world_process_zero or not logs:
                return
            row = {"step": state.global_step, "epoch": state.epoch, **logs}
            # Appended and closed each time: a crash loses at most the line being written.
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(row, default=float) + "\n")
            if self.fn is not None:
                self.fn(state.global_step, logs)

    class JobReporter(TrainerCallback):
        """Rank 0's reports to a job: metrics to the store, "step i/N · loss x · ETA" progress,
        and a stop at the next step boundary once cancel was requested."""

        def __init__(self, ctx):
            self.ctx = ctx
            self.loss: float | None = None  # the last logged loss
            self.total = 1  # optimizer steps of the whole run
            # (monotonic s, global step) when this session began: a resumed run starts past 0
            self.started: tuple[float, int] | None = None

        def on_metrics(self, step: int, logs: dict) -> None:
            """MetricsCallback's fn (rank 0): every logged step; runs after on_step_end."""
            for name in MAIN_METRICS:
                value = logs.get(name)
                if isinstance(value, (int, float)):
                    self.ctx.metric(step, name, float(value))
            if isinstance(logs.get("loss"), (int, float)):
                self.loss = float(logs["loss"])
                self._progress(step)  # again, now with this step's loss

        def on_train_begin(self, args, state, control, **kwargs):
            self.total = max(state.max_steps, 1)
            self.started = (time.monotonic(), state.global_step)
            self.ctx.check_cancelled()
            if state.is_world_process_zero:
                self.ctx.progress(state.global_step / self.total,
                                  f"step {state.global_step}/{self.total} · starting")

        def on_step_end(self, args, state, control, **kwargs):
            # Raises JobCancelled: the run stops between two optimizer steps, before any
            # further checkpoint or the final save, and the job is recorded as cancelled.
            self.ctx.check_cancelled()
            if state.is_world_process_zero:
                self._progress(state.global_step)

        def _progress(self, step: int) -> None:
            parts = [f"step {step}/{self.total}"]
            if self.loss is not None:
                parts.append(f"loss {self.loss:.4f}")
            if self.started is not None and step > self.started[1]:
                per_step = (time.monotonic() - self.started[0]) / (step - self.started[1])
                parts.append(f"ETA {_duration(per_step * (self.total - step))}")
            self.ctx.progress(step / self.total, " · ".join(parts))

    for cls in (MetricsCallback, JobReporter):
        cls.__module__, cls.__qualname__ = __name__, cls.__name__  # as if defined at top level
    return SimpleNamespace(MetricsCallback=MetricsCallback, JobReporter=JobReporter)


def __getattr__(name: str) -> Any:
    """``tpo.training.train.MetricsCallback`` (PEP 562): built on first access (:func:`callback_classes`)."""
    if name == "MetricsCallback":
        return callback_classes().MetricsCallback
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def log_handler(stream=None) -> logging.Handler:
    """Our log lines as "time tpo.training.train: message" (only tpo.training.train's: the libraries keep
    their own verbosity)."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s"))
    return handler


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"


# --------------------------------------------------------------------------------------------
# Training


def train(config: TrainConfig, *, callbacks: Iterable = (), dataset=None) -> TrainResult:
    """Run TPO (DPO + alpha * SFT) with TRL's DPOTrainer; see the module docstring.

    ``callbacks`` are ``transformers.TrainerCallback`` instances added to the trainer's.
    ``dataset`` (a ``datasets.Dataset`` in the export's layout) replaces ``config.data``.
    A callback with an ``on_metrics(step, logs)`` method also gets every log on rank 0.
    Raises TrainError with a clear message for no data, GPU out of memory and a full disk;
    ModelLoadError when the model cannot be loaded.
    """
    settings = resolve(config)
    out = Path(settings["output_dir"])
    with _clear_errors(out):
        return _train(config, settings, out, list(callbacks), dataset)


def _train(config: TrainConfig, settings: dict, out: Path, callbacks: list,
           dataset) -> TrainResult:
    import torch
    from peft import LoraConfig
    from trl import DPOConfig, DPOTrainer

    from tpo.models.vlm import load_model, configure_for_frames

    if dataset is None:
        check_data(config.data)  # before the model loads
    args = DPOConfig(
        output_dir=str(out),
        # TPO's objective: sigmoid DPO + alpha x SFT (mean NLL of the chosen answer's tokens).
        loss_type=["sigmoid", "sft"], loss_weights=[config.dpo_weight, settings["alpha"]],
        beta=settings["beta"], learning_rate=settings["learning_rate"],
        max_length=None,  # the default 1024 silently cuts frame-heavy samples: never truncate
        num_train_epochs=config.num_train_epochs, max_steps=config.max_steps,
        lr_scheduler_type=config.lr_scheduler_type,
        warmup_steps=config.warmup_ratio,  # transformers 5: a float < 1 is a ratio of the steps
        per_device_train_batch_size=config.per_device_train_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        # transformers 5's name for gradient checkpointing (the old one is a deprecated alias)
        activation_checkpointing=config.gradient_checkpointing,
        save_strategy="steps", save_steps=config.save_steps,
        save_total_limit=config.save_total_limit,
        logging_steps=config.logging_steps, seed=config.seed,
        bf16=settings["bf16"], use_cpu=settings["use_cpu"],
        report_to="none",
        # Progress bars are \r-lines: in a job's log file, print the logs as lines instead.
        disable_tqdm=not sys.stderr.isatty(),
    )
    is_main = args.process_index == 0
    resume_from = _prepare_output(out, config, is_main)
    if is_main:
        _write_json(out / ARGS_FILE, settings)
        (out / COMMAND_FILE).write_text(command_lines(config), encoding="utf-8")

    # Rank 0 builds the datasets cache first; the others then read it instead of racing it.
    with args.main_process_first(local=False, desc="loading the dataset"):
        if dataset is None:
            dataset = load_pairs(settings["data"], max_frames=config.max_frames,
                                 cache_dir=settings["cache_dir"])
        else:
            if len(dataset) == 0:
                raise TrainError(NO_DATA)
            if config.max_frames is not None:
                dataset = cap_frames(dataset, config.max_frames)
            dataset = dataset.select_columns([c for c in TRAIN_COLUMNS
                                              if c in dataset.column_names])
    if is_main:
        logger.info("training on %d pairs from %s", len(dataset), settings["data"] or "a dataset")

    dtype = torch.bfloat16 if settings["bf16"] else torch.float32
    model, processor = load_model(config.model, dtype)
    configure_for_frames(processor)  # one tile per frame, as the pairs were generated
    peft_config = None
    if config.lora:
        targets = [n for n, _ in model.named_modules() if re.fullmatch(config.lora_target, n)]
        if not targets:
            raise TrainError(f"--lora-target {config.lora_target!r} matches no module of "
                             f"{config.model}: give a regex of its language model's projections")
        peft_config = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha,
                                 lora_dropout=config.lora_dropout,
                                 target_modules=config.lora_target)
    else:
        _freeze_vision(model)

    metrics_path = out / METRICS_FILE
    reporters = [c for c in callbacks if hasattr(c, "on_metrics")]

    def on_metrics(step: int, logs: dict) -> None:
        for reporter in reporters:
            reporter.on_metrics(step, logs)

    trainer = DPOTrainer(
        model=model,
        ref_model=None,  # LoRA: the base with adapters disabled; full: TRL loads a frozen copy
        args=args, train_dataset=dataset, processing_class=processor, peft_config=peft_config,
        callbacks=[callback_classes().MetricsCallback(metrics_path, on_metrics), *callbacks])
    if resume_from and is_main:
        logger.info("resuming from %s", resume_from)
    started = time.monotonic()
    output = trainer.train(resume_from_checkpoint=resume_from)
    runtime = time.monotonic() - started
    trainer.save_model(str(out))  # adapter (or weights) + processor; every rank must call it
    trainer.accelerator.wait_for_everyone()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    result = TrainResult(output_dir=out, global_step=trainer.state.global_step,
                         metrics_path=metrics_path,
                         train_runtime_s=float(output.metrics.get("train_runtime", runtime)),
                         world_size=trainer.accelerator.num_processes,
                         resumed_from=resume_from, final_loss=losses[-1] if losses else None)
    if is_main:
        _write_json(out / RESULT_FILE, result.as_dict())
        logger.info("trained %d steps in %.1f s on %d process(es): %s", result.global_step,
                    result.train_runtime_s, result.world_size, out)
    return result


def _prepare_output(out: Path, config: TrainConfig, is_main: bool) -> str | None:
    """The checkpoint to resume from (or None); refuses to clobber an earlier run.

    Every rank decides the same: nothing that the check looks at (checkpoints, the final
    result) is written by rank 0 before all ranks have taken their first step together.
    """
    out.mkdir(parents=True, exist_ok=True)
    last = _last_checkpoint(out)
    if config.resume:
        if last is None:
            logger.info("nothing to resume in %s: starting afresh", out)
        elif is_main:
            _trim_metrics(out / METRICS_FILE, _checkpoint_step(last))
        if last is None and is_main:
            (out / METRICS_FILE).unlink(missing_ok=True)
        return last
    refuse_earlier_run(out, config)
    if is_main:
        if config.overwrite:
            for old in _checkpoints(out):
                shutil.rmtree(old, ignore_errors=True)
            (out / RESULT_FILE).unlink(missing_ok=True)
        (out / METRICS_FILE).unlink(missing_ok=True)
    return None


def _checkpoints(out: Path) -> list[Path]:
    """The Trainer's ``checkpoint-<step>`` folders in ``out``, by step."""
    found = [p for p in out.glob("checkpoint-*") if _CHECKPOINT.fullmatch(p.name) and p.is_dir()]
    return sorted(found, key=lambda p: _checkpoint_step(str(p)))


def _last_checkpoint(out: Path) -> str | None:
    found = _checkpoints(out) if out.is_dir() else []
    return str(found[-1]) if found else None


def _checkpoint_step(path: str) -> int:
    return int(Path(path).name.rsplit("-", 1)[1])


def refuse_earlier_run(out: Path, config: TrainConfig) -> None:
    """TrainError when ``out`` holds a run (checkpoints or a finished result) that this
    config would clobber: neither resume nor overwrite."""
    if config.resume or config.overwrite or not out.is_dir():
        return
    if _last_checkpoint(out) is not None or (out / RESULT_FILE).is_file():
        raise TrainError(f"{out} already holds a training run: pass --resume to continue it, "
                         "--overwrite to start afresh there, or choose another --output")


def _trim_metrics(path: Path, step: int) -> None:
    """Drop rows logged after ``step``: the resumed run logs those steps again."""
    if not path.is_file():
        return
    kept = [line for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and json.loads(line).get("step", 0) <= step]
    path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")


def _freeze_vision(model) -> None:
    """Full fine-tune: the vision encoder stays as it is (TPO trains the language side)."""
    encoder = model.get_encoder(modality="image") if hasattr(model, "get_encoder") else None
    if encoder is None or encoder is model:
        logger.warning("no vision encoder found in %s: nothing frozen", type(model).__name__)
        return
    for param in encoder.parameters():
        param.requires_grad_(False)


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    tmp.replace(path)  # a reader never sees half a file


class _clear_errors:
    """Turns GPU OOM and a full disk into TrainError with what to do."""

    def __init__(self, out: Path):
        self.out = out

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is None:
            return False
        torch = sys.modules.get("torch")  # not loaded yet: the error cannot be a CUDA OOM
        oom = torch.cuda.OutOfMemoryError if torch is not None else ()
        if isinstance(exc, oom) or (
                isinstance(exc, RuntimeError) and "CUDA out of memory" in str(exc)):
            raise TrainError(OOM) from exc
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            raise TrainError(f"disk full while writing under {self.out}: free some space or "
                             "choose another --output") from exc
        return False


# --------------------------------------------------------------------------------------------
# Command line


def _cli_flags(f: dataclasses.Field) -> tuple[str, ...]:
    """The field's options, the short alias first (what command.txt writes)."""
    return (*f.metadata.get("aliases", ()), "--" + f.name.replace("_", "-"))


def build_parser(prog: str = "python -m tpo.training.train", description: str | None = None):
    """The command line of :class:`TrainConfig`: TRL's ``TrlParser`` (transformers'
    ``HfArgumentParser``) makes one option per field (``--name``, ``--name-with-dashes`` and the
    field's ``aliases``; help, choices from its metadata) and reads ``--config FILE.yaml``
    (:func:`parse_command_line`); plus ``--full`` (= ``--no-lora``)."""
    from trl import TrlParser  # loads transformers' argument parser, not torch

    parser = TrlParser(TrainConfig, prog=prog, description=description or (
        "TPO fine-tuning (DPO + alpha * SFT) of a video-LM on exported pairs. Runs as is, or "
        "under `accelerate launch -m tpo.training.train` / `torchrun -m tpo.training.train` for several "
        "processes."))
    parser.add_argument("--config", metavar="FILE", default=None,
                        help="A YAML file of these settings, keyed by field name (e.g. "
                             "configs/longva.yaml, the paper's LongVA-TPO settings); options "
                             "given on the command line win over it.")
    parser.add_argument("--full", dest="lora", action="store_false",
                        help="Full fine-tune (all language-model weights; the vision encoder "
                             "stays frozen) instead of LoRA.")
    # Set by tpo.training.train_job.run_job when it launches this module: rank 0 reports to that job.
    parser.add_argument("--job-db", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--job-id", type=int, default=None, help=argparse.SUPPRESS)
    return parser


def parse_command_line(parser, argv: Sequence[str] | None) -> tuple[TrainConfig, argparse.Namespace]:
    """(the config, the parser's other options) from ``argv``: a ``--config`` YAML file sets
    the fields first, options on the command line override it. A bad value, an unknown key in
    the file or an unreadable file end the command with a usage error (exit status 2)."""
    try:
        config, *rest = parser.parse_args_and_config(argv)
    except ValueError as err:
        parser.error(str(err))
    except OSError as err:
        parser.error(f"cannot read --config: {err}")
    others = rest[0] if rest else argparse.Namespace()
    if getattr(others, "config", None) is not None:  # TrlParser reads "--config FILE" only
        parser.error("give the YAML file as --config FILE")
    return config, others


def config_from_args(ns: argparse.Namespace) -> TrainConfig:
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in vars(ns).items() if k in names})


def cli_args(config: TrainConfig) -> list[str]:
    """The options that give ``config`` on the command line (defaults left out)."""
    settings = asdict(config)
    for name in ("model", "data", "output_dir", "cache_dir"):
        value = settings[name]
        if value and (name != "model" or Path(value).expanduser().exists()):
            settings[name] = str(Path(value).expanduser().resolve())
    out: list[str] = []
    for f in dataclasses.fields(TrainConfig):
        value, default = settings[f.name], f.default
        flag = _cli_flags(f)[0]
        if f.name in ("model", "data", "output_dir"):
            if value is not None:
                out += [flag, str(value)]
        elif value == default or value is None:
            continue
        elif f.name == "lora":
            out.append("--lora" if value else "--full")
        elif f.name == "bf16":
            out += [flag, str(value).lower()]
        elif isinstance(value, bool):
            out.append(flag if value else "--no-" + flag[2:])
        else:
            out += [flag, str(value)]
    return out


def command_lines(config: TrainConfig, world_size: int | None = None) -> str:
    """command.txt: this run as ``tpo train``, ``accelerate launch`` and ``torchrun``."""
    args = shlex.join(cli_args(config))
    n = world_size or 2
    return (
        "# This training run, as a command (one process):\n"
        f"tpo train {args}\n"
        f"python -m tpo.training.train {args}\n"
        "# On several GPUs: pick a config in configs/accelerate/ (DDP, FSDP, DeepSpeed).\n"
        f"accelerate launch --config_file configs/accelerate/multi_gpu_ddp.yaml "
        f"--num_processes {n} -m tpo.training.train {args}\n"
        "# Several CPU processes (gloo); `accelerate launch --cpu` would start only one.\n"
        f"OMP_NUM_THREADS=1 torchrun --nproc_per_node {n} -m tpo.training.train {args} --use-cpu\n"
        "# Add --resume to continue from the last checkpoint in the output folder.\n")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tpo.training.train ...`` (also under accelerate launch / torchrun)."""
    parser = build_parser()
    config, ns = parse_command_line(parser, argv)
    logger.addHandler(log_handler())  # this process is ours: our INFO lines to stderr
    logger.setLevel(logging.INFO)
    reporter = ctx = None
    rank = int(os.environ.get("RANK", "0"))
    if ns.job_db and ns.job_id is not None and rank == 0:
        from tpo.jobs import JobContext

        ctx = JobContext(ns.job_id, Store(ns.job_db), {})
        reporter = callback_classes().JobReporter(ctx)
    from tpo.models.vlm import ModelLoadError

    try:
        result = train(config, callbacks=[reporter] if reporter else ())
    except (TrainError, ModelLoadError) as err:  # clear already: no traceback needed
        print(ERROR_PREFIX + str(err), file=sys.stderr, flush=True)
        return 2
    finally:
        if ctx is not None:
            ctx.close()
    if rank == 0:
        print(f"trained {result.global_step} steps on {result.world_size} process(es) in "
              f"{result.train_runtime_s:.1f} s; saved to {result.output_dir}", flush=True)
    return 0


if __name__ == "__main__":
    # Run the imported module's main, not this __main__ copy's (as tpo.jobs does): the
    # classes the run uses are then tpo.training.train's, whoever else imports them.
    from tpo.training.train import main as _main

    sys.exit(_main())
