"""What a TPO fine-tune is configured with, declared without loading torch.

A run's configuration is :class:`tpo.training.train.TrainConfig`: TRL's ``DPOConfig`` (every
trainer setting - learning rate, epochs, batch size, schedule, checkpoints, precision, beta ...
declared, documented and validated there) plus :class:`TPOArguments`, the settings TPO adds
(model, data, paper preset, the SFT weight alpha, LoRA, frames, resume). ``DPOConfig`` imports
torch, so that class is built when first used, in the training process only.

This module holds what the app process needs and may load (docs/architecture.md):

* :class:`TPOArguments`, TPO's own fields (validated in ``__post_init__``);
* :data:`TRAINER_DEFAULTS`, TPO's defaults for ``DPOConfig`` fields (the paper's schedule, a
  checkpoint every 100 steps, no truncation ...): defaults, not declarations;
* :data:`TRAINER_ALIASES`, the short options of ``DPOConfig`` fields (``--lr``, ``--epochs``);
* :data:`PRESETS`, the paper's hyper-parameters (also ``configs/<preset>.yaml``);
* run *options*: a plain dict ``{field name: value}`` of the settings given (what a job's
  parameters and a command line carry); :func:`check_options` validates them without torch,
  :func:`cli_args` turns them into ``tpo train`` options.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

__all__ = ["HYPER_PARAMETERS", "LANGUAGE_LORA_TARGET", "PRESETS", "TPOArguments",
           "TRAINER_ALIASES", "TRAINER_DEFAULTS", "check_options", "cli_args", "cli_flags",
           "hyperparameters", "normalize_options", "tpo_field_names"]

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

# TPO's defaults for fields of TRL's DPOConfig (which declares and documents them). Where
# DPOConfig's own default suits TPO (max_steps -1, gradient checkpointing on, report_to none,
# save_strategy steps) it is not repeated here.
TRAINER_DEFAULTS: Mapping[str, Any] = {
    "beta": None,  # None: the preset's (DPOConfig: 0.1)
    "learning_rate": None,  # None: the preset's (DPOConfig: 1e-6)
    "num_train_epochs": 1.0,  # the paper: one epoch (transformers: 3)
    "per_device_train_batch_size": 1,  # frame-heavy pairs (transformers: 8)
    "lr_scheduler_type": "cosine",  # transformers: linear
    "warmup_steps": 0.1,  # a float < 1 is a fraction of the steps (transformers 5)
    "save_steps": 100,  # a resumable checkpoint every 100 steps (transformers: 500)
    "save_total_limit": 2,  # a full fine-tune's checkpoints are many GB (transformers: all)
    "logging_steps": 1,  # every step's loss and rewards in metrics.jsonl (TRL: 10)
    "seed": 0,  # transformers: 42
    # TRL's 1024 silently cuts frame-heavy samples from the end: never truncate.
    "max_length": None,
}

# Short options of DPOConfig fields (the first is what command.txt writes).
TRAINER_ALIASES: Mapping[str, tuple[str, ...]] = {
    "learning_rate": ("--lr",),
    "num_train_epochs": ("--epochs",),
    "per_device_train_batch_size": ("--batch-size",),
    "output_dir": ("--output",),
    "warmup_steps": ("--warmup-ratio",),  # tpo's earlier name; a value < 1 is a ratio
}

# Settings that earlier versions stored under other names (a job submitted then and resumed
# now): old name -> DPOConfig's.
_RENAMED = {"warmup_ratio": "warmup_steps"}


def _help(text: str, **extra: Any) -> dict:
    return {"help": text, **extra}


@dataclass
class TPOArguments:
    """The settings a TPO run adds to TRL's ``DPOConfig`` (every field documented).

    ``alpha`` left at None comes from ``preset`` (as DPOConfig's ``beta`` and
    ``learning_rate`` do in :class:`tpo.training.train.TrainConfig`).
    """

    # model is required (checked below) but has an empty default, so a YAML config
    # (--config) may give it and the command line need not.
    model: str = field(default="", metadata=_help(
        "Base model: hub id or local folder of an image-text-to-text model (SmolVLM2, "
        "Qwen2-VL, LLaVA-OneVision, ...)."))
    data: str | None = field(default=None, metadata=_help(
        "The dataset: an export folder of `tpo export` (jsonl or parquet layout) or an "
        "embedded train.parquet. None only when train() is given a dataset."))
    preset: str = field(default="longva", metadata=_help(
        f"Paper hyper-parameters to start from: {', '.join(PRESETS)} "
        "(longva: beta 0.3, alpha 0.5, lr 4e-6; llava-video: beta 0.2, alpha 1, lr 3e-7; "
        "configs/<preset>.yaml hold the same as files for --config). --beta, --alpha and "
        "--lr override them.",
        choices=tuple(PRESETS)))
    alpha: float | None = field(default=None, metadata=_help(
        "Weight of the SFT term on the chosen answer (per-token mean NLL); 0 is plain DPO. "
        "None: the preset's."))
    dpo_weight: float = field(default=1.0, metadata=_help(
        "Weight of the DPO term; 0 (with alpha > 0) trains SFT on the chosen answers alone, "
        "an ablation of TPO."))
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
    resume: bool = field(default=False, metadata=_help(
        "Continue from the last checkpoint in output_dir (starts afresh when there is none)."))
    overwrite: bool = field(default=False, metadata=_help(
        "Start afresh in an output_dir that holds an earlier run (its checkpoints are "
        "deleted); without it such a folder is refused, so no run is lost by accident."))
    cache_dir: str | None = field(default=None, metadata=_help(
        "Where `datasets` caches the loaded export; None: its default (HF_DATASETS_CACHE)."))

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"preset must be one of {', '.join(PRESETS)}, got {self.preset!r}")
        if not self.model:
            raise ValueError("model is required")
        if self.alpha is not None and not self.alpha >= 0:
            raise ValueError(f"alpha must be >= 0, got {self.alpha}")
        if not self.dpo_weight >= 0:
            raise ValueError(f"dpo_weight must be >= 0, got {self.dpo_weight}")
        if self.dpo_weight == 0 and self.alpha == 0:
            raise ValueError("dpo_weight 0 and alpha 0 leave no loss to train on")
        if not 0 <= self.lora_dropout < 1:
            raise ValueError(f"lora_dropout must be in [0, 1), got {self.lora_dropout}")
        for name in ("lora_r", "lora_alpha"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_frames is not None and self.max_frames < 1:
            raise ValueError(f"max_frames must be >= 1 or None, got {self.max_frames}")
        try:
            re.compile(self.lora_target)
        except re.error as err:
            raise ValueError(f"lora_target is not a valid regex: {err}") from err
        if self.resume and self.overwrite:
            raise ValueError("resume and overwrite contradict each other: pick one")


def tpo_field_names() -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(TPOArguments))


def normalize_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` with settings stored under earlier names renamed (``warmup_ratio``) and
    the earlier ``bf16`` words (auto / true / false) as DPOConfig's None / True / False."""
    out = {_RENAMED.get(k, k): v for k, v in options.items()}
    if isinstance(out.get("bf16"), str):
        word = out["bf16"].strip().lower()
        if word not in ("auto", "true", "false"):
            raise ValueError(f"bf16 must be auto, true or false, got {out['bf16']!r}")
        out["bf16"] = None if word == "auto" else word == "true"
    return out


def check_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The run options (``{field: value}``) normalised, or ValueError with what is wrong.

    Checks TPO's fields (:class:`TPOArguments`) and the ranges of the DPOConfig settings that
    TPO's forms and commands set; DPOConfig validates its own fields again when the run's
    :class:`~tpo.training.train.TrainConfig` is built (in the training process). No torch.
    """
    options = normalize_options(options)
    names = set(tpo_field_names())
    TPOArguments(**{k: v for k, v in options.items() if k in names})
    trainer = {**TRAINER_DEFAULTS, **{k: v for k, v in options.items() if k not in names}}
    check_trainer_values(trainer)
    return options


def check_trainer_values(values: Mapping[str, Any]) -> None:
    """TPO's clear messages for DPOConfig settings out of range (``values``: field -> value;
    absent ones are not checked)."""
    if not values.get("output_dir"):
        raise ValueError("output_dir is required")

    def given(name: str) -> bool:
        return values.get(name) is not None

    for name in ("beta", "learning_rate", "num_train_epochs"):
        if given(name) and not values[name] > 0:
            raise ValueError(f"{name} must be > 0, got {values[name]}")
    if given("max_steps") and values["max_steps"] != -1 and values["max_steps"] < 1:
        raise ValueError(f"max_steps must be -1 (use epochs) or >= 1, got {values['max_steps']}")
    if given("warmup_steps") and not values["warmup_steps"] >= 0:
        raise ValueError("warmup_steps (--warmup-ratio) must be >= 0 (a fraction of the steps "
                         f"when < 1), got {values['warmup_steps']}")
    for name in ("per_device_train_batch_size", "gradient_accumulation_steps", "save_steps",
                 "logging_steps"):
        if given(name) and not values[name] > 0:
            raise ValueError(f"{name} must be >= 1, got {values[name]}")
    if given("save_total_limit") and values["save_total_limit"] < 1:
        raise ValueError(f"save_total_limit must be >= 1 or None, got {values['save_total_limit']}")


def hyperparameters(options: Mapping[str, Any] | Any) -> dict[str, float]:
    """beta, alpha and learning_rate as a run with these options uses them: the preset's
    unless given (a built TrainConfig holds them filled in already)."""
    if not isinstance(options, Mapping):
        return {name: getattr(options, name) for name in HYPER_PARAMETERS}
    preset = PRESETS[options.get("preset") or TPOArguments.preset]
    return {name: preset[name] if options.get(name) is None else options[name]
            for name in HYPER_PARAMETERS}


def cli_flags(name: str) -> tuple[str, ...]:
    """The options of field ``name``, the short one first (what command lines write)."""
    return (*TRAINER_ALIASES.get(name, ()), "--" + name.replace("_", "-"))


def cli_args(options: Mapping[str, Any]) -> list[str]:
    """The ``tpo train`` / ``python -m tpo.training.train`` options that give these run
    options (local paths made absolute; None values left out: they are the defaults of the
    fields TPO lets be None)."""
    options = normalize_options(options)
    out: list[str] = []
    first = [k for k in ("model", "data", "output_dir") if k in options]
    for name in [*first, *(k for k in options if k not in first)]:
        value = options[name]
        if value is None:
            continue
        if name in ("model", "data", "output_dir", "cache_dir") and value and (
                name != "model" or Path(value).expanduser().exists()):
            value = str(Path(value).expanduser().resolve())
        flag = cli_flags(name)[0]
        if name == "lora":
            out.append("--lora" if value else "--full")
        elif isinstance(value, bool):
            out += [flag] if value else [flag, "false"]
        elif isinstance(value, (list, tuple)):
            out += [flag, *map(str, value)]
        elif isinstance(value, dict):
            out += [flag, json.dumps(value)]
        else:
            out += [flag, str(value)]
    return out
