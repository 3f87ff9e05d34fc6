"""What a job function receives: :class:`JobContext` (its id, parameters and store, and its
ways to report progress, metrics and log lines), and :class:`JobCancelled`, which it raises
once cancellation was requested."""

from __future__ import annotations

import math
import sqlite3
import sys
import threading

from tpo.store import Store, now

PROGRESS_INTERVAL_S = 0.25  # at most four progress writes a second per job


class JobCancelled(BaseException):
    """Raised inside a job by :meth:`JobContext.check_cancelled` once cancel was requested.

    A BaseException, like ``asyncio.CancelledError``, so that a job's ``except Exception``
    around one item of work (skip a bad video, go on) does not swallow the cancellation.
    """


class JobContext:
    """A running job's id, parameters and store, and its ways to report back.

    Progress is written from a thread of its own (see :class:`ProgressWriter`); call
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
        self._progress = ProgressWriter(store, job_id, progress_interval_s)

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


class ProgressWriter:
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
