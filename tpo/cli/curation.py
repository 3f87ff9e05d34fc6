"""``tpo pairs``, ``tpo review``, ``tpo restore``, ``tpo export``, ``tpo import``: curating pairs."""

from __future__ import annotations

import json
from pathlib import Path

import click

from tpo.curation.review import effective, review
from tpo.store import StoreError
from tpo.media.thumbs import format_time

from tpo.cli.common import Context, progress_bar, print_report


PAIR_JSON_FIELDS = ("id", "video_id", "kind", "strategy", "question", "chosen", "rejected",
                    "segment_start", "segment_end", "chosen_timestamps", "rejected_timestamps",
                    "status", "filter_reason", "version", "created_at", "generator", "captions",
                    "prompt")


@click.command("pairs")
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


@click.command("review")
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


@click.command()
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


@click.command("export")
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
    bar, update = progress_bar("exporting", unit="pair")
    try:
        with bar:
            report = export_pairs(obj.store, out_dir, config, progress=update)
    except ExportError as err:
        raise click.ClickException(str(err))
    print_report(report, as_json,
                  (f"skipped pair {pair_id}: {why}" for pair_id, why in report.skipped))


@click.command("import")
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
    print_report(report, as_json,
                  (f"skipped line {line}: {message}" for line, message in report.skipped))


#: The commands this module adds to ``tpo`` (see :mod:`tpo.cli`).
COMMANDS = (pairs_cmd, review_cmd, restore, export_cmd, import_cmd)
