"""The ``tpo`` command: a thin shell over the library.

Each command parses its arguments, calls :mod:`tpo`, and turns errors into a clear message
and a non-zero exit status. ``--json`` output is meant for scripts and is stable.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from tqdm import tqdm

from tpo import __version__, video
from tpo.config import Settings
from tpo.library import IngestReport, build_demo, ingest
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
        bar.n = done
        bar.set_postfix_str(Path(label).name if label else "", refresh=False)
        bar.refresh()

    return bar, update


def _print_report(report: IngestReport, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
        return
    for path, error in report.failed:
        click.echo(f"failed: {path}: {error}", err=True)
    click.echo(report.summary())


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_obj
def demo(obj: Context, as_json: bool) -> None:
    """Build the synthetic demo library (into DATA_DIR/demo) and ingest it."""
    s = obj.settings
    bar, update = _bar("rendering demo", unit="frame")
    with bar:
        report = build_demo(obj.store, s.demo_dir, scale=s.demo_scale, user=s.user, progress=update)
    _print_report(report, as_json)


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
    _print_report(report, as_json)


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
        try:
            return Path(obj.store.get_video(int(ref))["path"])
        except StoreError as err:
            raise click.ClickException(str(err))
    raise click.ClickException(f"{ref}: no such file, and not a video id (see `tpo videos`)")


@cli.command()
@click.option("--host", default=None, help="Interface to listen on [env GRADIO_SERVER_NAME].")
@click.option("--port", type=int, default=None, help="Port [env GRADIO_SERVER_PORT; default 7860].")
@click.pass_obj
def serve(obj: Context, host: str | None, port: int | None) -> None:
    """Start the TPO Studio web app."""
    from app import main as serve_app  # the app lives beside the package, not inside it

    serve_app(obj.settings, host=host, port=port)


def main() -> None:
    cli(prog_name="tpo")


if __name__ == "__main__":
    main()
