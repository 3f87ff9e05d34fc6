"""Browser-test fixtures: Debian's Chromium for Playwright, and the real app in a subprocess.

Playwright cannot download its own browser here, so it drives ``/usr/bin/chromium``
(docs/architecture.md). The app is started exactly as a user starts it (``python app.py``), on a free
port, with its data in a temporary folder and a shortened demo library.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import expect
from processes import stop, wait_until_ready

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
STARTUP_TIMEOUT_S = 240  # the first start renders and ingests the demo library
# A 2-core CI machine running the app, Chromium and job processes at once can take longer
# than Playwright's default 5 s to update the page; this is a deadline, not a measurement.
expect.set_options(timeout=20_000)


def pytest_collection_modifyitems(config, items):
    if Path(CHROMIUM).exists():
        return
    if os.environ.get("CI"):
        raise pytest.UsageError(f"browser tests need Chromium at {CHROMIUM} (apt-get install chromium)")
    skip = pytest.mark.skip(reason="Chromium not installed (apt-get install chromium)")
    for item in items:
        if "e2e" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update"],
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def app_data(tmp_path_factory) -> Path:
    """The running app's data folder (its database is ``tpo.db`` there)."""
    return tmp_path_factory.mktemp("app-data")


@contextmanager
def running_app(data: Path, **env_overrides: str):
    """``python app.py`` on a free port with its data in `data`; yields its URL, then stops it."""
    port = free_port()
    env = {**os.environ, "TPO_DATA_DIR": str(data), "TPO_DEMO_SCALE": "0.1", "TPO_USER": "e2e",
           "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port),
           "GRADIO_ANALYTICS_ENABLED": "False", **env_overrides}
    log = open(data / "app.log", "w")
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=REPO, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_until_ready(proc, lambda: bool(urllib.request.urlopen(url, timeout=2)),
                         STARTUP_TIMEOUT_S, "the app", (data / "app.log").read_text)
        yield url
    finally:
        stop(proc)
        log.close()


@pytest.fixture(scope="session")
def app_url(app_data):
    """Start ``python app.py`` with a fresh data folder; yield its URL; stop it."""
    with running_app(app_data) as url:
        yield url
