"""Submitting, inspecting and stopping jobs: what the app and the CLI call.

A job's state is its row in the store (status, progress, output, error); see
:mod:`tpo.jobs` for its life. Reading a row settles it first when it is unfinished but its
worker is gone (:func:`reconcile`), so whoever looks learns of a dead worker.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from tpo.jobs import process
from tpo.jobs.registry import check_known
from tpo.store import ACTIVE_STATUSES, FINISHED_STATUSES, JOB_STATUSES, Store, now

ORPHAN_ERROR = "the app restarted while this job was running, and the job's process is gone"


def submit(store: Store, kind: str, params: Mapping[str, Any], *, log_dir: str | Path,
           python: str = sys.executable) -> int:
    """Queue a job and start its worker process; returns the job id.

    Raises ValueError for an unknown kind and TypeError for params that are not JSON, both
    before anything is written. If the worker cannot be started (a bad ``python``), the
    job is recorded as failed and the OSError is raised.
    """
    check_known(kind)
    json.dumps(dict(params))  # not JSON: TypeError here, before anything is written
    log_dir = Path(log_dir).resolve()
    log_dir.mkdir(parents=True, exist_ok=True)
    with store.transaction():
        job_id = store.add_job(kind, params)
        log_path = log_dir / f"job-{job_id}.log"
        store.update_job(job_id, {"log_path": str(log_path)})
    try:
        proc = process.spawn_worker(python, store.path, job_id, log_path)
    except OSError as err:
        store.transition_job(job_id, ACTIVE_STATUSES, status="failed", finished_at=now(),
                             error=f"could not start the job's process: {err}")
        raise
    threading.Thread(target=process.watch_worker, args=(store, job_id, proc),
                     name=f"tpo-job-{job_id}-watcher", daemon=True).start()
    store.update_job(job_id, {"pid": proc.pid})  # the worker records it too; same value
    return job_id


def get(store: Store, job_id: int) -> dict:
    """The job's row, params and output decoded; a job whose process died is settled first.

    Raises StoreError for an unknown id.
    """
    return reconcile(store, store.get_job(job_id))


def list_jobs(store: Store, *, kind: str | None = None,
              status: str | Iterable[str] | None = None, limit: int = 50) -> list[dict]:
    """Jobs, newest first, optionally of one kind and of some statuses (a name or several)."""
    for row in store.active_jobs():
        reconcile(store, row)
    statuses = None
    if status is not None:
        statuses = (status,) if isinstance(status, str) else tuple(status)
        unknown = set(statuses) - set(JOB_STATUSES)
        if unknown:
            raise ValueError(f"unknown job status {sorted(unknown)}; statuses: {JOB_STATUSES}")
    return store.list_jobs(kind=kind, statuses=statuses, limit=limit)


def cancel(store: Store, job_id: int, *, force: bool = False) -> dict:
    """Request cancellation; returns the row. A finished job is returned unchanged.

    A job with a live worker (running, or queued and waiting for the GPU) becomes
    'cancelling' and its process group gets SIGTERM; it is 'cancelled' once the worker
    stops. A job without one (queued before its worker started, or whose worker is gone) is
    'cancelled' at once. ``force`` SIGKILLs the worker's group and records 'cancelled' at
    once, for a job that does not stop.
    """
    row = get(store, job_id)
    if row["status"] in FINISHED_STATUSES:
        return row
    pid = row["pid"]
    alive = pid is not None and process.worker_alive(store.path, job_id, pid)
    if alive:
        # The request is recorded before the signal, so whoever then sees the worker die
        # (it, its watcher, a get()) records 'cancelled' rather than a crash.
        store.transition_job(job_id, ("queued", "running"), status="cancelling")
        process.signal_group(pid, signal.SIGKILL if force else signal.SIGTERM)  # again: harmless
    if force or not alive:
        # Nothing left to wait for. A worker that starts after this finds the job
        # cancelled and does nothing.
        store.transition_job(job_id, ACTIVE_STATUSES, status="cancelled", finished_at=now())
    return get(store, job_id)


def recover_orphans(store: Store) -> list[int]:
    """At app start: settle every unfinished job whose process is gone; returns their ids.

    They become failed with :data:`ORPHAN_ERROR` (cancelled if they were being cancelled).
    Workers that survived the restart are left alone: they still record their outcome.
    """
    recovered = []
    # Rows without a pid belong to a submit() between its insert and its spawn: only
    # here, at app start, may they be taken for dead.
    for row in store.active_jobs(with_pid_only=False):
        pid = row["pid"]
        if pid is not None and process.worker_alive(store.path, row["id"], pid):
            continue
        if store.settle_ended_job(row["id"], ORPHAN_ERROR, pid=pid):
            recovered.append(row["id"])
    return recovered


def metrics(store: Store, job_id: int, name: str | None = None) -> list[dict]:
    """The job's metric rows (id, job_id, step, name, value, at) in the order written."""
    return store.job_metrics(job_id, name)


def wait(store: Store, job_id: int, timeout_s: float, poll_s: float = 0.2) -> dict:
    """Poll until the job is finished or ``timeout_s`` passed; returns the row either way."""
    deadline = time.monotonic() + timeout_s
    while True:
        row = get(store, job_id)
        remaining = deadline - time.monotonic()
        if row["status"] in FINISHED_STATUSES or remaining <= 0:
            return row
        time.sleep(min(poll_s, remaining))


def reconcile(store: Store, row: dict) -> dict:
    """Settle ``row`` if it is unfinished but its worker is gone; returns the current row."""
    if row["status"] not in ACTIVE_STATUSES or row["pid"] is None:
        return row
    if process.worker_alive(store.path, row["id"], row["pid"]):
        return row
    store.settle_ended_job(row["id"], process.ended_error(None), pid=row["pid"])
    return store.get_job(row["id"])


def log_tail(row: Mapping[str, Any], n_lines: int = 50) -> str:
    """The last ``n_lines`` lines of the job's log; '' when there is none (yet).

    Reads only the end of the file, so polling a long training log stays cheap. A line
    redrawn with carriage returns (a progress bar) shows as its last state.
    """
    path = row.get("log_path")
    if not path or n_lines <= 0:
        return ""
    try:
        with open(path, "rb") as f:
            data, complete = _read_end(f, n_lines)
    except FileNotFoundError:
        return ""
    lines = data.decode("utf-8", errors="replace").split("\n")
    if lines[-1] == "":
        lines.pop()  # the text after the final newline
    if not complete and lines and "\r" not in lines[0]:
        lines.pop(0)  # cut off at its start; with a \r, its last redraw is still whole
    return "\n".join(line.rstrip("\r").rpartition("\r")[2] for line in lines[-n_lines:])


def _read_end(f: Any, n_lines: int, block: int = 64 * 1024,
              max_bytes: int = 4 * 1024 * 1024) -> tuple[bytes, bool]:
    """The end of binary file ``f`` holding at least ``n_lines`` whole lines if it can
    (at most ``max_bytes``); and whether that is the whole file."""
    end = f.seek(0, os.SEEK_END)
    start, chunks, newlines = end, [], 0
    while start > 0 and newlines <= n_lines and end - start < max_bytes:
        size = min(block, start)
        start -= size
        f.seek(start)
        chunk = f.read(size)
        chunks.append(chunk)
        newlines += chunk.count(b"\n")
    return b"".join(reversed(chunks)), start == 0
