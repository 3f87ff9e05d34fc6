"""The ``tpo`` command: a thin shell over the library.

Each command parses its arguments, calls :mod:`tpo`, and turns errors into a clear message
and a non-zero exit status. ``--json`` output is meant for scripts and is stable.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import click
from tqdm import tqdm

from tpo import __version__, video
from tpo.config import Settings
from tpo.library import IngestReport, build_demo, ingest
from tpo.review import effective, review
from tpo.store import Store, StoreError
from tpo.thumbs import format_time


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
            except (StoreError, OSError) as err:
                raise click.ClickException(f"cannot open database {self.settings.db_path}: {err}")
        return self._store


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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
    from tpo.tiny import build_tiny_model

    path = build_tiny_model(out, arch=arch, seed=seed)
    click.echo(f"built a tiny {arch} model in {path}")


@cli.command("generate")
@click.option("--model", default=None, help="Hub id or local folder [env TPO_MODEL].")
@click.option("--adapter", default=None, type=click.Path(file_okay=False),
              help="LoRA adapter folder applied on top of the model.")
@click.option("--video", "video_ids", type=int, multiple=True, help="Video id (repeatable).")
@click.option("--all", "all_videos", is_flag=True, help="Every ready video in the library.")
@click.option("--localized", type=click.IntRange(min=0), default=5, show_default=True,
              help="Localized pairs to attempt per video.")
@click.option("--comprehensive", type=click.IntRange(min=0), default=5, show_default=True,
              help="Comprehensive pairs to attempt per video.")
@click.option("--strategy", type=click.Choice(["irrelevant", "incomplete", "mixed"]),
              default="irrelevant", show_default=True, help="Localized rejected side.")
@click.option("--dense", type=click.IntRange(min=2), default=64, show_default=True,
              help="Frames the comprehensive chosen answer sees.")
@click.option("--sparse", type=click.IntRange(min=1), default=8, show_default=True,
              help="Frames the comprehensive rejected answer sees.")
@click.option("--questions", type=click.Choice(["auto", "model", "ground_truth"]), default="auto",
              show_default=True, help="Question source (auto: ground truth where known).")
@click.option("--judge", default=None, help="Text model (id or folder) for the paper's judge checks.")
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=128, show_default=True,
              help="Longest answer, caption or question, in tokens.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--force", is_flag=True, help="Redo videos already generated with these settings.")
@click.option("--json", "as_json", is_flag=True, help="Print the run report as JSON.")
@click.pass_obj
def generate_cmd(obj: Context, model: str | None, adapter: str | None, video_ids: tuple[int, ...],
                 all_videos: bool, localized: int, comprehensive: int, strategy: str, dense: int,
                 sparse: int, questions: str, judge: str | None, max_new_tokens: int, seed: int,
                 force: bool, as_json: bool) -> None:
    """Generate TPO preference pairs (localized and comprehensive) for library videos."""
    from tpo.generate import generate
    from tpo.pairs import GenerationConfig
    from tpo.vlm import VLM, ModelConfig, ModelLoadError

    if bool(video_ids) == all_videos:
        raise click.UsageError("choose videos with --video ID (repeatable) or --all")
    try:
        config = GenerationConfig(localized=localized, comprehensive=comprehensive,
                                  strategy=strategy, dense=dense, sparse=sparse,
                                  questions=questions, seed=seed)
    except ValueError as err:
        raise click.UsageError(str(err))
    store = obj.store
    for video_id in video_ids:  # fail before loading a model
        _video_row(store, video_id)
    model_id = model or obj.settings.model
    bar = tqdm(total=1.0, desc="generating", file=sys.stderr, leave=False,
               bar_format="{l_bar}{bar}| {elapsed} {postfix}")

    def progress(fraction: float, text: str) -> None:
        bar.set_postfix_str(text[-60:], refresh=False)
        bar.update(round(fraction, 4) - bar.n)

    try:
        bar.set_postfix_str(f"loading {model_id}")
        vlm = VLM.load(ModelConfig(model=model_id, adapter=adapter, max_new_tokens=max_new_tokens))
        judge_chat = VLM.load(ModelConfig(model=judge)).chat if judge else None
    except ModelLoadError as err:
        bar.close()
        raise click.ClickException(str(err))
    with bar, vlm:
        report = generate(store, vlm, config, video_ids=list(video_ids) or None, force=force,
                          adapter=adapter, judge=judge_chat, progress=progress)
    _print_report(report, as_json, [
        *(f"failed: video {video_id}: {error}" for video_id, error in report.failed.items()),
        *(f"skipped: video {video_id}: {why}" for video_id, why in report.skipped.items())])


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
@click.option("--frames-from", type=click.Choice(["chosen", "rejected", "union"]), default="chosen",
              show_default=True, help="Whose frames fill the `images` column.")
@click.option("--max-frames", type=click.IntRange(min=1), default=16, show_default=True,
              help="At most this many frames per sample (an even subset).")
@click.option("--embed-images", is_flag=True, help="parquet: embed image bytes in the file.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_obj
def export_cmd(obj: Context, out_dir: Path, fmt: str, status: str, frames_from: str,
               max_frames: int, embed_images: bool, as_json: bool) -> None:
    """Export pairs (default: accepted) to OUT_DIR, loadable with datasets.load_dataset(OUT_DIR)."""
    from tpo.export import ExportConfig, ExportError, export_pairs

    try:
        config = ExportConfig(format=fmt, status=status, frames_from=frames_from,
                              max_frames=max_frames, embed_images=embed_images)
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
    from tpo.importer import ImportValidationError, import_file

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

    Takes the options of `python -m tpo.train` (see `tpo train --help`), plus
    --from-store (export the accepted pairs into OUTPUT/dataset and train on them),
    --num-processes N and --accelerate-config FILE (several GPUs through accelerate).
    The run is registered as a model in the store; Ctrl-C cancels it.
    """
    import argparse

    from tpo import jobs
    from tpo.train import build_parser, config_from_args
    from tpo.train_data import TrainError
    from tpo.train_job import job_params

    parser = build_parser(argparse.ArgumentParser(
        prog="tpo train", description="Fine-tune a video-LM on curated pairs (TPO: DPO + "
        "alpha * SFT) as a background job; the run is registered as a model."))
    parser.add_argument("--from-store", action="store_true",
                        help="Train on the store's accepted pairs (exported into OUTPUT/dataset).")
    parser.add_argument("--num-processes", type=int, default=1, help="Processes (GPUs).")
    parser.add_argument("--accelerate-config", default=None,
                        help="An accelerate config file, e.g. configs/accelerate/multi_gpu_ddp.yaml.")
    for action in parser._actions:  # --data is optional here: --from-store replaces it
        if action.dest == "data":
            action.required = False
    ns = parser.parse_args(list(args))
    if bool(ns.data) == ns.from_store:
        parser.error("give --data EXPORT_DIR or --from-store")
    try:
        config = config_from_args(ns)
        launcher = "accelerate" if ns.accelerate_config or ns.num_processes > 1 else "python"
        params = job_params(config, launcher=launcher, num_processes=ns.num_processes,
                            accelerate_config=ns.accelerate_config, export_from_store=ns.from_store)
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
@click.option("--suite", required=True, metavar="SUITE",
              help="needle, or videomme:PATH, mlvu:PATH, longvideobench:PATH (local annotation "
                   "file or folder, videos beside it as the benchmark ships them).")
@click.option("--frames", type=click.IntRange(min=0), default=16, show_default=True,
              help="Frames per question, uniform over the video; 0 with --suite needle: every "
                   "frame of the haystack (1 fps), as in V-NIAH.")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Only the first N questions.")
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=16, show_default=True,
              help="Longest answer, in tokens.")
@click.option("--needle-lengths", default=None, metavar="S,S,...",
              help="Needle suite: haystack lengths in seconds [default 30,60,120,240].")
@click.option("--needle-depths", default=None, metavar="D,D,...",
              help="Needle suite: needle depths in [0, 1] [default 0,0.25,0.5,0.75,1].")
@click.option("--json", "as_json", is_flag=True, help="Print the stored results as JSON.")
@click.pass_obj
def eval_cmd(obj: Context, models: tuple[str, ...], suite: str, frames: int, limit: int | None,
             max_new_tokens: int, needle_lengths: str | None, needle_depths: str | None,
             as_json: bool) -> None:
    """Multiple-choice accuracy of one or more models on a benchmark or the needle suite.

    Results are stored (the app's Evaluate section shows them next to earlier runs); the
    needle suite also writes a length x depth heatmap PNG.
    """
    from tpo import eval_results as er
    from tpo import evaluate as ev
    from tpo.modelref import resolve

    try:
        config = ev.EvalConfig(suite=suite, frames=frames, limit=limit,
                               max_new_tokens=max_new_tokens,
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

    from tpo.vlm import ModelLoadError
    from tpo.video import VideoError

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
@click.option("--suite", type=click.Choice(["needle", "videomme", "mlvu", "longvideobench"]),
              help="Only evaluations of this suite.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def evals_cmd(obj: Context, eval_ids: tuple[int, ...], suite: str | None, as_json: bool) -> None:
    """Stored evaluations (from `tpo eval` and the app); with ID, one evaluation's answers;
    with ID ID2, the two compared question by question (e.g. base vs. fine-tuned)."""
    import pandas as pd

    from tpo import eval_results as er

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


@cli.command("leaderboard")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of rows.")
@click.pass_obj
def leaderboard_cmd(obj: Context, as_json: bool) -> None:
    """Win rates per pair of models from the Compare tab's votes (95 % Wilson intervals)."""
    from tpo.compare import leaderboard

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
    from tpo.evaluate import float_list

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
    from ui.server import main as serve_app  # the web shell; imported only to serve

    serve_app(obj.settings, host=host, port=port)


def main() -> None:
    cli(prog_name="tpo")


if __name__ == "__main__":
    main()
