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


@pytest.mark.parametrize("path", sorted((REPO / "tpo").rglob("*.py")), ids=lambda p: p.name)
def test_library_never_imports_gradio_or_the_app(path):
    # `tpo serve` reaches the app through the "tpo.shells" entry point, not an import
    assert not {"gradio", "ui", "app"} & imported_modules(path)


def test_the_app_is_a_declared_front_end_and_no_top_level_app_module_is_installed(tmp_path):
    code = ("import importlib.util as u; from importlib.metadata import entry_points as e; "
            "print(u.find_spec('app') is None, [p.value for p in e(group='tpo.shells')])")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, check=True).stdout.split(maxsplit=1)
    assert out[0] == "True"  # outside the repository there is no module named `app`
    assert out[1].strip() == "['ui.server:main']"


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
    for path in sorted((REPO / "tpo").rglob("*.py")):
        dotted = ".".join(path.relative_to(REPO).with_suffix("").parts)
        module = importlib.import_module(dotted.removesuffix(".__init__"))
        for name, obj in vars(module).items():
            if (inspect.isclass(obj) and issubclass(obj, Exception) and name.endswith("Error")
                    and obj.__module__ == module.__name__):
                found[f"{module.__name__}.{name}"] = obj
    assert len(found) >= 10, found  # the check really looked
    assert [name for name, cls in found.items() if not issubclass(cls, TPOError)] == []


def test_tpo_serve_starts_the_app_through_its_entry_point(tmp_path):
    import os
    import socket
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "TPO_DATA_DIR": str(tmp_path), "TPO_DEMO": "0",
           "GRADIO_ANALYTICS_ENABLED": "False"}
    proc = subprocess.Popen([sys.executable, "-m", "tpo.cli", "serve", "--port", str(port)],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.stdout.read()
            try:
                page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read()
                break
            except OSError:
                assert time.monotonic() < deadline, "tpo serve did not answer in 120 s"
                time.sleep(0.5)
        assert b"TPO Studio" in page
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.mark.parametrize("path", sorted(p for folder in ("tpo", "ui", "bench")
                                        for p in (REPO / folder).rglob("*.py")),
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_module_imports_another_modules_private_names(path):
    """A name with a leading underscore is its module's own; what another module needs is
    public (tpo.models.vlm.load_model, tpo.training.train.log_handler, ...)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    private = [f"{node.module}.{a.name}" for node in ast.walk(tree)
               if isinstance(node, ast.ImportFrom) and node.module and not node.level
               for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
    assert private == []
