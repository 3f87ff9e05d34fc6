"""The documentation and the CLI agree (in the spirit of sqlite-utils' tests/test_docs.py):
every `tpo` command and each of its options appears in README.md or docs/, the command
reference docs/cli.md is current, and every `tpo …` command the README shows exists."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from tpo.cli import cli

REPO = Path(__file__).resolve().parents[1]
DOCS = "\n".join(p.read_text(encoding="utf-8")
                 for p in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))])
COMMANDS = sorted(cli.commands)


def options(command: click.Command) -> list[str]:
    return sorted(name for param in command.params if isinstance(param, click.Option)
                  for name in param.opts if name.startswith("--") and name != "--help")


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_is_documented(name):
    assert re.search(rf"\btpo {re.escape(name)}\b", DOCS), f"`tpo {name}` is not in the docs"


@pytest.mark.parametrize("name,option", [(c, o) for c in COMMANDS
                                         for o in options(cli.commands[c])])
def test_every_option_is_documented(name, option):
    assert re.search(rf"{re.escape(option)}\b", DOCS), f"`tpo {name} {option}` is not in the docs"


def test_every_command_the_readme_shows_exists():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    shown = set(re.findall(r"(?:^|[\s`$])tpo ([a-z][a-z-]+)", readme))
    assert shown, "the README shows no tpo command"
    assert sorted(shown - set(cli.commands)) == []


def test_the_command_reference_is_current():
    import runpy

    reference = runpy.run_path(str(REPO / "docs" / "cli_reference.py"))["reference"]
    assert (REPO / "docs" / "cli.md").read_text(encoding="utf-8") == reference(), (
        "docs/cli.md is out of date: run python docs/cli_reference.py")
