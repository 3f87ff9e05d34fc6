"""The rooms of the code (docs/architecture.md): the library never imports gradio, and the app
process never loads torch or transformers (models run in job processes)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", sorted((REPO / "tpo").glob("*.py")), ids=lambda p: p.name)
def test_library_never_imports_gradio(path):
    if path.name == "cli.py":  # `tpo serve` starts the web shell, lazily
        return
    assert "gradio" not in imported_modules(path)


@pytest.mark.parametrize("path", sorted((REPO / "ui").glob("*.py")), ids=lambda p: p.name)
def test_ui_never_imports_torch_or_transformers(path):
    assert not {"torch", "transformers", "trl", "peft"} & imported_modules(path)


def test_the_app_process_does_not_load_torch():
    code = ("import sys, ui.app, ui.server; "
            "print(sorted({'torch', 'transformers', 'trl', 'datasets'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"


def test_every_error_meant_for_a_person_shares_one_base():
    """Each ``*Error`` class the library defines is a TPOError, so the shells catch one type
    (and a bug, a plain exception, is never shown as a user message)."""
    import importlib
    import inspect

    from tpo.errors import TPOError

    found = {}
    for path in sorted((REPO / "tpo").glob("*.py")):
        module = importlib.import_module(f"tpo.{path.stem}")
        for name, obj in vars(module).items():
            if (inspect.isclass(obj) and issubclass(obj, Exception) and name.endswith("Error")
                    and obj.__module__ == module.__name__):
                found[f"{module.__name__}.{name}"] = obj
    assert len(found) >= 10, found  # the check really looked
    assert [name for name, cls in found.items() if not issubclass(cls, TPOError)] == []
