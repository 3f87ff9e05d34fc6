"""Servers the tests start as real processes (the app, `transformers serve`): wait until one
answers, and stop it, without leaving it behind."""

from __future__ import annotations

import subprocess
import time
from typing import Callable


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
