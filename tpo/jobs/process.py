"""A job's worker process: starting it, telling whether it is alive, signalling it, and
reaping it.

The worker is ``python -m tpo.jobs run --db DB ID`` (:func:`worker_args`), started in a
session of its own: it outlives the app or CLI that started it, a Ctrl-C in their terminal
does not reach it, and it can be stopped together with its children as one process group.

**Liveness.** A pid can be reused once its process is gone, so a worker counts as alive only
while ``/proc/<pid>/cmdline`` is this job's worker command (database path and job id
included) and the process is not a zombie. The process that submitted a job reaps its worker
from a watcher thread (no zombies in a long-lived app) and records the exact exit status of
a worker that died without recording an outcome (``killed by SIGKILL``: often out of
memory).
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from tpo.store import Store


def worker_args(db_path: str | Path, job_id: int) -> list[str]:
    """The worker's command line after the interpreter; also how a live worker is recognised."""
    return ["-m", "tpo.jobs", "run", "--db", str(Path(db_path).resolve()), str(job_id)]


def spawn_worker(python: str, db_path: Path, job_id: int, log_path: Path) -> subprocess.Popen:
    """Start job ``job_id``'s worker in a new session, its stdout and stderr appended to
    ``log_path``."""
    with open(log_path, "ab") as log:  # append: a log is never silently replaced
        return subprocess.Popen(
            [python, *worker_args(db_path, job_id)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            env=_worker_env(), start_new_session=True)


def _worker_env() -> dict[str, str]:
    # Unbuffered, so the log shows lines as they happen, including a library's prints.
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # The worker must import this same tpo, also from a source checkout that is not
    # installed while the app was started from another folder. An installed tpo's parent is
    # site-packages, which must not go ahead of the standard library on sys.path.
    source_root = Path(__file__).resolve().parents[2]  # .../tpo/jobs/process.py -> ...
    if source_root.name not in ("site-packages", "dist-packages"):
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(source_root),
                                                          env.get("PYTHONPATH")]))
    return env


def watch_worker(store: Store, job_id: int, proc: subprocess.Popen) -> None:
    """In the submitting process: reap the worker when it exits, and if it ended without
    recording an outcome, record how it ended while its exit status is known."""
    try:
        store.settle_ended_job(job_id, ended_error(proc.wait()), pid=proc.pid)
    finally:
        store.close()  # this thread's connection


def worker_alive(db_path: str | Path, job_id: int, pid: int) -> bool:
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
    expected = [os.fsencode(arg) for arg in worker_args(db_path, job_id)]
    return cmdline.rstrip(b"\0").split(b"\0")[-len(expected):] == expected


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # another user's process: not a worker of ours
    return True


def signal_group(pid: int, sig: signal.Signals) -> None:
    """Signal the worker and its children: it leads its own process group."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:  # a worker started by hand, outside submit(), leads no group
            os.kill(pid, sig)
    except ProcessLookupError:
        pass  # it ended meanwhile; whoever sees that records how


def ended_error(exit_code: int | None) -> str:
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
