"""Background jobs (generate, train, eval) as separate processes whose state lives in the store.

A job is a row in ``jobs`` plus a worker process, ``python -m tpo.jobs run --db DB ID``. The
row is what the UI polls (status, progress, output, error), so a job outlives a browser
reload; the worker's stdout and stderr go to ``<log_dir>/job-<id>.log``. The worker starts
in a session of its own, so it outlives the app or CLI that started it, a Ctrl-C in their
terminal does not reach it, and it can be stopped together with its children as one
process group.

Life of a job::

    queued --worker starts--> running --fn returns--> succeeded
      |                         |-------fn raises---> failed    (error "ValueError: ...")
      |                         '--cancel()--> cancelling --worker stops--> cancelled
      '--cancel() with no worker process (yet)-------------------------> cancelled
    unfinished, but its process is gone --> failed ("ended unexpectedly ..."),
                                            or cancelled if it was being cancelled

**Cancellation.** ``cancel()`` records the request as ``status = 'cancelling'`` and sends
SIGTERM to the worker's process group. The worker's handler only sets a flag; the job stops
at its next ``ctx.check_cancelled()``, which raises :class:`JobCancelled`, and the worker
records ``cancelled``. Children of the job (an ``accelerate launch``) get the SIGTERM too; an
error the job raises once cancelling has begun counts as the cancellation. A job that
finishes before it looks at the flag is recorded as ``succeeded``: its outputs exist.
``cancel(force=True)`` SIGKILLs the group for a job that does not stop.

**Liveness.** A pid can be reused once its process is gone, so a worker counts as alive only
while ``/proc/<pid>/cmdline`` is this job's worker command (database path and job id
included) and the process is not a zombie. The process that submitted a job reaps its worker
from a watcher thread (no zombies in a long-lived app) and records the exact exit status of
a worker that died without recording an outcome (``killed by SIGKILL``: often out of
memory). Anyone else (another app instance, the CLI, the app after a restart) learns of a
dead worker through :func:`get`, :func:`list_jobs` or :func:`recover_orphans`.

Every state change is one conditional UPDATE (``... WHERE status IN (...)``), so the worker,
the app and the CLI can race (a job finishing while it is cancelled, two tabs polling)
without one overwriting the outcome another recorded.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Iterable, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Iterator


# The statuses live with the rows; they are part of this module's interface too.
from tpo.store import ACTIVE_STATUSES, FINISHED_STATUSES, JOB_STATUSES, Store, now

# kind -> "module:function" taking a JobContext and returning a JSON-able dict. Only the
# worker imports the target, so a torch-heavy kind costs the app nothing to list.
KINDS: Mapping[str, str] = MappingProxyType({
    "compare": "tpo.compare:run_job",
    "demo-model": "tpo.demo_model:run_job",
    "eval": "tpo.evaluate:run_job",
    "export": "tpo.export:run_job",
    "generate": "tpo.generate:run_job",
    "tiny-model": "tpo.tiny:run_job",
    "train": "tpo.train_job:run_job",
    "selftest": "tpo.jobs:selftest",
})

EXIT_SUCCEEDED = 0
EXIT_FAILED = 1
EXIT_CANCELLED = 128 + signal.SIGTERM  # what a shell reports for a process ended by SIGTERM

PROGRESS_INTERVAL_S = 0.25  # at most four progress writes a second per job

ORPHAN_ERROR = "the app restarted while this job was running, and the job's process is gone"
EXTERNAL_STOP_ERROR = "stopped by a signal from outside TPO Studio (not a cancel request)"


class JobCancelled(BaseException):
    """Raised inside a job by :meth:`JobContext.check_cancelled` once cancel was requested.

    A BaseException, like ``asyncio.CancelledError``, so that a job's ``except Exception``
    around one item of work (skip a bad video, go on) does not swallow the cancellation.
    """


# -- what a job function receives ------------------------------------------------------


class JobContext:
    """A running job's id, parameters and store, and its ways to report back.

    Progress is written from a thread of its own (see :class:`_ProgressWriter`); call
    :meth:`close` (or use ``with``) so the last report lands. The worker does this itself.
    """

    def __init__(self, job_id: int, store: Store, params: dict, *,
                 progress_interval_s: float = PROGRESS_INTERVAL_S):
        self.job_id = job_id
        self.store = store
        self.params = params
        # Set by the worker's SIGTERM handler. A plain attribute, because a signal handler
        # runs between two bytecodes of this very thread and must not take a lock.
        self.cancel_requested = False
        self._progress = _ProgressWriter(store, job_id, progress_interval_s)

    def progress(self, fraction: float, text: str = "") -> None:
        """Report progress, 0..1 (clamped), with a short text such as "step 3/40"."""
        fraction = float(fraction)
        if not math.isfinite(fraction):
            raise ValueError(f"progress must be a finite number, got {fraction}")
        self._progress.report(min(max(fraction, 0.0), 1.0), text)

    def metric(self, step: int, name: str, value: float) -> None:
        """Record one value of a named series (loss, reward margin, ...) at ``step``.

        NaN is stored as NULL (SQLite has no NaN): a plot shows a gap there.
        """
        self.store.add_metric(self.job_id, step, name, value)

    def log(self, message: str) -> None:
        """Append a timestamped line to the job's log (the worker's stdout is the log)."""
        print(f"{now()} {message}", flush=True)

    def check_cancelled(self) -> None:
        """Raise :class:`JobCancelled` if cancellation was requested; call it between steps."""
        if self.cancel_requested:
            self.log("cancel requested: stopping")
            raise JobCancelled(f"job {self.job_id} was cancelled")

    def close(self) -> None:
        """Write the last progress report and stop the progress thread."""
        self._progress.close()

    def __enter__(self) -> JobContext:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _ProgressWriter:
    """Writes a job's latest progress at most every ``interval_s``, from its own thread.

    Throttling keeps a fast loop from becoming a stream of transactions. A thread (rather
    than "write if enough time passed") makes the latest report land even when the job then
    goes quiet for a long step: a plain throttle would show the skipped report's predecessor,
    say "starting" instead of "loading the model", for the whole of that step.
    """

    def __init__(self, store: Store, job_id: int, interval_s: float):
        self._store = store
        self._job_id = job_id
        self._interval_s = interval_s
        self._lock = threading.Lock()
        self._latest: tuple[float, str] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def report(self, fraction: float, text: str) -> None:
        with self._lock:
            self._latest = (fraction, text)
            if self._thread is None:  # started on first use: a job may never report
                self._thread = threading.Thread(
                    target=self._loop, name=f"tpo-job-{self._job_id}-progress", daemon=True)
                self._thread.start()

    def close(self) -> None:
        with self._lock:
            thread = self._thread
        if thread is not None:
            self._stop.set()
            thread.join()

    def _loop(self) -> None:
        try:
            while not self._stop.wait(self._interval_s):
                self._flush()
            self._flush()
        finally:
            self._store.close()  # this thread's connection

    def _flush(self) -> None:
        with self._lock:
            latest, self._latest = self._latest, None
        if latest is None:
            return
        try:
            # Only while unfinished: a late write must not touch a recorded outcome.
            self._store.set_job_progress(self._job_id, *latest)
        except sqlite3.Error as err:
            # Progress is cosmetic: a busy database must not stop the job.
            print(f"{now()} could not record progress: {err}", file=sys.stderr, flush=True)


# -- starting, inspecting and stopping jobs ----------------------------------------------


def submit(store: Store, kind: str, params: Mapping[str, Any], *, log_dir: str | Path,
           python: str = sys.executable) -> int:
    """Queue a job and start its worker process; returns the job id.

    Raises ValueError for an unknown kind and TypeError for params that are not JSON, both
    before anything is written. If the worker cannot be started (a bad ``python``), the
    job is recorded as failed and the OSError is raised.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown job kind {kind!r}; known kinds: {', '.join(sorted(KINDS))}")
    json.dumps(dict(params))  # not JSON: TypeError here, before anything is written
    log_dir = Path(log_dir).resolve()
    log_dir.mkdir(parents=True, exist_ok=True)
    with store.transaction():
        job_id = store.add_job(kind, params)
        log_path = log_dir / f"job-{job_id}.log"
        store.update_job(job_id, {"log_path": str(log_path)})
    try:
        proc = _spawn_worker(python, store.path, job_id, log_path)
    except OSError as err:
        store.transition_job(job_id, ACTIVE_STATUSES, status="failed", finished_at=now(),
                             error=f"could not start the job's process: {err}")
        raise
    threading.Thread(target=_watch_worker, args=(store, job_id, proc),
                     name=f"tpo-job-{job_id}-watcher", daemon=True).start()
    store.update_job(job_id, {"pid": proc.pid})  # the worker records it too; same value
    return job_id


def get(store: Store, job_id: int) -> dict:
    """The job's row, params and output decoded; a job whose process died is settled first.

    Raises StoreError for an unknown id.
    """
    return _reconcile(store, store.get_job(job_id))


def list_jobs(store: Store, *, kind: str | None = None,
              status: str | Iterable[str] | None = None, limit: int = 50) -> list[dict]:
    """Jobs, newest first, optionally of one kind and of some statuses (a name or several)."""
    for row in store.active_jobs():
        _reconcile(store, row)
    statuses = None
    if status is not None:
        statuses = (status,) if isinstance(status, str) else tuple(status)
        unknown = set(statuses) - set(JOB_STATUSES)
        if unknown:
            raise ValueError(f"unknown job status {sorted(unknown)}; statuses: {JOB_STATUSES}")
    return store.list_jobs(kind=kind, statuses=statuses, limit=limit)


def cancel(store: Store, job_id: int, *, force: bool = False) -> dict:
    """Request cancellation; returns the row. A finished job is returned unchanged.

    A job with a live worker becomes 'cancelling' and its process group gets SIGTERM; it is
    'cancelled' once the worker stops. A job without one (queued before its worker started,
    or whose worker is gone) is 'cancelled' at once. ``force`` SIGKILLs the worker's
    group and records 'cancelled' at once, for a job that does not stop.
    """
    row = get(store, job_id)
    if row["status"] in FINISHED_STATUSES:
        return row
    pid = row["pid"]
    alive = pid is not None and _worker_alive(store.path, job_id, pid)
    if alive:
        # The request is recorded before the signal, so whoever then sees the worker die
        # (it, its watcher, a get()) records 'cancelled' rather than a crash.
        store.transition_job(job_id, ("queued", "running"), status="cancelling")
        _signal_group(pid, signal.SIGKILL if force else signal.SIGTERM)  # again: harmless
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
        if pid is not None and _worker_alive(store.path, row["id"], pid):
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


# -- the worker ------------------------------------------------------------------------


def run(db_path: str | Path, job_id: int) -> int:
    """The worker: run queued job ``job_id`` of the database at ``db_path`` to its end.

    Records running, then succeeded (with output), failed (with a one-line error; the
    traceback goes to the log) or cancelled. Returns the process exit code.
    """
    store = Store(db_path)
    try:
        return _run(store, int(job_id))
    finally:
        store.close()


def _run(store: Store, job_id: int) -> int:
    if not store.transition_job(job_id, ("queued",), status="running", pid=os.getpid(),
                                started_at=now()):
        return _not_started(store, job_id)
    row = store.get_job(job_id)
    print(f"{now()} job {job_id} ({row['kind']}) started, pid {os.getpid()}, "
          f"params {json.dumps(row['params'])}", flush=True)
    started = time.monotonic()
    ctx = JobContext(job_id, store, row["params"])
    with _sigterm_requests_cancel(ctx):  # until the outcome is recorded, not just the job
        with ctx:
            status, output, error = _call_job(ctx, row["kind"])
        recorded = _record_outcome(store, job_id, status, output, error)
    print(f"{now()} job {job_id} {recorded} after {time.monotonic() - started:.1f} s"
          + (f": {error}" if recorded == "failed" and error else ""), flush=True)
    return {"succeeded": EXIT_SUCCEEDED, "cancelled": EXIT_CANCELLED}.get(recorded, EXIT_FAILED)


def _not_started(store: Store, job_id: int) -> int:
    """The job was not 'queued' when its worker came up; say why and do nothing more."""
    status = store.get_job(job_id)["status"]
    if status == "cancelling":  # cancel() reached us before the worker started the job
        store.transition_job(job_id, ("cancelling",), status="cancelled", finished_at=now())
        status = "cancelled"
    print(f"{now()} job {job_id} is {status}, not queued: not starting it", flush=True)
    return EXIT_CANCELLED if status == "cancelled" else EXIT_FAILED


def _call_job(ctx: JobContext, kind: str) -> tuple[str, dict | None, str | None]:
    """Run the kind's function; returns ``(status, output, error)``, never raises."""
    try:
        output = _resolve(kind)(ctx)
        return "succeeded", _checked_output(output), None
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


def _resolve(kind: str) -> Callable[[JobContext], Any]:
    if kind not in KINDS:
        raise ValueError(f"unknown job kind {kind!r}; known kinds: {', '.join(sorted(KINDS))}")
    module_name, _, function = KINDS[kind].partition(":")
    return getattr(importlib.import_module(module_name), function)


def _checked_output(output: Any) -> dict:
    if output is None:
        return {}
    if not isinstance(output, dict):
        raise TypeError(f"a job must return a dict, got {type(output).__name__}")
    json.dumps(output)  # not JSON-able: fail here, as the job's error, not at recording
    return output


# -- processes ------------------------------------------------------------------------------


def _worker_args(db_path: str | Path, job_id: int) -> list[str]:
    """The worker's command line after the interpreter; also how a live worker is recognised."""
    return ["-m", "tpo.jobs", "run", "--db", str(Path(db_path).resolve()), str(job_id)]


def _spawn_worker(python: str, db_path: Path, job_id: int, log_path: Path) -> subprocess.Popen:
    with open(log_path, "ab") as log:  # append: a log is never silently replaced
        return subprocess.Popen(
            [python, *_worker_args(db_path, job_id)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            env=_worker_env(), start_new_session=True)


def _worker_env() -> dict[str, str]:
    # Unbuffered, so the log shows lines as they happen, including a library's prints.
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # The worker must import this same tpo, also from a source checkout that is not
    # installed while the app was started from another folder. An installed tpo's parent is
    # site-packages, which must not go ahead of the standard library on sys.path.
    source_root = Path(__file__).resolve().parents[1]
    if source_root.name not in ("site-packages", "dist-packages"):
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(source_root),
                                                          env.get("PYTHONPATH")]))
    return env


def _watch_worker(store: Store, job_id: int, proc: subprocess.Popen) -> None:
    """In the submitting process: reap the worker when it exits, and if it ended without
    recording an outcome, record how it ended while its exit status is known."""
    try:
        store.settle_ended_job(job_id, _ended_error(proc.wait()), pid=proc.pid)
    finally:
        store.close()  # this thread's connection


def _worker_alive(db_path: str | Path, job_id: int, pid: int) -> bool:
    """Whether ``pid`` is still the worker of this job.

    On Linux the process must run this job's worker command line and not be a zombie. A
    zombie that is our own child is the exception: our watcher thread is about to reap it
    and record its exact exit status, which settling it here first would lose.
    """
    if not Path("/proc/self/stat").exists():
        return _pid_exists(pid)  # no /proc (macOS): existence is all we can tell
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:  # gone, or not ours to read
        return False
    # The fields after the command name, which is in parentheses and may contain ')'.
    state, ppid = stat.rpartition(")")[2].split()[:2]
    if state in ("Z", "X"):
        return int(ppid) == os.getpid()
    expected = [os.fsencode(arg) for arg in _worker_args(db_path, job_id)]
    return cmdline.rstrip(b"\0").split(b"\0")[-len(expected):] == expected


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # another user's process: not a worker of ours
    return True


def _signal_group(pid: int, sig: signal.Signals) -> None:
    """Signal the worker and its children: it leads its own process group."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:  # a worker started by hand, outside submit(), leads no group
            os.kill(pid, sig)
    except ProcessLookupError:
        pass  # it ended meanwhile; whoever sees that records how


def _ended_error(exit_code: int | None) -> str:
    """The error of a job whose process ended without recording an outcome."""
    if exit_code is None:
        how = "exit code unknown"
    elif exit_code == -signal.SIGKILL:
        how = "killed by SIGKILL; out of memory?"  # the kernel's OOM killer sends this
    elif exit_code < 0:
        how = f"killed by {_signal_name(-exit_code)}"
    else:
        how = f"exit code {exit_code}"
    return f"the job's process ended unexpectedly ({how}); see its log"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:  # a number with no name here (some real-time signals)
        return f"signal {number}"


# -- rows ---------------------------------------------------------------------------------


def _reconcile(store: Store, row: dict) -> dict:
    """Settle ``row`` if it is unfinished but its worker is gone; returns the current row."""
    if row["status"] not in ACTIVE_STATUSES or row["pid"] is None:
        return row
    if _worker_alive(store.path, row["id"], row["pid"]):
        return row
    store.settle_ended_job(row["id"], _ended_error(None), pid=row["pid"])
    return store.get_job(row["id"])


def _one_line(err: BaseException) -> str:
    """The error as 'ValueError: what went wrong', on one line and not too long."""
    message = " ".join(str(err).split())
    text = f"{type(err).__name__}: {message}" if message else type(err).__name__
    return text if len(text) <= 500 else text[:499] + "…"


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


# -- the test kind ------------------------------------------------------------------------


def selftest(ctx: JobContext) -> dict:
    """The job kind that exercises the machinery: ``steps`` steps of ``sleep_s`` seconds,
    each reporting progress and a metric and honouring cancellation.

    ``fail_at`` raises ValueError at that step (a job that fails); ``crash_at`` ends the
    process at that step with exit code 3 and no goodbye (a hard crash, like being killed
    for lack of memory). Returns ``{"steps": steps}``.
    """
    steps = int(ctx.params.get("steps", 3))
    sleep_s = float(ctx.params.get("sleep_s", 0.0))
    fail_at, crash_at = ctx.params.get("fail_at"), ctx.params.get("crash_at")
    ctx.log(f"selftest: {steps} steps of {sleep_s} s")
    for step in range(1, steps + 1):
        _sleep_unless_cancelled(ctx, sleep_s)
        if step == crash_at:
            ctx.log(f"crashing at step {step}, as asked")
            os._exit(3)
        if step == fail_at:
            raise ValueError(f"selftest failed at step {step}, as asked")
        ctx.metric(step, "selftest/value", 1.0 / step)
        ctx.progress(step / steps, f"step {step}/{steps}")
    return {"steps": steps}


def _sleep_unless_cancelled(ctx: JobContext, seconds: float) -> None:
    # In short naps: time.sleep resumes after a signal handler, so one long sleep would
    # delay the cancellation by its whole length.
    deadline = time.monotonic() + seconds
    while True:
        ctx.check_cancelled()
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        time.sleep(min(remaining, 0.05))


# -- command line -----------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """``python -m tpo.jobs run --db PATH ID``: how submit() starts a worker."""
    parser = argparse.ArgumentParser(
        prog="python -m tpo.jobs",
        description="Run a TPO Studio background job. The app and `tpo` start these; "
                    "running one by hand is for debugging.")
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="run one queued job to its end")
    run_parser.add_argument("--db", required=True, type=Path, help="the SQLite database")
    run_parser.add_argument("job_id", type=int)
    args = parser.parse_args(argv)
    return run(args.db, args.job_id)


if __name__ == "__main__":
    # Run the imported module's main, not this __main__ copy's: otherwise a job importing
    # tpo.jobs would get a second JobCancelled class that `except JobCancelled` never sees.
    from tpo.jobs import main as _main

    sys.exit(_main())
