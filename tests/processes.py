"""Servers and workers the tests start as real processes (the app, `transformers serve`, job
workers): wait until one answers or a condition holds, and stop it, without leaving it
behind."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Callable

import pytest

SERVE_START_TIMEOUT_S = 180  # importing torch and transformers on a busy 2-core machine


def wait_until_ready(proc: subprocess.Popen, ready: Callable[[], bool], timeout_s: float,
                     what: str, output: Callable[[], str]) -> None:
    """Poll ``ready()`` (False or an OSError: not yet) every 0.5 s until it is True; raise
    RuntimeError with ``output()`` if ``proc`` exits first or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{output()}")
        try:
            if ready():
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"{what} did not answer within {timeout_s:g} s:\n{output()}")
        time.sleep(0.5)


def stop(proc: subprocess.Popen, grace_s: float = 20) -> None:
    """SIGTERM, then SIGKILL if it has not ended after ``grace_s`` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wait_until(predicate: Callable[[], bool], what: str, timeout_s: float = 60.0) -> None:
    """Poll ``predicate()`` every 50 ms until it is true; fail the test naming ``what`` after
    ``timeout_s`` seconds."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.05)


@contextlib.contextmanager
def transformers_serve(model_dir: str | Path) -> Iterator[str]:
    """A real ``transformers serve`` of ``model_dir`` on a free local port (CPU, offline):
    yields its base URL; skips the test when the serving extras are not installed."""
    import httpx
    from transformers.utils.import_utils import is_serve_available

    if not is_serve_available():
        pytest.skip("transformers serve needs fastapi, uvicorn, pydantic and openai")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "transformers.cli.transformers", "serve", str(model_dir),
           "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            return httpx.get(f"{url}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until_ready(proc, answers, SERVE_START_TIMEOUT_S, "transformers serve",
                         proc.stdout.read)
        yield url
    finally:
        stop(proc)
