"""Write docs/cli.md, the reference of every `tpo` command, from the commands' own --help.

    python docs/cli_reference.py          # after changing a command or an option

tests/test_docs.py fails while docs/cli.md differs from what this writes (as sqlite-utils
keeps its CLI reference current with cog).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TARGET = ROOT / "docs" / "cli.md"
WIDTH = 96  # columns of the help text, fixed so the file does not depend on the terminal


def reference() -> str:
    from tpo.cli import cli

    parts = ["# `tpo` command reference", "",
             "Every command's `--help`, written by `python docs/cli_reference.py`; the README",
             "shows them at work.", ""]
    # Each command's context is a child of the group's, as when the command runs, so the
    # group's settings (-h as well as --help) apply here too.
    group = click.Context(cli, info_name="tpo", terminal_width=WIDTH, max_content_width=WIDTH,
                          **cli.context_settings)
    for name in sorted(cli.commands):
        command = cli.commands[name]
        ctx = click.Context(command, info_name=name, parent=group)
        parts += [f"## tpo {name}", "", "```", command.get_help(ctx).rstrip(), "```", ""]
    return "\n".join(parts)


if __name__ == "__main__":
    TARGET.write_text(reference(), encoding="utf-8")
    print(f"wrote {TARGET}")
