"""The worker: ``python -m tpo.jobs run --db DB ID`` runs one queued job to its end.

It loads the job's kind, waits for its turn if the kind needs the GPU
(:mod:`tpo.jobs.scheduler`), records 'running', calls the kind's function with a
:class:`~tpo.jobs.progress.JobContext`, and records the outcome: succeeded (with output),
failed (with a one-line error; the traceback goes to the log) or cancelled. SIGTERM, which
:func:`tpo.jobs.cancel` sends, only sets the context's cancel flag; the job stops at its next
``ctx.check_cancelled()``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import threading
import time
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from tpo.config import Settings
from tpo.jobs import registry, scheduler
from tpo.jobs.progress import JobCancelled, JobContext
from tpo.media.video import decoding
from tpo.store import Store, now

EXIT_SUCCEEDED = 0
EXIT_FAILED = 1
EXIT_CANCELLED = 128 + signal.SIGTERM  # what a shell reports for a process ended by SIGTERM

EXTERNAL_STOP_ERROR = "stopped by a signal from outside TPO Studio (not a cancel request)"


def run(db_path: str | Path, job_id: int, *, gpu_slots: int = 1) -> int:
    """Run queued job ``job_id`` of the database at ``db_path`` to its end, at most
    ``gpu_slots`` GPU jobs at once (see :mod:`tpo.jobs.scheduler`). Returns the process exit
    code."""
    store = Store(db_path)
    try:
        return _run(store, int(job_id), gpu_slots)
    finally:
        store.close()


def _run(store: Store, job_id: int, gpu_slots: int) -> int:
    row = store.get_job(job_id)
    if row["status"] != "queued":
        return _not_started(store, job_id)
    try:
        kind = registry.load(row["kind"])
    except BaseException as err:  # an import error too: the job's, not the worker's
        traceback.print_exc()
        if not store.transition_job(job_id, ("queued",), status="failed", error=_one_line(err),
                                    pid=os.getpid(), finished_at=now()):
            return _not_started(store, job_id)
        return EXIT_FAILED
    ctx = JobContext(job_id, store, row["params"])
    with _sigterm_requests_cancel(ctx):  # until the outcome is recorded, not just the job
        with ctx:
            if not scheduler.start(store, kind, ctx, slots=gpu_slots):
                ctx.close()  # its last queue report lands before the outcome
                return _stopped_while_queued(store, ctx)
            print(f"{now()} job {job_id} ({kind.name}) started, pid {os.getpid()}, "
                  f"params {json.dumps(row['params'])}", flush=True)
            started = time.monotonic()
            status, output, error = _call_job(ctx, kind)
        recorded = _record_outcome(store, job_id, status, output, error)
    print(f"{now()} job {job_id} {recorded} after {time.monotonic() - started:.1f} s"
          + (f": {error}" if recorded == "failed" and error else ""), flush=True)
    return {"succeeded": EXIT_SUCCEEDED, "cancelled": EXIT_CANCELLED}.get(recorded, EXIT_FAILED)


def _stopped_while_queued(store: Store, ctx: JobContext) -> int:
    """The job did not start: cancelled while it waited for the GPU, or stopped by a signal
    from outside (then recorded as such)."""
    if ctx.cancel_requested:
        store.transition_job(ctx.job_id, ("queued",), status="cancelled",
                             error=EXTERNAL_STOP_ERROR, finished_at=now())
    return _not_started(store, ctx.job_id)


def _not_started(store: Store, job_id: int) -> int:
    """The job was not 'queued' when its worker came to start it; say why, do nothing more."""
    status = store.get_job(job_id)["status"]
    if status == "cancelling":  # cancel() reached us before the job started
        store.transition_job(job_id, ("cancelling",), status="cancelled", finished_at=now())
        status = "cancelled"
    print(f"{now()} job {job_id} is {status}, not queued: not starting it", flush=True)
    return EXIT_CANCELLED if status == "cancelled" else EXIT_FAILED


def _call_job(ctx: JobContext, kind: registry.JobKind) -> tuple[str, dict | None, str | None]:
    """Run the kind's function; returns ``(status, output, error)``, never raises."""
    try:
        return "succeeded", _checked_output(kind.run(ctx)), None
    except (JobCancelled, KeyboardInterrupt):
        return "cancelled", None, None
    except BaseException as err:  # SystemExit too: a job must not end the worker unrecorded
        traceback.print_exc()
        if ctx.cancel_requested:
            # Typically a child process (accelerate) that got the same SIGTERM and died,
            # failing the job that waited on it: the cancellation, not a failure.
            ctx.log("the error above came after cancel was requested: counted as cancelled")
            return "cancelled", None, None
        return "failed", None, _one_line(err)


def _record_outcome(store: Store, job_id: int, status: str, output: dict | None,
                    error: str | None) -> str:
    """Write the job's outcome unless one is already recorded; returns the recorded status."""
    finished = now()
    if status == "succeeded":
        store.transition_job(job_id, ("running", "cancelling"), status=status, progress=1.0,
                             output=json.dumps(output), finished_at=finished)
    elif status == "failed":
        store.transition_job(job_id, ("running", "cancelling"), status=status, error=error,
                             finished_at=finished)
    elif not store.transition_job(job_id, ("cancelling",), status=status,
                                  finished_at=finished):
        # Still 'running': nobody asked through cancel(); say where the stop came from.
        store.transition_job(job_id, ("running",), status=status, error=EXTERNAL_STOP_ERROR,
                             finished_at=finished)
    return store.get_job(job_id)["status"]


@contextmanager
def _sigterm_requests_cancel(ctx: JobContext) -> Iterator[None]:
    """While inside, SIGTERM sets ``ctx.cancel_requested`` instead of ending the process."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may install handlers; run() is called from there
        return

    def request_cancel(signum: int, frame: object) -> None:
        ctx.cancel_requested = True  # no I/O here: the handler may interrupt a print

    previous = signal.signal(signal.SIGTERM, request_cancel)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _checked_output(output: Any) -> dict:
    if output is None:
        return {}
    if not isinstance(output, dict):
        raise TypeError(f"a job must return a dict, got {type(output).__name__}")
    json.dumps(output)  # not JSON-able: fail here, as the job's error, not at recording
    return output


def _one_line(err: BaseException) -> str:
    """The error as 'ValueError: what went wrong', on one line and not too long."""
    message = " ".join(str(err).split())
    text = f"{type(err).__name__}: {message}" if message else type(err).__name__
    return text if len(text) <= 500 else text[:499] + "…"


def main(argv: list[str] | None = None) -> int:
    """``python -m tpo.jobs run --db PATH ID``: how submit() starts a worker. The number of
    GPU slots comes from the environment (``TPO_GPU_SLOTS``), which the worker inherits."""
    parser = argparse.ArgumentParser(
        prog="python -m tpo.jobs",
        description="Run a TPO Studio background job. The app and `tpo` start these; "
                    "running one by hand is for debugging.")
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="run one queued job to its end")
    run_parser.add_argument("--db", required=True, type=Path, help="the SQLite database")
    run_parser.add_argument("job_id", type=int)
    args = parser.parse_args(argv)
    # Packet indexes cached on disk beside the database (DATA/cache/index for the default
    # DATA/tpo.db, where `tpo` commands cache them): a generation or evaluation job reopens
    # videos indexed before (by an ingest, an earlier job) without demuxing them again.
    with decoding(index_dir=args.db.parent / "cache" / "index"):
        return run(args.db, args.job_id, gpu_slots=Settings.from_env().gpu_slots)
