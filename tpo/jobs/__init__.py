"""Background jobs (generate, train, compare, eval, ...) as separate processes whose state
lives in the store.

A job is a row in ``jobs`` plus a worker process, ``python -m tpo.jobs run --db DB ID``. The
row is what the UI polls (status, progress, output, error), so a job outlives a browser
reload; the worker's stdout and stderr go to ``<log_dir>/job-<id>.log``.

Life of a job::

    queued --its turn (GPU kinds wait here)--> running --fn returns--> succeeded
      |                                          |-------fn raises---> failed  ("ValueError: ...")
      |                                          '--cancel()--> cancelling --worker stops--> cancelled
      |--cancel() while it waits for the GPU--> cancelling --worker stops--> cancelled
      '--cancel() with no worker process (yet)----------------------------> cancelled
    unfinished, but its process is gone --> failed ("ended unexpectedly ..."),
                                            or cancelled if it was being cancelled

The parts, one concern each:

- :mod:`~tpo.jobs.registry`: job kinds, declared next to their functions with
  :func:`job_kind` (``gpu=True`` for the kinds that load a model or train);
- :mod:`~tpo.jobs.state`: submit, get, list, wait for, cancel and recover jobs, read logs;
- :mod:`~tpo.jobs.scheduler`: GPU kinds take turns (``TPO_GPU_SLOTS`` at once), CPU kinds
  start at once;
- :mod:`~tpo.jobs.worker`: the worker process's life, from loading the kind to recording the
  outcome;
- :mod:`~tpo.jobs.progress`: :class:`JobContext`, what a job function receives;
- :mod:`~tpo.jobs.process`: spawning, liveness, signals and reaping of worker processes.

**Cancellation.** ``cancel()`` records the request as ``status = 'cancelling'`` and sends
SIGTERM to the worker's process group. The worker's handler only sets a flag; the job stops
at its next ``ctx.check_cancelled()``, which raises :class:`JobCancelled`, and the worker
records ``cancelled``. Children of the job (an ``accelerate launch``) get the SIGTERM too; an
error the job raises once cancelling has begun counts as the cancellation. A job that
finishes before it looks at the flag is recorded as ``succeeded``: its outputs exist.
``cancel(force=True)`` SIGKILLs the group for a job that does not stop.

Every state change is one conditional UPDATE (``... WHERE status IN (...)``), so the worker,
the app and the CLI can race (a job finishing while it is cancelled, two tabs polling)
without one overwriting the outcome another recorded.
"""

from tpo.jobs.progress import PROGRESS_INTERVAL_S, JobCancelled, JobContext
from tpo.jobs.registry import KINDS, JobKind, job_kind
from tpo.jobs.scheduler import queue_position
from tpo.jobs.state import (ORPHAN_ERROR, cancel, get, list_jobs, log_tail, metrics,
                            recover_orphans, submit, wait)
from tpo.jobs.worker import (EXIT_CANCELLED, EXIT_FAILED, EXIT_SUCCEEDED, EXTERNAL_STOP_ERROR,
                             main, run)
from tpo.store import ACTIVE_STATUSES, FINISHED_STATUSES, JOB_STATUSES

__all__ = [
    "ACTIVE_STATUSES", "EXIT_CANCELLED", "EXIT_FAILED", "EXIT_SUCCEEDED", "EXTERNAL_STOP_ERROR",
    "FINISHED_STATUSES", "JOB_STATUSES", "KINDS", "ORPHAN_ERROR", "PROGRESS_INTERVAL_S",
    "JobCancelled", "JobContext", "JobKind", "cancel", "get", "job_kind", "list_jobs",
    "log_tail", "main", "metrics", "queue_position", "recover_orphans", "run", "submit", "wait",
]
