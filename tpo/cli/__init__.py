"""The ``tpo`` command: a thin shell over the library.

Each command parses its arguments, calls :mod:`tpo`, and turns errors into a clear message
and a non-zero exit status. ``--json`` output is meant for scripts and is stable.

The commands live in a module per stage (:mod:`tpo.cli.media`, ``models``, ``generation``,
``curation``, ``training``, ``evaluation``); what they share is in :mod:`tpo.cli.common`.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path

import click

from tpo import __version__
from tpo.cli import curation, evaluation, generation, media, models, training
from tpo.cli.common import Context, Group
from tpo.config import Settings


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
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
    ctx.with_resource(ctx.obj.decoding())  # packet indexes cached under DATA/cache/index


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


for module in (media, models, generation, curation, training, evaluation):
    for command in module.COMMANDS:
        cli.add_command(command)
