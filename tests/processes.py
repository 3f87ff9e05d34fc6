"""Servers and workers the tests start as real processes (the app, `transformers serve`, job
workers): wait until one answers or a condition holds, and stop it, without leaving it
behind."""

from __future__ import annotations

import subprocess
import time
from typing import Callable

import pytest


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
