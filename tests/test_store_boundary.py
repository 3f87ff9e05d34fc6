"""All SQL lives in the store package: no other module of the library or the app reaches a
connection (``.db``), opens a transaction to write tables itself, or holds an SQL statement."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SQL = re.compile(r"^\s*(SELECT|INSERT INTO|UPDATE \w+ SET|DELETE FROM|CREATE|ALTER|PRAGMA)\s")


def outside_the_store() -> list[Path]:
    return sorted(p for folder in ("tpo", "ui") for p in (REPO / folder).rglob("*.py")
                  if (REPO / "tpo" / "store") not in p.parents)


@pytest.mark.parametrize("path", outside_the_store(),
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_sql_outside_the_store(path):
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        # `args.db` is an argparse option (a path), not a connection
        if (isinstance(node, ast.Attribute) and node.attr == "db"
                and ast.unparse(node.value) != "args"):
            found.append(f"{node.lineno}: {ast.unparse(node)}")
        elif (isinstance(node, ast.withitem) and node.optional_vars is not None
              and "transaction" in ast.unparse(node.context_expr)):
            found.append(f"{node.context_expr.lineno}: with ... as {ast.unparse(node.optional_vars)}")
        elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
              and SQL.match(node.value)):
            found.append(f"{node.lineno}: {node.value[:40]!r}")
    assert found == []
