"""Who may start: GPU jobs take turns, CPU jobs start at once.

A job of a GPU kind (``@job_kind(..., gpu=True)``) waits in its own worker process, still
'queued', until it is the oldest queued GPU job and fewer than ``slots`` GPU jobs hold a slot
(``TPO_GPU_SLOTS``, default 1: one model on the GPU at a time; on a machine without a GPU
the CPU is that one device). The store's :meth:`~tpo.store.Store.start_gpu_job` checks both
and starts the job in one statement, so workers polling at once never take one slot twice.
While it waits, its progress text says where it is in line.

The queue is the ``jobs`` table itself: a GPU job is marked ``gpu = 1`` by its worker once
it has loaded the kind. Waiting workers settle GPU jobs whose worker is gone, so a crashed
job never blocks the line.
"""

from __future__ import annotations

import os
import time

from tpo.jobs import state
from tpo.jobs.progress import JobContext
from tpo.jobs.registry import JobKind
from tpo.store import FINISHED_STATUSES, Store, now

POLL_S = 0.5  # how often a waiting GPU job looks for a free slot

HOLDING_STATUSES = ("running", "cancelling")  # a GPU job in these holds a slot


def start(store: Store, kind: JobKind, ctx: JobContext, *, slots: int,
          poll_s: float = POLL_S) -> bool:
    """Move ``ctx``'s queued job to 'running': a CPU kind at once, a GPU kind when its turn
    comes (see the module). Returns False, without starting it, when the job is no longer
    queued (cancelled meanwhile) or this process was asked to stop while it waited."""
    job_id, pid = ctx.job_id, os.getpid()
    if not kind.gpu:
        return store.transition_job(job_id, ("queued",), status="running", gpu=0, pid=pid,
                                    started_at=now())
    if not store.transition_job(job_id, ("queued",), gpu=1, pid=pid):  # joins the queue
        return False
    shown = None
    while not ctx.cancel_requested:
        if store.start_gpu_job(job_id, slots, pid=pid, started_at=now()):
            if shown is not None:
                ctx.progress(0.0, "the GPU is free: starting")
                ctx.log("the GPU is free: starting")
            return True
        text = waiting_text(job_id, _settled_gpu_jobs(store))
        if text is None:
            return False  # no longer queued: cancelled
        if text != shown:
            ctx.progress(0.0, text)
            ctx.log(text)
            shown = text
        time.sleep(poll_s)
    return False


def waiting_text(job_id: int, gpu_jobs: list[dict]) -> str | None:
    """What a waiting GPU job says of its place, given the unfinished GPU jobs oldest first
    (e.g. "queued: 2nd in line for the GPU, behind train job #12"); None if it is not
    queued."""
    queue = [row for row in gpu_jobs if row["status"] == "queued"]
    ids = [row["id"] for row in queue]
    if job_id not in ids:
        return None
    place = ids.index(job_id)
    text = f"queued: {ordinal(place + 1)} in line for the GPU"
    if place > 0:
        ahead = queue[place - 1]
        return f"{text}, behind {ahead['kind']} job #{ahead['id']}"
    holders = [row for row in gpu_jobs if row["status"] in HOLDING_STATUSES]
    if holders:
        return f"{text}, waiting for {holders[0]['kind']} job #{holders[0]['id']} to finish"
    return text


def queue_position(store: Store, row: dict) -> int | None:
    """Where a queued GPU job is in line (1: next), from the store; None for any other job
    (running, finished, a CPU kind, or one whose worker has not loaded its kind yet)."""
    if row.get("status") != "queued" or not row.get("gpu"):
        return None
    ids = [r["id"] for r in store.gpu_jobs() if r["status"] == "queued"]
    return ids.index(row["id"]) + 1 if row["id"] in ids else None


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, ..., 11th, 12th, 13th, ..., 21st."""
    suffix = "th" if 11 <= n % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _settled_gpu_jobs(store: Store) -> list[dict]:
    """The unfinished GPU jobs, oldest first, after settling those whose worker is gone."""
    rows = [state.reconcile(store, row) for row in store.gpu_jobs()]
    return [row for row in rows if row["status"] not in FINISHED_STATUSES]
