"""``tpo pairs``, ``tpo review``, ``tpo restore``, ``tpo export``, ``tpo import``: curating pairs;
``tpo assign``, ``tpo progress``, ``tpo agreement``, ``tpo guidelines``: curating as a team."""

from __future__ import annotations

import json
from pathlib import Path

import click

from tpo.curation import teams
from tpo.curation.review import effective, restore_all, review, undo
from tpo.store import StoreError
from tpo.media.thumbs import format_time

from tpo.cli.common import Context, backend_option, progress_bar, print_report


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
@click.option("--undo", "action", flag_value="undo",
              help="Revert your last action on the pair (recorded as an action of its own).")
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
        raise click.UsageError("give --accept, --reject, --swap, --reset, --undo, an --edit-... "
                               "or --note")
    try:
        if action == "undo":
            pair = undo(obj.store, pair_id, user=user or obj.settings.user)
        else:
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
@click.argument("pair_ids", nargs=-1, type=int, metavar="[PAIR_ID]...")
@click.option("--all", "every", is_flag=True,
              help="Restore every filtered pair (in one transaction, each audited).")
@click.option("--reason", default=None,
              help="With --all: only this reason category (see `tpo restore --reasons`).")
@click.option("--reasons", "list_reasons", is_flag=True,
              help="List the filtered pairs per reason category, restore nothing.")
@click.option("--user", default=None, help="Name recorded in the audit trail [env TPO_USER].")
@click.pass_obj
def restore(obj: Context, pair_ids: tuple[int, ...], every: bool, reason: str | None,
            list_reasons: bool, user: str | None) -> None:
    """Put filtered pairs back in the review queue (status pending); the filter's reason stays."""
    if list_reasons:
        reasons = obj.store.filtered_reasons()
        if not reasons:
            click.echo("No filtered pairs.")
        for key, n in reasons.items():
            click.echo(f"{n:>7}  {key}")
        return
    if every == bool(pair_ids):
        raise click.UsageError("give PAIR_IDs, or --all (maybe with --reason), not both")
    if reason and not every:
        raise click.UsageError("--reason goes with --all")
    if every:
        n = restore_all(obj.store, user=user or obj.settings.user, reason=reason)
        click.echo(f"restored {n} filtered pairs" + (f" ({reason})" if reason else "")
                   + " to pending")
        return
    for pair_id in pair_ids:
        try:
            review(obj.store, pair_id, "restore", user=user or obj.settings.user)
        except StoreError as err:
            raise click.ClickException(str(err))
        click.echo(f"pair {pair_id}: filtered -> pending")


@click.command("export")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["jsonl", "parquet", "tpo-json", "llamafactory"]),
              default="jsonl", show_default=True,
              help="TRL preference dataset (jsonl/parquet), the TPO/LLaVA-Hound JSON layout, or "
                   "LLaMA-Factory's sharegpt preference layout with dataset_info.json.")
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
@click.option("--media", type=click.Choice(["images", "video"]), default="images",
              show_default=True,
              help="llamafactory: the frames as images (the paper's record) or the video's path "
                   "in its videos column (LLaMA-Factory samples the frames).")
@click.option("--min-agree", type=click.IntRange(min=1), default=None, metavar="K",
              help="Only pairs that at least K reviewers decided as --status (team review).")
@backend_option
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_obj
def export_cmd(obj: Context, out_dir: Path, fmt: str, status: str, frames_from: str,
               frames: int, embed_images: bool, media: str, min_agree: int | None,
               as_json: bool) -> None:
    """Export pairs (default: accepted) to OUT_DIR, loadable with datasets.load_dataset(OUT_DIR).

    Each record holds N frames uniform over the whole video (N = min(--frames, video
    seconds)), the same for both answers, with their times in the prompt and `frame_times`.
    """
    from tpo.curation.export import ExportConfig, ExportError, export_pairs

    if frames < 1:
        raise click.UsageError(f"--frames must be at least 1 (frames per record), got {frames}")
    try:
        config = ExportConfig(format=fmt, status=status, frames_from=frames_from,
                              frames=frames, embed_images=embed_images, media=media,
                              min_agree=min_agree)
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


@click.command("assign")
@click.argument("reviewers", nargs=-1, metavar="REVIEWER...")
@click.option("--by", type=click.Choice(teams.BY), default="count", show_default=True,
              help="count: equal runs of pairs; video: a video's pairs to one reviewer; kind: "
                   "reviewers shared out over the pair kinds.")
@click.option("--overlap", type=click.IntRange(min=1), default=1, show_default=True,
              help="Reviewers per overlap pair (2 or more measures agreement).")
@click.option("--overlap-fraction", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Share of the pairs that get --overlap reviewers, e.g. 0.1.")
@click.option("--status", type=click.Choice(["pending", "accepted", "rejected", "filtered"]),
              default="pending", show_default=True,
              help="Assign the unassigned pairs with this status.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the overlap sample.")
@click.option("--clear", is_flag=True,
              help="Take back the undecided pairs of REVIEWER... (none named: everyone's).")
@click.option("--user", default=None, help="Name recorded as who assigned [env TPO_USER].")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_obj
def assign_cmd(obj: Context, reviewers: tuple[str, ...], by: str, overlap: int,
               overlap_fraction: float, status: str, seed: int, clear: bool, user: str | None,
               as_json: bool) -> None:
    """Split the unassigned pairs (default: pending) among named reviewers.

    Each reviewer's queue is then their own share; pairs assigned before keep their
    reviewers, so run it again when new pairs arrive. With --overlap K --overlap-fraction F,
    a random F of the pairs go to K reviewers each (see `tpo agreement`).
    """
    if clear:
        n = teams.unassign(obj.store, list(reviewers) or None)
        click.echo(json.dumps({"removed": n}) if as_json else
                   f"took back {n} undecided assignments")
        return
    if not reviewers:
        raise click.UsageError("name the reviewers: tpo assign ana bo cy")
    report = teams.assign(obj.store, reviewers, by=by, overlap=overlap,
                          overlap_fraction=overlap_fraction, status=status, seed=seed,
                          user=user or obj.settings.user)
    print_report(report, as_json)


@click.command("progress")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list, one object per reviewer.")
@click.pass_obj
def progress_cmd(obj: Context, as_json: bool) -> None:
    """Each reviewer's progress: pairs assigned, decided, left, and actions per hour."""
    rows = teams.progress(obj.store)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("No reviewers yet: assign pairs with `tpo assign`, or review some.")
        return
    click.echo(f"{'reviewer':<16} {'assigned':>8} {'done':>6} {'left':>6} {'actions':>8} "
               f"{'per hour':>8} {'last hour':>9}")
    for r in rows:
        rate = "-" if r["actions_per_hour"] is None else f"{r['actions_per_hour']:.0f}"
        click.echo(f"{r['reviewer'][:16]:<16} {r['assigned']:>8} {r['done']:>6} {r['left']:>6} "
                   f"{r['actions']:>8} {rate:>8} {r['last_hour']:>9}")


@click.command("agreement")
@click.option("--disagreements", "show_ids", is_flag=True,
              help="List the open disagreements (the adjudication queue) by pair id.")
@click.option("--json", "as_json", is_flag=True, help="Print the agreement as JSON.")
@click.pass_obj
def agreement_cmd(obj: Context, show_ids: bool, as_json: bool) -> None:
    """Agreement between reviewers: percent and Cohen's kappa per reviewer pair, percent and
    Fleiss' kappa overall, and the pairs they disagree on."""
    result = teams.agreement(obj.store)
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2))
        return
    if show_ids:
        ids = result.open_disagreements
        click.echo(" ".join(str(i) for i in ids) if ids else "No open disagreements.")
        return
    if result.n_items:
        click.echo(f"{'reviewer A':<16} {'reviewer B':<16} {'pairs':>6} {'agree %':>8} "
                   f"{'kappa':>7}")
        for a, b, n, percent, kappa in result.rows():
            percent, kappa = ("-" if v is None else v for v in (percent, kappa))
            click.echo(f"{str(a)[:16]:<16} {str(b)[:16]:<16} {n:>6} {percent:>8} {kappa:>7}")
    click.echo(result.summary())


@click.command("guidelines")
@click.option("--set", "source", type=click.File("r", encoding="utf-8"), default=None,
              metavar="FILE", help="Save FILE (Markdown; - reads stdin) as the new version.")
@click.option("--version", "version", type=int, default=None, help="Show this version.")
@click.option("--history", is_flag=True, help="List the saved versions.")
@click.option("--user", default=None, help="Name recorded with a new version [env TPO_USER].")
@click.pass_obj
def guidelines_cmd(obj: Context, source, version: int | None, history: bool,
                   user: str | None) -> None:
    """Show the review guidelines (Markdown, versioned), or save a new version."""
    if source is not None:
        text = source.read()
        if not text.strip():
            raise click.UsageError("the guidelines are empty")
        number = obj.store.set_guidelines(text, user=user or obj.settings.user)
        click.echo(f"saved the guidelines as version {number}")
        return
    if history:
        for row in obj.store.guideline_versions():
            click.echo(f"v{row['version']:<4} {row['created_at']}  {row['user'] or ''}")
        return
    row = obj.store.guidelines(version)
    if row is None:
        raise click.ClickException("no guidelines yet: save some with `tpo guidelines --set FILE`"
                                   if version is None else f"no guidelines version {version}")
    click.echo(f"<!-- guidelines v{row['version']}, {row['created_at']}, {row['user'] or '?'} -->")
    click.echo(row["text"])


#: The commands this module adds to ``tpo`` (see :mod:`tpo.cli`).
COMMANDS = (pairs_cmd, review_cmd, restore, export_cmd, import_cmd, assign_cmd, progress_cmd,
            agreement_cmd, guidelines_cmd)
