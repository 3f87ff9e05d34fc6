"""``tpo demo``, ``tpo ingest``, ``tpo videos``, ``tpo sample``: the video library."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import click

from tpo.media import video
from tpo.media.library import IngestReport, build_demo, ingest
from tpo.media.thumbs import format_time

from tpo.cli.common import Context, progress_bar, print_report, resolve_video


VIDEO_JSON_FIELDS = ("id", "path", "name", "duration_s", "fps", "n_frames", "width", "height",
                     "rotation", "codec", "status", "error", "sha256", "size_bytes", "added_at",
                     "pairs_pending", "pairs_accepted", "pairs_rejected", "pairs_filtered")


def _ingest_problems(report: IngestReport) -> Iterator[str]:
    return (f"failed: {path}: {error}" for path, error in report.failed)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_obj
def demo(obj: Context, as_json: bool) -> None:
    """Build the synthetic demo library (into DATA_DIR/demo) and ingest it."""
    s = obj.settings
    bar, update = progress_bar("rendering demo", unit="frame")
    with bar:
        report = build_demo(obj.store, s.demo_dir, scale=s.demo_scale, user=s.user, progress=update)
    print_report(report, as_json, _ingest_problems(report))


@click.command("ingest")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_obj
def ingest_cmd(obj: Context, paths: tuple[Path, ...], as_json: bool) -> None:
    """Add video files, or folders searched recursively, to the library.

    Files already in the library (same content) are skipped; unreadable files are recorded
    with their error and the rest go on.
    """
    bar, update = progress_bar("ingesting")
    with bar:
        report = ingest(obj.store, paths, user=obj.settings.user, progress=update)
    print_report(report, as_json, _ingest_problems(report))


@click.command()
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


@click.command()
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
    path = resolve_video(obj, video_ref)
    try:
        frames = video.sample(path, n, segment=segment, exclude_segment=exclude_segment,
                              sparse=sparse, seed=seed, decode=False)
    except (video.VideoError, ValueError) as err:
        raise click.ClickException(str(err))
    if as_json:
        click.echo(json.dumps({"timestamps": frames.timestamps, "indices": frames.indices}))
    else:
        click.echo(" ".join(f"{t:.3f}" for t in frames.timestamps))


#: The commands this module adds to ``tpo`` (see :mod:`tpo.cli`).
COMMANDS = (demo, ingest_cmd, videos, sample)
