"""Fine-tune a video-LM on exported preference pairs: TPO = DPO + an SFT term, with TRL.

The objective (the TPO paper's, arXiv 2501.13919) is
``L = L_DPO(beta) + alpha * L_SFT(chosen)``. TRL's ``DPOTrainer`` computes exactly that
with ``loss_type=["sigmoid", "sft"]`` and ``loss_weights=[1.0, alpha]``; nothing here computes a loss, and several processes are always
started by ``accelerate launch`` or ``torchrun``, never by a launcher of our own. For
ablations, ``dpo_weight`` scales the DPO term (``loss_weights=[dpo_weight, alpha]``): 0 trains
SFT on the chosen answers alone, and ``alpha=0`` is plain DPO.

* **Configuration**: :class:`TrainConfig` is TRL's ``DPOConfig`` plus
  :class:`tpo.training.config.TPOArguments`, built on first use (:func:`train_config_class`:
  DPOConfig imports torch). It is the trainer's ``args`` itself. Outside the training
  process a run is a plain dict of options (:mod:`tpo.training.config`), which
  :func:`make_config` turns into a TrainConfig and :func:`cli_args` into command lines.
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
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

from tpo.store import Store
from tpo.training.config import (HYPER_PARAMETERS, LANGUAGE_LORA_TARGET, PRESETS, TRAINER_ALIASES,
                                 TRAINER_DEFAULTS, TPOArguments, check_options, hyperparameters,
                                 normalize_options, tpo_field_names)
from tpo.training.config import cli_args as config_cli_args
from tpo.training.train_data import NO_DATA, TRAIN_COLUMNS, TrainError, cap_frames, check_data, load_pairs

# torch, transformers, TRL, PEFT and datasets are imported where they are used: the app
# process imports this module (tpo.training.train_job for job_params) and must not load them
# (docs/architecture.md). TrainConfig (a DPOConfig, so torch) and MetricsCallback are built on
# first use (see __getattr__ below), so they are not in __all__: a star import would load torch.

__all__ = ["LANGUAGE_LORA_TARGET", "MAIN_METRICS", "PRESETS", "TrainResult", "build_parser",
           "cli_args", "command_lines", "config_from_args", "hyperparameters", "main",
           "make_config", "parse_command_line", "parse_options", "resolve", "train",
           "train_config_class"]

logger = logging.getLogger("tpo.training.train")  # also when run as __main__

if TYPE_CHECKING:  # for annotations: the class itself is train_config_class()'s
    from trl import DPOConfig as TrainConfig

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


def _default(f: dataclasses.Field) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None if f.default is dataclasses.MISSING else f.default


def _post_init(self) -> None:
    """TrainConfig.__post_init__: TPO's checks and rules, then DPOConfig's own."""
    from trl import DPOConfig
    import torch

    # What was given (a field away from its default), before anything below fills it in:
    # command lines (command.txt, a job's "command") and job parameters are made of it.
    self.options = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                    if f.init and getattr(self, f.name) != _default(f)}
    check_options({**self.options, "output_dir": self.output_dir})  # TPOArguments' too
    for name, value in hyperparameters(self.options).items():  # the preset's, unless given
        setattr(self, name, value)
    # TPO's objective: sigmoid DPO + alpha x SFT (mean NLL of the chosen answer's tokens).
    loss_type, loss_weights = ["sigmoid", "sft"], [self.dpo_weight, self.alpha]
    if self.loss_type not in (["sigmoid"], "sigmoid", loss_type) or \
            self.loss_weights not in (None, loss_weights):
        raise ValueError("loss_type and loss_weights are TPO's (sigmoid DPO + alpha x SFT): "
                         "set --alpha and --dpo-weight instead")
    self.loss_type, self.loss_weights = loss_type, loss_weights
    self.output_dir = str(Path(self.output_dir).expanduser().resolve())
    if not self.use_cpu and not torch.cuda.is_available():
        self.use_cpu = True
    self.bf16 = normalize_options({"bf16": self.bf16})["bf16"]  # "auto" / "true" / "false"
    if self.bf16 is None:  # TRL's None means bf16, which fails on CPU: bf16 where it works
        self.bf16 = (not self.use_cpu) and torch.cuda.is_bf16_supported()
    elif self.bf16 and self.use_cpu:
        raise ValueError("bf16 training needs a CUDA GPU: leave --bf16 out on CPU")
    if self.activation_checkpointing is None:
        # transformers 5's name; TRL's gradient_checkpointing (default on) is the old one
        # and would warn that it is deprecated on every run.
        self.activation_checkpointing = self.gradient_checkpointing
    if self.disable_tqdm is None:
        # Progress bars are \r-lines: in a job's log file, print the logs as lines instead.
        self.disable_tqdm = not sys.stderr.isatty()
    DPOConfig.__post_init__(self)


@functools.cache  # one class per process, so isinstance() and pickling agree
def train_config_class() -> type:
    """:class:`TrainConfig`, built on first use: TRL's ``DPOConfig`` (which imports torch)
    plus :class:`~tpo.training.config.TPOArguments`.

    DPOConfig's fields stay DPOConfig's (type, help, checks); TPO only changes the defaults
    of some (:data:`~tpo.training.config.TRAINER_DEFAULTS`: None for beta and learning_rate,
    meaning the preset's) and adds short options (:data:`~tpo.training.config.TRAINER_ALIASES`).
    """
    from trl import DPOConfig

    base = {f.name: f for f in dataclasses.fields(DPOConfig)}
    changed = []
    for name in {*TRAINER_DEFAULTS, *TRAINER_ALIASES}:
        f = base[name]
        default = TRAINER_DEFAULTS[name] if name in TRAINER_DEFAULTS else _default(f)
        kind = f.type if default is not None else f.type | None
        metadata = dict(f.metadata)
        if name in TRAINER_ALIASES:
            metadata["aliases"] = list(TRAINER_ALIASES[name])
        if name in TRAINER_DEFAULTS and default is None and "help" in metadata:
            metadata["help"] += (" None: the preset's." if name in HYPER_PARAMETERS
                                 else " None: no limit.")
        changed.append((name, kind, field(default=default, metadata=metadata)))
    cls = dataclasses.make_dataclass(
        "TrainConfig", sorted(changed), bases=(TPOArguments, DPOConfig),
        namespace={"__post_init__": _post_init, "__module__": __name__, "__doc__": (
            "One TPO fine-tuning run: TRL's DPOConfig (every trainer setting) plus "
            "TPOArguments (model, data, preset, alpha, LoRA, frames, resume). beta, alpha and "
            "learning_rate left at None come from the preset; ``options`` holds the settings "
            "given (away from their defaults), from which command lines are made.")})
    cls.__qualname__ = "TrainConfig"
    return cls


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


# The settings a run's record (tpo_train_args.json, the model's params in the store) always
# holds, besides TPO's fields and those given.
SETTINGS = ("output_dir", *HYPER_PARAMETERS, *TRAINER_DEFAULTS, "max_steps",
            "gradient_accumulation_steps", "activation_checkpointing", "bf16", "use_cpu")


def resolve(config) -> dict:
    """The run's effective settings (JSON): TPO's fields, the preset's beta / alpha / lr
    filled in, bf16 and use_cpu as decided for this machine, local paths absolute, and the
    trainer settings TPO sets or that were given."""
    trainer = config.to_dict()  # DPOConfig's, JSON-ready (enums as their values)
    names = [*tpo_field_names(), *SETTINGS, *(k for k in config.options if k not in SETTINGS)]
    out = {name: trainer[name] if name in trainer else getattr(config, name)
           for name in dict.fromkeys(names)}
    for name in ("data", "model", "cache_dir"):
        value = out[name]
        if value and (name != "model" or Path(value).expanduser().exists()):
            out[name] = str(Path(value).expanduser().resolve())
    return out


def make_config(options: Mapping[str, Any]):
    """The TrainConfig of run options (a job's parameters): ValueError when one is wrong,
    TypeError for an unknown setting."""
    return train_config_class()(**normalize_options(options))

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
    """``tpo.training.train.MetricsCallback`` and ``TrainConfig`` (PEP 562): built on first
    access (:func:`callback_classes`, :func:`train_config_class`)."""
    if name == "MetricsCallback":
        return callback_classes().MetricsCallback
    if name == "TrainConfig":
        return train_config_class()
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
    from trl import DPOTrainer

    from tpo.models.vlm import load_model, configure_for_frames

    if dataset is None:
        check_data(config.data)  # before the model loads
    # The run's DPOConfig is the config itself (TPO's objective, precision and paths were
    # settled when it was built, see TrainConfig.__post_init__).
    args = config
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
    refuse_earlier_run(out, config.resume, config.overwrite)
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


def refuse_earlier_run(out: Path, resume: bool, overwrite: bool) -> None:
    """TrainError when ``out`` holds a run (checkpoints or a finished result) that a run
    would clobber: neither resume nor overwrite."""
    if resume or overwrite or not out.is_dir():
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


def build_parser(prog: str = "python -m tpo.training.train", description: str | None = None):
    """The command line of :class:`TrainConfig`: TRL's ``TrlParser`` (transformers'
    ``HfArgumentParser``) makes one option per field - DPOConfig's and TPO's - (``--name``,
    ``--name-with-dashes`` and the short aliases; help, choices from the field) and reads
    ``--config FILE.yaml`` (:func:`parse_options`); plus ``--full`` (= ``--no-lora``).
    Builds :class:`TrainConfig`, so it imports torch (not CUDA)."""
    from trl import TrlParser

    parser = TrlParser(train_config_class(), prog=prog, description=description or (
        "TPO fine-tuning (DPO + alpha * SFT) of a video-LM on exported pairs. Runs as is, or "
        "under `accelerate launch -m tpo.training.train` / `torchrun -m tpo.training.train` "
        "for several processes. Every option of TRL's DPOConfig is accepted; TPO changes "
        "some defaults (the paper's schedule; beta and lr from --preset)."))
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


def parse_options(parser, argv: Sequence[str] | None) -> tuple[dict, argparse.Namespace]:
    """(the run options given, the parser's other options) from ``argv``, as TrlParser reads
    them: a ``--config`` YAML file sets the fields first, options on the command line override
    it. Builds no TrainConfig (no device is set up): ``tpo train`` submits the options as a
    job. An unreadable file, an unknown key or a bad value end the command with a usage error
    (exit status 2)."""
    import yaml

    defaults = _defaults(parser)
    args = list(sys.argv[1:] if argv is None else argv)
    if "--config" in args:  # as TrlParser.parse_args_and_config, without its dataclass step
        at = args.index("--config")
        if at + 1 >= len(args):
            parser.error("give the YAML file as --config FILE")
        path = args.pop(at + 1)
        args.pop(at)
        try:
            with open(path, encoding="utf-8") as f:
                values = yaml.safe_load(f)
        except OSError as err:
            parser.error(f"cannot read --config: {err}")
        except yaml.YAMLError as err:
            parser.error(f"--config {path} is not YAML: {err}")
        if not isinstance(values, dict):
            parser.error(f"Config file {path} must contain a YAML mapping.")
        for key, value in (values.pop("env", None) or {}).items():  # TrlParser's env: block
            os.environ[key] = str(value)
        unknown = parser.set_defaults_with_config(**normalize_options(values))
        if unknown:
            parser.error(f"Unknown arguments from config file: {unknown}")
    ns, unknown = parser.parse_known_args(args)
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if getattr(ns, "config", None) is not None:  # --config=FILE: read as "--config FILE" only
        parser.error("give the YAML file as --config FILE")
    return _options(ns, defaults), ns


def _options(ns: argparse.Namespace, defaults: Mapping[str, Any]) -> dict:
    """The TrainConfig fields in ``ns`` away from the command line's ``defaults`` (the
    parser's own: for a few fields they differ from the dataclass's, e.g. an empty list)."""
    return {k: v for k, v in vars(ns).items() if k in defaults and v != defaults[k]}


def _defaults(parser) -> dict:
    """What the parser gives each TrainConfig field when no option is given (before a
    --config file changes them); argparse converts string defaults with the option's type."""
    names = {f.name for f in dataclasses.fields(train_config_class()) if f.init}
    return {k: v for k, v in vars(parser.parse_known_args([])[0]).items() if k in names}


def parse_command_line(parser, argv: Sequence[str] | None) -> tuple[Any, argparse.Namespace]:
    """(the TrainConfig, the parser's other options) from ``argv`` (see :func:`parse_options`);
    a value TrainConfig refuses is a usage error too."""
    options, others = parse_options(parser, argv)
    try:
        return make_config(options), others
    except ValueError as err:
        parser.error(str(err))


def config_from_args(ns: argparse.Namespace):
    """The TrainConfig of a namespace of :func:`build_parser` (no --config file)."""
    return make_config(_options(ns, _defaults(build_parser())))


def cli_args(config) -> list[str]:
    """The options that give ``config`` (a TrainConfig or run options) on the command line:
    those given, defaults left out."""
    return config_cli_args(config if isinstance(config, Mapping) else config.options)


def command_lines(config, world_size: int | None = None) -> str:
    """command.txt: this run (a TrainConfig or run options) as ``tpo train``,
    ``accelerate launch`` and ``torchrun`` command lines."""
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
