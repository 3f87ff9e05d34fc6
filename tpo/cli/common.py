"""What every ``tpo`` command shares: the context (settings, the store opened on first use,
the packet-index cache folder), the group that turns user-facing errors into one line, the
``--backend`` option, progress bars and report printing."""

from __future__ import annotations

import functools
import json
import sqlite3
import sys
from collections.abc import Iterable
from contextlib import AbstractContextManager
from pathlib import Path

import click
from tqdm import tqdm

from tpo.config import Settings
from tpo.errors import TPOError
from tpo.media.video import BACKENDS, BackendUnavailable, check_backend, decoding
from tpo.store import DatabaseError, Store, StoreError, database_error


class Context:
    """What every command gets: settings, and the store opened on first use."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._store: Store | None = None

    @property
    def index_dir(self) -> Path:
        """Where videos' packet indexes are cached on disk, by content hash
        (:class:`tpo.media.index.IndexCache`): every command, and the processes it starts,
        reopens a video indexed before without demuxing it again."""
        return self.settings.index_dir

    def decoding(self) -> AbstractContextManager:
        """The block every command runs in (:func:`tpo.media.video.decoding`): videos'
        packet indexes cached in :attr:`index_dir`."""
        return decoding(index_dir=self.index_dir)

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


class Group(click.Group):
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


def backend_option(fn):
    """``--backend auto|pyav|torchcodec|decord``, one declaration for every command that
    reads frames: the command runs inside :func:`tpo.media.video.decoding` with it, so every
    video it opens (and the processes it starts, see :mod:`tpo.jobs.ranks`) is decoded by
    that reader. A backend not installed here ends the command with one line naming it and
    the available ones, before any work."""
    @functools.wraps(fn)
    def run(*args, backend: str, **kwargs):
        try:
            check_backend(backend)
        except BackendUnavailable as err:
            raise click.ClickException(str(err)) from None
        with decoding(backend=backend):
            return fn(*args, **kwargs)

    return click.option(
        "--backend", type=click.Choice(BACKENDS), default="auto", show_default=True,
        help="Video reader: auto (PyAV, keyframe groups in parallel), pyav, torchcodec or "
             "decord (refused on files where it returns wrong frames).")(run)


def progress_bar(desc: str, unit: str = "file"):
    """A tqdm bar on stderr driven by ``(done, total, label)`` callbacks."""
    bar = tqdm(desc=desc, unit=unit, file=sys.stderr, leave=False)

    def update(done: int, total: int, label: str) -> None:
        bar.total = total
        bar.set_postfix_str(Path(label).name if label else "", refresh=False)
        bar.update(done - bar.n)  # update() honours tqdm's refresh interval

    return bar, update


def print_report(report, as_json: bool, problems: Iterable[str] = ()) -> None:
    """A run's report: its ``as_dict()`` as JSON for scripts, else each problem line on
    stderr and its ``summary()``."""
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
        return
    for line in problems:
        click.echo(line, err=True)
    click.echo(report.summary())


def resolve_video(obj: Context, ref: str) -> Path:
    """A path as given if the file exists, else a library id."""
    if Path(ref).exists():
        return Path(ref)
    if ref.isdigit():
        return Path(video_row(obj.store, int(ref))["path"])
    raise click.ClickException(f"{ref}: no such file, and not a video id (see `tpo videos`)")


def floats(text: str | None, option: str) -> tuple[float, ...] | None:
    from tpo.evaluation.evaluate import float_list

    try:
        return float_list(text)
    except ValueError:
        raise click.UsageError(f"{option} takes numbers separated by commas, got {text!r}")


def video_row(store: Store, video_id: int) -> dict:
    try:
        return store.get_video(video_id)
    except StoreError as err:
        raise click.ClickException(str(err))
