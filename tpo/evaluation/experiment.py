"""``tpo experiment``: TPO's self-training loop, run end to end and measured.

One command takes a base video-LM through the whole loop of the TPO paper (Li et al. 2025,
arXiv 2501.13919) on synthetic videos whose ground truth is known, and measures whether the
fine-tune helps on videos it never saw:

1. **model** - the base model: ``--model`` (hub id or folder), or the demo model
   (``tpo.models.demo_model.ensure_demo_model(DATA/models/demo-smolvlm)``, installed once).
2. **render** - training videos (seeds from :data:`TRAIN_SEED_BASE`) into ``OUT/train/`` and
   held-out videos (seeds from :data:`HELDOUT_SEED_BASE`, a disjoint range) into
   ``OUT/heldout/``: :func:`tpo.media.synth.random_events` spread over each video, one event per
   ``event_every_s`` seconds (at least 2), rendered at ``fps`` (1 by default, so a question or
   a training record never sees more than one frame per second of video).
3. **ingest** - the training videos only, into the store (the library). Held-out videos are
   never ingested; the stage checks that none of them is in the library (by content).
4. **generate** - pairs with the base model (:func:`tpo.generation.generate.generate`): questions from
   the ground truth (``questions="ground_truth"``), answers always the model's own. The
   ground-truth *answer* is stored in a pair's ``captions.reference`` only, for the optional
   judge; the export never puts it in a training row, and the export stage checks that every
   row's chosen answer is the pair's own. The post-filter runs as part of generation.
5. **accept** - the pairs the post-filter kept are accepted through :mod:`tpo.curation.review` as user
   ``experiment`` (the audit trail shows it); with ``reviewed``, the training videos' pairs
   that people accepted are used as they are, and nothing is accepted automatically.
6. **export** - the accepted pairs as a TRL dataset (:mod:`tpo.curation.export`) into
   ``OUT/dataset/``; training uses exactly this experiment's pairs from it.
7. **evaluate base**, **train**, **evaluate tuned** - DPO + alpha * SFT (:mod:`tpo.training.train`),
   registered as a model like ``tpo train`` does; both models on (a) the needle suite and
   (b) the ``synthetic`` suite of the held-out folder (:mod:`tpo.evaluation.synthetic_suite`), stored
   in the store like ``tpo eval`` (the app's Evaluate tab shows them).
8. **ablations** (optional) - more fine-tunes from the same pairs, evaluated the same way:
   localized pairs only, comprehensive only, DPO without the SFT term, SFT alone.
9. **report** - ``OUT/report.json`` and ``OUT/report.md`` (:mod:`tpo.evaluation.experiment_report`).

State lives in ``OUT/state.json``, written atomically after each finished stage with its
outputs. Running the same command again resumes after the last finished stage (a stage cut
short is redone; generation skips videos already generated). Other settings in the same
folder are refused unless ``restart``; ``ablations`` may change between runs (only the new
ones run).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable

from tpo.media import synth
from tpo.errors import TPOError
from tpo.store import Store, StoreError, now
from tpo.training.config import check_options

__all__ = ["ABLATIONS", "ExperimentConfig", "ExperimentError", "ExperimentInterrupted",
           "ExperimentRun", "Reporter", "Stage", "check_disjoint", "config_fields",
           "run_experiment", "stages", "variant_name", "video_specs"]

TRAIN_SEED_BASE = 1_000_000  # training video i of seed s: 1_000_000 + 1000 * s + i
HELDOUT_SEED_BASE = 2_000_000  # held-out video i of seed s: 2_000_000 + 1000 * s + i
SEED_STRIDE = 1000  # so at most 1000 videos per split and seeds 0..999 keep the ranges apart
SUITES = ("needle", "synthetic")  # every model is evaluated on both
REVIEW_USER = "experiment"  # the reviewer the audit trail shows for automatic accepts
STATE_FILE = "state.json"
STATE_FORMAT = 1
# Fields that may change between runs in one folder: they add stages, they change none.
FREE_FIELDS = ("ablations", "out_dir")

ABLATIONS = {
    "localized": "localized pairs only",
    "comprehensive": "comprehensive pairs only",
    "dpo": "DPO without the SFT term (alpha 0)",
    "sft": "SFT on the chosen answers alone (no DPO term)",
}

# Sizes left at None take these values (quick: a run that fits 20 minutes on a 2-core CPU
# with the demo model).
FULL = dict(train_videos=100, train_lengths_s=(60.0, 90.0, 120.0, 180.0), heldout_videos=32,
            heldout_lengths_s=(60.0, 120.0, 240.0, 480.0), frames=64, localized=5,
            comprehensive=5, needle_lengths_s=(30.0, 60.0, 120.0, 240.0),
            needle_depths=(0.0, 0.25, 0.5, 0.75, 1.0), max_steps=-1)
QUICK = dict(train_videos=40, train_lengths_s=(60.0, 90.0, 120.0, 180.0), heldout_videos=16,
             heldout_lengths_s=(60.0, 120.0, 240.0, 480.0), frames=64, localized=5,
             comprehensive=5, needle_lengths_s=(30.0, 60.0, 120.0, 240.0),
             needle_depths=(0.0, 0.25, 0.5, 0.75, 1.0), max_steps=-1)


def _help(text: str, **extra) -> dict:
    return {"help": text, **extra}


@dataclass
class ExperimentConfig:
    """One experiment; fields left at None get the full or the ``quick`` value (:data:`FULL`,
    :data:`QUICK`). Lists may be given for the tuple fields."""

    name: str = field(default="tpo", metadata=_help(
        "Name of the experiment: its folder (DATA/experiments/NAME) and its models' names."))
    out_dir: str | None = field(default=None, metadata=_help(
        "Folder for videos, dataset, models, state and report; default DATA/experiments/NAME.",
        flag="--out"))
    model: str | None = field(default=None, metadata=_help(
        "Base model: hub id or folder of a video-LM; default: the demo model "
        "(DATA/models/demo-smolvlm, installed on first use)."))
    seed: int = field(default=0, metadata=_help(
        "Seeds the videos (training and held-out from disjoint ranges), pairs and training; "
        "0..999."))
    quick: bool = field(default=False, metadata=_help(
        "Fewer videos (40 training + 16 held-out instead of 100 + 32): under 20 minutes on a "
        "2-core CPU with the demo model."))
    train_videos: int | None = field(default=None, metadata=_help(
        "Training videos [100; quick 40]."))
    train_lengths_s: tuple[float, ...] | None = field(default=None, metadata=_help(
        "Training video lengths in s, used in turn [60,90,120,180].",
        flag="--train-lengths"))
    heldout_videos: int | None = field(default=None, metadata=_help(
        "Held-out videos for the synthetic suite [32; quick 16]."))
    heldout_lengths_s: tuple[float, ...] | None = field(default=None, metadata=_help(
        "Held-out video lengths in s, used in turn [60,120,240,480].",
        flag="--heldout-lengths"))
    event_every_s: float = field(default=20.0, metadata=_help(
        "One event per this many seconds of video (at least 2 per video)."))
    event_min_s: float = field(default=5.0, metadata=_help("Shortest event, s."))
    event_max_s: float = field(default=15.0, metadata=_help("Longest event, s."))
    fps: float = field(default=1.0, metadata=_help(
        "Frame rate of the rendered videos; at 1, a question or training record never sees "
        "more than one frame per second of video."))
    frames: int | None = field(default=None, metadata=_help(
        "Frames per training record and per evaluation question, uniform over the video "
        "(at most one per rendered frame) [64]."))
    localized: int | None = field(default=None, metadata=_help(
        "Localized pairs per training video [5]."))
    comprehensive: int | None = field(default=None, metadata=_help(
        "Comprehensive pairs per training video, at most one per ground-truth whole-video question [5]."))
    max_new_tokens: int = field(default=64, metadata=_help(
        "Longest generated answer, in tokens."))
    drop_truncated: bool = field(default=True, metadata=_help(
        "Post-filter: drop pairs with an answer cut at the token limit.",
        flag="--drop-truncated/--keep-truncated"))
    reviewed: bool = field(default=False, metadata=_help(
        "Train on the training videos' pairs people accepted (Curate, `tpo review`) instead "
        "of accepting every pair the post-filter kept."))
    beta: float = field(default=0.3, metadata=_help("DPO beta (the paper's LongVA-TPO: 0.3)."))
    alpha: float = field(default=0.5, metadata=_help(
        "Weight of the SFT term (the paper's LongVA-TPO: 0.5)."))
    learning_rate: float | None = field(default=None, metadata=_help(
        "Peak learning rate [demo model: 2e-5, chosen with --validate; other models "
        "(LoRA): 5e-5 - LoRA needs more than the paper's full fine-tune, 4e-6].", flag="--lr"))
    epochs: float = field(default=1.0, metadata=_help("Passes over the pairs."))
    max_steps: int | None = field(default=None, metadata=_help(
        "Stop after this many optimizer steps; -1: run the epochs [-1]."))
    lora: bool | None = field(default=None, metadata=_help(
        "LoRA adapters or a full fine-tune (--full) [demo model: full, its 1.3M parameters "
        "are fewer than a LoRA of a real model; other models: LoRA].", flag="--lora/--full"))
    validate: bool = field(default=False, metadata=_help(
        "Evaluate on validation videos instead of the held-out ones: more videos of the "
        "training seed range (after the training videos, never used for pairs), made like "
        "the held-out ones. Choose fine-tune settings (--lr, --epochs, --beta, --alpha) this "
        "way, then run once without it; the held-out videos are not rendered.",
        flag="--validate"))
    ablations: tuple[str, ...] = field(default=(), metadata=_help(
        f"Extra fine-tunes from the same pairs: {', '.join(ABLATIONS)}, or all."))
    needle_lengths_s: tuple[float, ...] | None = field(default=None, metadata=_help(
        "Needle suite haystack lengths in s [30,60,120,240].",
        flag="--needle-lengths"))
    needle_depths: tuple[float, ...] | None = field(default=None, metadata=_help(
        "Needle suite depths in [0, 1] [0,0.25,0.5,0.75,1]."))
    needle_per_cell: int = field(default=1, metadata=_help(
        "Needle videos per (length, depth) cell."))
    eval_batch_size: int = field(default=4, metadata=_help("Questions answered together."))
    answers: str | None = field(default=None, metadata=_help(
        "How evaluation questions are asked and graded: letter (the multiple-choice prompt, "
        "the letter read from the reply) or open (the question alone, right when the reply "
        "is exactly the right option's text) [demo model: open - it answers the questions "
        "but was never made to follow the multiple-choice format: on single-event clips it "
        "names the colour 18 times in 18 and picks its letter at chance; other models: "
        "letter]."))

    def __post_init__(self) -> None:
        for name, value in (QUICK if self.quick else FULL).items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        # The demo model is tiny, so it is fine-tuned in full. Its learning rate was chosen
        # on validation videos (--validate: the training seed range, never the held-out
        # videos), quick runs, synthetic suite, 241 questions: base 17.4 %; TPO at 5e-4
        # 12.0 %, at 1e-4 14.9 %, at 2e-5 17.4 %. No rate tried helped; 2e-5 harms least.
        demo = self.model is None
        if self.lora is None:
            self.lora = not demo
        if self.learning_rate is None:
            self.learning_rate = 2e-5 if demo else 5e-5
        if self.answers is None:
            self.answers = "open" if demo else "letter"
        if self.answers not in ("letter", "open"):
            raise ValueError(f"answers must be letter or open, got {self.answers!r}")
        for name in ("train_lengths_s", "heldout_lengths_s", "needle_lengths_s", "needle_depths"):
            setattr(self, name, tuple(float(x) for x in getattr(self, name)))
        ablations = tuple(a.strip().lower() for a in self.ablations if a.strip())
        self.ablations = tuple(ABLATIONS) if "all" in ablations else tuple(dict.fromkeys(ablations))
        unknown = [a for a in self.ablations if a not in ABLATIONS]
        if unknown:
            raise ValueError(f"unknown ablation(s) {', '.join(unknown)}: use "
                             f"{', '.join(ABLATIONS)} or all")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", self.name or ""):
            raise ValueError(f"name must be letters, digits, '.', '_' or '-', got {self.name!r}")
        if not 0 <= self.seed < SEED_STRIDE:
            raise ValueError(f"seed must be in 0..{SEED_STRIDE - 1}, got {self.seed}")
        for name in ("train_videos", "heldout_videos"):
            if not 1 <= getattr(self, name) <= SEED_STRIDE:
                raise ValueError(f"{name} must be in 1..{SEED_STRIDE}, got {getattr(self, name)}")
        if self.validate and self.train_videos + self.heldout_videos > SEED_STRIDE:
            raise ValueError(f"with --validate, train_videos + heldout_videos must be at most "
                             f"{SEED_STRIDE} (both come from the training seed range)")
        if self.frames < 2:
            raise ValueError(f"frames must be at least 2, got {self.frames}")
        if self.localized < 0 or self.comprehensive < 0 or self.localized + self.comprehensive == 0:
            raise ValueError("ask for at least one localized or comprehensive pair per video")
        if not (self.fps > 0 and self.event_every_s > 0
                and 0 < self.event_min_s <= self.event_max_s):
            raise ValueError("need fps > 0, event_every_s > 0 and 0 < event_min_s <= event_max_s")
        if self.event_min_s * self.fps < 1:
            raise ValueError(f"events of {self.event_min_s:g} s at {self.fps:g} fps could fall "
                             "between frames: need event_min_s >= 1 / fps")
        for length in {*self.train_lengths_s, *self.heldout_lengths_s}:
            if not length > 0:
                raise ValueError(f"video lengths must be > 0 s, got {length:g}")
            _events(self, length, seed=0)  # ValueError when the events do not fit
        if self.max_steps != -1 and self.max_steps < 1:
            raise ValueError(f"max_steps must be -1 (use epochs) or >= 1, got {self.max_steps}")
        for name in ("max_new_tokens", "needle_per_cell", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        check_options(self.training_options(variant="tpo", output_dir="."))  # no torch
        self.needle_eval()  # NeedleConfig's own checks

    def out_path(self, data_dir: Path) -> Path:
        """The experiment's folder: ``out_dir``, or ``data_dir/experiments/<name>``."""
        out = Path(self.out_dir) if self.out_dir else Path(data_dir) / "experiments" / self.name
        return out.expanduser().resolve()

    def fingerprint(self) -> dict:
        """The settings that define the results (JSON-normalised), for resume checks."""
        settings = {k: v for k, v in asdict(self).items() if k not in FREE_FIELDS}
        return json.loads(json.dumps(settings))

    def generation(self):
        """The :class:`tpo.generation.pairs.GenerationConfig` of the pairs."""
        from tpo.generation.pairs import GenerationConfig

        segment = min(16, self.frames)
        return GenerationConfig(localized=self.localized, comprehensive=self.comprehensive,
                                questions="ground_truth", dense=self.frames,
                                sparse=max(1, self.frames // 8), segment_frames=segment,
                                incomplete_frames=max(1, segment // 4),
                                caption_frames=min(8, self.frames),
                                max_new_tokens=self.max_new_tokens, seed=self.seed)

    def training(self, variant: str, output_dir: str, base: str = "base", **extra):
        """The :class:`tpo.training.train.TrainConfig` of one fine-tune (``tpo`` or an
        ablation); ``extra``: more of its settings (e.g. cache_dir)."""
        from tpo.training.train import make_config

        return make_config({**self.training_options(variant, output_dir, base), **extra})

    def training_options(self, variant: str, output_dir: str, base: str = "base") -> dict:
        """The run options (:mod:`tpo.training.config`) of :meth:`training`."""
        alpha, dpo_weight = self.alpha, 1.0
        if variant == "dpo":
            alpha = 0.0
        elif variant == "sft":  # the SFT term alone, at TPO's weight (1 when TPO has none)
            alpha, dpo_weight = (self.alpha or 1.0), 0.0
        return dict(model=base, data=None, output_dir=output_dir, beta=self.beta,
                    alpha=alpha, dpo_weight=dpo_weight, learning_rate=self.learning_rate,
                    num_train_epochs=self.epochs, max_steps=self.max_steps,
                    lora=self.lora, max_frames=self.frames, seed=self.seed,
                    overwrite=True,  # a stage cut short is redone from the start
                    save_steps=10**9)  # so checkpoints would never be resumed

    def needle_eval(self):
        """The :class:`tpo.evaluation.evaluate.EvalConfig` of the needle suite."""
        from tpo.evaluation.evaluate import EvalConfig

        config = EvalConfig(suite="needle", frames=self.frames, batch_size=self.eval_batch_size,
                            answers=self.answers,
                            needle_lengths=self.needle_lengths_s,
                            needle_depths=self.needle_depths,
                            needle_per_cell=self.needle_per_cell)
        config.needle_config()
        return config

    def synthetic_eval(self, folder: Path):
        """The :class:`tpo.evaluation.evaluate.EvalConfig` of the held-out videos' questions."""
        from tpo.evaluation.evaluate import EvalConfig

        return EvalConfig(suite=f"synthetic:{folder}", frames=self.frames, answers=self.answers,
                          batch_size=self.eval_batch_size)


class ExperimentError(TPOError):
    """An experiment that cannot go on, with what to do (one line)."""


class ExperimentInterrupted(ExperimentError):
    """Ctrl-C during a stage: the stage is redone when the same command runs again."""

    def __init__(self, stage: str):
        self.stage = stage
        super().__init__(f"interrupted during {stage}; run the same command again to resume")


# --- the split ---------------------------------------------------------------------------


def _events(config: ExperimentConfig, length: float, seed: int) -> tuple[synth.Event, ...]:
    n = max(2, int(length // config.event_every_s))
    return synth.random_events(length, n, seed, min_len_s=config.event_min_s,
                               max_len_s=config.event_max_s)


def video_specs(config: ExperimentConfig, split: str) -> list[synth.VideoSpec]:
    """The training (``split="train"``) or held-out (``"heldout"``) videos: lengths in turn,
    seeds from the split's own range, so no held-out video is ever a training video.

    With ``config.validate`` the ``"heldout"`` split is the validation videos instead: made
    like the held-out ones, but with the seeds of the training range that follow the
    training videos (so never a held-out video, and never a video pairs are made from)."""
    count, lengths, base = {
        "train": (config.train_videos, config.train_lengths_s, TRAIN_SEED_BASE),
        "heldout": (config.heldout_videos, config.heldout_lengths_s, HELDOUT_SEED_BASE),
    }[split]
    prefix, first = split, 0
    if split == "heldout" and config.validate:
        prefix, base, first = "validation", TRAIN_SEED_BASE, config.train_videos
    specs = []
    for i in range(count):
        length, seed = lengths[i % len(lengths)], base + SEED_STRIDE * config.seed + first + i
        specs.append(synth.VideoSpec(f"{prefix}-{seed}-{length:g}s", length, fps=config.fps,
                                     events=_events(config, length, seed), seed=seed,
                                     gop=max(1, round(10 * config.fps))))  # a keyframe per 10 s
    return specs


def check_disjoint(train: list[dict], heldout: list[dict]) -> dict:
    """ExperimentError unless the training and held-out videos share no seed and no file;
    returns what was checked."""
    seeds = {v["seed"] for v in train} & {v["seed"] for v in heldout}
    paths = {v["path"] for v in train} & {v["path"] for v in heldout}
    shas = {v["sha256"] for v in train} & {v["sha256"] for v in heldout}
    if seeds or paths or shas:
        raise ExperimentError(f"training and held-out videos overlap (seeds {sorted(seeds)}, "
                              f"files {sorted(paths)}, {len(shas)} identical contents)")
    return {"train_videos": len(train), "heldout_videos": len(heldout), "shared_seeds": 0,
            "shared_files": 0, "shared_contents": 0}


# --- stages and their state ----------------------------------------------------------------


@dataclass(frozen=True)
class Stage:
    """One resumable step: ``name`` is its key in the state, ``title`` what people read."""

    name: str
    title: str
    run: Callable[["ExperimentRun"], dict]


class Reporter:
    """What a running experiment tells its caller (the CLI draws progress bars from it)."""

    def stage_started(self, stage: Stage, index: int, total: int, resumed: bool) -> None:
        """``index`` counts from 1; ``resumed``: finished by an earlier run, skipped."""

    def progress(self, fraction: float, text: str) -> None:
        """Within the current stage: ``fraction`` 0..1 and what is happening."""

    def stage_finished(self, stage: Stage, record: dict) -> None:
        """``record``: ``seconds`` and the stage's ``outputs`` (``summary`` a short line)."""


class ExperimentRun:
    """One run of the stages: config, store, folder (``out``), state, reporter; the stages
    read earlier stages' results with :meth:`outputs`."""

    def __init__(self, config: ExperimentConfig, store: Store, data_dir: Path,
                 reporter: Reporter):
        self.config, self.store, self.data_dir, self.reporter = config, store, data_dir, reporter
        self.out = config.out_path(data_dir)
        self.state: dict = {}

    def outputs(self, stage: str) -> dict:
        return self.state["stages"][stage]["outputs"]

    def save_state(self) -> None:
        path = self.out / STATE_FILE
        text = json.dumps(self.state, indent=1, default=str)
        synth.write_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def stages(config: ExperimentConfig) -> list[Stage]:
    """The stages of ``config``, in order (the report comes after them)."""
    from tpo.evaluation import experiment_stages as s

    out = [Stage("model", "base model", s.stage_model),
           Stage("render", "render videos", s.stage_render),
           Stage("ingest", "ingest training videos", s.stage_ingest),
           Stage("generate", "generate pairs", s.stage_generate),
           Stage("accept", "accept pairs", s.stage_accept),
           Stage("export", "export dataset", s.stage_export)]
    for variant in ("base", "tpo", *config.ablations):
        if variant != "base":
            out.append(Stage(f"train:{variant}", f"train {variant_name(variant)}",
                             lambda run, v=variant: s.stage_train(run, v)))
        for suite in SUITES:
            out.append(Stage(f"eval:{variant}:{suite}",
                             f"evaluate {variant_name(variant)} on {suite}",
                             lambda run, v=variant, x=suite: s.stage_eval(run, v, x)))
    return out


def variant_name(variant: str) -> str:
    """How people read a variant: "base", "TPO", "ablation sft"."""
    return {"base": "base", "tpo": "TPO"}.get(variant, f"ablation {variant}")


def _load_state(run: ExperimentRun, restart: bool) -> None:
    path = run.out / STATE_FILE
    fresh = {"format": STATE_FORMAT, "created_at": now(), "config": run.config.fingerprint(),
             "stages": {}}
    if restart or not path.is_file():
        run.state = fresh
        return
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ExperimentError(f"{path} cannot be read ({err}): run with --restart to start "
                              "the experiment afresh") from err
    if state.get("format") != STATE_FORMAT:
        raise ExperimentError(f"{path} was written by another version: run with --restart")
    before, after = state.get("config", {}), run.config.fingerprint()
    changed = [k for k in sorted(set(before) | set(after)) if before.get(k) != after.get(k)]
    if changed:
        what = ", ".join(f"{k}: {before.get(k)!r} -> {after.get(k)!r}" for k in changed[:4])
        raise ExperimentError(f"{run.out} holds experiment {before.get('name', '?')!r} run with "
                              f"other settings ({what}): run with --restart to start it afresh "
                              "with these, or choose another --name")
    run.state = state


def run_experiment(config: ExperimentConfig, store: Store, data_dir: str | Path, *,
                   restart: bool = False, reporter: Reporter | None = None) -> dict:
    """Run (or resume) the experiment; returns the report (also in ``OUT/report.json``).

    Raises :class:`ExperimentInterrupted` on Ctrl-C, :class:`ExperimentError` when a stage
    cannot go on, :class:`tpo.models.vlm.ModelLoadError` when a model cannot be loaded.
    """
    from tpo.evaluation import experiment_report
    from tpo.curation.export import ExportError
    from tpo.training.train_data import TrainError
    from tpo.media.video import VideoError

    reporter = reporter or Reporter()
    run = ExperimentRun(config, store, Path(data_dir), reporter)
    run.out.mkdir(parents=True, exist_ok=True)
    _load_state(run, restart)
    run.save_state()
    plan = stages(config)
    total = len(plan) + 1  # and the report
    for index, stage in enumerate(plan, start=1):
        done = stage.name in run.state["stages"]
        reporter.stage_started(stage, index, total, resumed=done)
        if done:
            continue
        started = time.monotonic()
        try:
            outputs = stage.run(run)
        except KeyboardInterrupt:
            raise ExperimentInterrupted(stage.title) from None
        except (ExportError, TrainError, VideoError, StoreError, ValueError) as err:
            raise ExperimentError(f"{stage.title}: {err}") from err
        record = {"seconds": round(time.monotonic() - started, 2), "finished_at": now(),
                  "outputs": outputs}
        run.state["stages"][stage.name] = record
        run.save_state()
        reporter.stage_finished(stage, record)
    report_stage = Stage("report", "write the report", lambda _run: {})
    reporter.stage_started(report_stage, total, total, resumed=False)
    started = time.monotonic()
    try:
        report = experiment_report.write(run.out, store, config, run.state, plan)
    except KeyboardInterrupt:
        raise ExperimentInterrupted(report_stage.title) from None
    reporter.stage_finished(report_stage, {"seconds": round(time.monotonic() - started, 2),
                                           "outputs": {"summary": str(run.out / "report.md")}})
    return report


def config_fields() -> list:
    """The dataclass fields of :class:`ExperimentConfig` (the CLI builds its options from them)."""
    return list(fields(ExperimentConfig))
