"""Background jobs with real worker processes on a real SQLite file.

Waits use generous deadlines so a slow machine does not fail them; no test asserts how long
anything took.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from processes import wait_until

from tpo import jobs
from tpo.store import Store, StoreError, now

DEADLINE_S = 60.0
LONG = {"steps": 2000, "sleep_s": 0.05}  # far longer than any test waits for it


pytestmark = pytest.mark.usefixtures("stop_workers")  # no worker outlives its test


def submit(store: Store, tmp_path: Path, **params) -> int:
    return jobs.submit(store, "selftest", params, log_dir=tmp_path / "logs")


def process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # a zombie still counts: it must also have been reaped
    except ProcessLookupError:
        return True
    return False


def dead_pid() -> int:
    """The pid of a process that has ended and been reaped."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def insert_job(store: Store, **columns) -> int:
    """A jobs row written directly, as another (possibly dead) process would have left it."""
    row = {"kind": "selftest", "params": "{}", "status": "running", "created_at": now(),
           **columns}
    return store.db["jobs"].insert(row).last_pk


def wait_running(store: Store, job_id: int) -> dict:
    """Wait until the job's loop is under way (its SIGTERM handler is installed by then)."""
    wait_until(lambda: jobs.get(store, job_id)["progress"] > 0, f"job {job_id} to progress")
    return jobs.get(store, job_id)


# -- outcomes of real workers -----------------------------------------------------------


def test_job_succeeds_with_progress_metrics_output_and_log(store, tmp_path):
    job_id = submit(store, tmp_path, steps=4)

    row = jobs.wait(store, job_id, DEADLINE_S)

    assert row["status"] == "succeeded"
    assert row["progress"] == 1.0
    assert row["output"] == {"steps": 4}
    assert row["params"] == {"steps": 4}
    assert row["error"] is None
    assert row["pid"] and row["started_at"] and row["finished_at"]
    values = jobs.metrics(store, job_id, "selftest/value")
    assert [(m["step"], m["value"]) for m in values] == [(1, 1.0), (2, 0.5), (3, 1 / 3), (4, 0.25)]
    assert jobs.metrics(store, job_id, "no such metric") == []
    assert Path(row["log_path"]) == (tmp_path / "logs" / f"job-{job_id}.log").resolve()
    assert "selftest: 4 steps" in jobs.log_tail(row)
    assert f"job {job_id} succeeded" in jobs.log_tail(row)


def test_failing_job_records_a_one_line_error_and_the_traceback_in_its_log(store, tmp_path):
    job_id = submit(store, tmp_path, steps=5, fail_at=2)

    row = jobs.wait(store, job_id, DEADLINE_S)

    assert row["status"] == "failed"
    assert row["error"] == "ValueError: selftest failed at step 2, as asked"
    assert row["finished_at"] and row["output"] is None
    assert [m["step"] for m in jobs.metrics(store, job_id)] == [1]
    log = Path(row["log_path"]).read_text()
    assert "Traceback (most recent call last)" in log
    assert "raise ValueError" in log


def test_hard_crash_is_reported_with_the_exit_code(store, tmp_path):
    job_id = submit(store, tmp_path, steps=5, crash_at=2)

    row = jobs.wait(store, job_id, DEADLINE_S)

    assert row["status"] == "failed"
    assert "ended unexpectedly" in row["error"]
    assert "exit code 3" in row["error"]  # known here: this process started, and reaped, it
    assert "crashing at step 2" in jobs.log_tail(row)
    wait_until(lambda: process_gone(row["pid"]), "the crashed worker to be reaped")


def test_concurrent_jobs_all_record_their_writes(store, tmp_path):
    # Several workers, their progress threads and this poller write and read at once:
    # every write must wait for the lock rather than fail with "database is locked".
    job_ids = [submit(store, tmp_path, steps=40) for _ in range(3)]

    rows = [jobs.wait(store, job_id, DEADLINE_S) for job_id in job_ids]

    assert [row["status"] for row in rows] == ["succeeded"] * 3, [r["error"] for r in rows]
    assert [len(jobs.metrics(store, job_id)) for job_id in job_ids] == [40] * 3


def test_job_outlives_the_process_that_submitted_it(store, tmp_path):
    # Like a job started by `tpo` from a terminal: the submitter exits at once.
    script = (
        "import sys; from tpo import jobs; from tpo.store import Store\n"
        "store = Store(sys.argv[1])\n"
        "ok = jobs.submit(store, 'selftest', {'steps': 10, 'sleep_s': 0.02}, log_dir=sys.argv[2])\n"
        "crash = jobs.submit(store, 'selftest', {'steps': 10, 'sleep_s': 0.02, 'crash_at': 3},"
        " log_dir=sys.argv[2])\n"
        "print(ok, crash)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(store.path), str(tmp_path / "logs")],
                          capture_output=True, text=True, check=True, timeout=DEADLINE_S)
    ok_id, crash_id = map(int, done.stdout.split())

    ok = jobs.wait(store, ok_id, DEADLINE_S)
    assert ok["status"] == "succeeded", (ok, jobs.log_tail(ok))
    crashed = jobs.wait(store, crash_id, DEADLINE_S)
    assert crashed["status"] == "failed"
    assert "ended unexpectedly" in crashed["error"]


# -- cancellation ----------------------------------------------------------------------


def test_cancel_stops_a_running_job_and_its_process(store, tmp_path):
    job_id = submit(store, tmp_path, **LONG)
    pid = wait_running(store, job_id)["pid"]

    asked = jobs.cancel(store, job_id)
    assert asked["status"] in ("cancelling", "cancelled")
    row = jobs.wait(store, job_id, DEADLINE_S)

    assert row["status"] == "cancelled"
    assert row["error"] is None and row["finished_at"]
    assert 0 < row["progress"] < 1
    assert "cancel requested" in jobs.log_tail(row)
    wait_until(lambda: process_gone(pid), "the cancelled worker to exit")
    assert jobs.cancel(store, job_id) == row  # idempotent on a finished job


def test_forced_cancel_kills_the_job_at_once(store, tmp_path):
    job_id = submit(store, tmp_path, **LONG)
    pid = wait_running(store, job_id)["pid"]

    row = jobs.cancel(store, job_id, force=True)

    assert row["status"] == "cancelled"
    wait_until(lambda: process_gone(pid), "the killed worker to be reaped")
    assert jobs.get(store, job_id)["status"] == "cancelled"


def test_cancelling_a_job_without_a_worker_is_immediate_and_a_late_worker_does_nothing(store):
    job_id = insert_job(store, status="queued")  # as between submit()'s insert and its spawn

    assert jobs.cancel(store, job_id)["status"] == "cancelled"
    assert jobs.run(store.path, job_id) == jobs.EXIT_CANCELLED

    row = jobs.get(store, job_id)
    assert row["status"] == "cancelled" and row["started_at"] is None


def test_finished_succeeded_job_is_never_cancelled(store, tmp_path):
    job_id = submit(store, tmp_path, steps=1)
    row = jobs.wait(store, job_id, DEADLINE_S)

    assert jobs.cancel(store, job_id, force=True) == row
    assert row["status"] == "succeeded"


# -- dead workers found later ------------------------------------------------------------


def test_get_fails_a_running_job_whose_process_is_gone_or_is_another_process(store):
    gone = insert_job(store, pid=dead_pid())
    reused = insert_job(store, pid=os.getpid())  # a live pid that is not this job's worker

    for job_id in (gone, reused):
        row = jobs.get(store, job_id)
        assert row["status"] == "failed"
        assert "ended unexpectedly (exit code unknown)" in row["error"]
        assert row["finished_at"]


def test_recover_orphans_settles_dead_jobs_and_leaves_live_ones(store, tmp_path):
    running = insert_job(store, pid=dead_pid())
    reused = insert_job(store, pid=os.getpid())
    never_started = insert_job(store, status="queued")
    cancelling = insert_job(store, status="cancelling", pid=dead_pid())
    finished = insert_job(store, status="succeeded", pid=dead_pid(), output='{"steps": 1}')
    live = submit(store, tmp_path, **LONG)
    wait_running(store, live)

    recovered = jobs.recover_orphans(store)

    assert sorted(recovered) == sorted([running, reused, never_started, cancelling])
    for job_id in (running, reused, never_started):
        row = jobs.get(store, job_id)
        assert row["status"] == "failed"
        assert row["error"] == jobs.ORPHAN_ERROR
    assert jobs.get(store, cancelling)["status"] == "cancelled"
    assert jobs.get(store, finished)["status"] == "succeeded"
    assert jobs.get(store, live)["status"] == "running"
    assert jobs.recover_orphans(store) == []


# -- submitting ------------------------------------------------------------------------


def test_unknown_kind_or_non_json_params_write_nothing(store, tmp_path):
    with pytest.raises(ValueError, match="unknown job kind 'nope'.*selftest"):
        jobs.submit(store, "nope", {}, log_dir=tmp_path / "logs")
    with pytest.raises(TypeError):
        jobs.submit(store, "selftest", {"when": object()}, log_dir=tmp_path / "logs")

    assert store.db["jobs"].count == 0
    assert not (tmp_path / "logs").exists()


def test_a_python_that_cannot_start_fails_the_job_with_the_reason(store, tmp_path):
    with pytest.raises(OSError):
        jobs.submit(store, "selftest", {}, log_dir=tmp_path / "logs",
                    python=str(tmp_path / "no-such-python"))

    [row] = jobs.list_jobs(store)
    assert row["status"] == "failed"
    assert row["error"].startswith("could not start the job's process")


def test_unknown_job_id_is_a_store_error(store):
    with pytest.raises(StoreError, match="no job with id 42"):
        jobs.get(store, 42)


# -- listing, progress and logs (no worker needed) -----------------------------------------


def test_list_jobs_is_newest_first_and_filters_by_kind_and_status(store):
    old = insert_job(store, status="succeeded")
    failed = insert_job(store, status="failed")
    other = insert_job(store, kind="train", status="succeeded")

    assert [r["id"] for r in jobs.list_jobs(store)] == [other, failed, old]
    assert [r["id"] for r in jobs.list_jobs(store, kind="selftest")] == [failed, old]
    assert [r["id"] for r in jobs.list_jobs(store, status="succeeded")] == [other, old]
    assert [r["id"] for r in jobs.list_jobs(store, status=["failed", "queued"])] == [failed]
    assert [r["id"] for r in jobs.list_jobs(store, limit=1)] == [other]
    with pytest.raises(ValueError, match="unknown job status"):
        jobs.list_jobs(store, status="done")


def test_list_jobs_settles_dead_workers_before_filtering(store):
    job_id = insert_job(store, pid=dead_pid())

    assert jobs.list_jobs(store, status="running") == []
    assert jobs.list_jobs(store, status="failed")[0]["id"] == job_id


def test_progress_is_throttled_but_the_last_report_lands(store):
    job_id = insert_job(store)
    with jobs.JobContext(job_id, store, {}) as ctx:
        for i in range(500):
            ctx.progress(i / 1000, f"item {i}")
        ctx.progress(0.5, "halfway")
        with pytest.raises(ValueError, match="finite"):
            ctx.progress(float("nan"))

    row = jobs.get(store, job_id)
    assert (row["progress"], row["progress_text"]) == (0.5, "halfway")


def test_progress_is_clamped_and_never_touches_a_finished_job(store):
    running, finished = insert_job(store), insert_job(store, status="succeeded", progress=1.0)
    for job_id, fraction in ((running, 7.0), (finished, 0.2)):
        with jobs.JobContext(job_id, store, {}) as ctx:
            ctx.progress(fraction, "late")

    assert jobs.get(store, running)["progress"] == 1.0
    assert jobs.get(store, finished)["progress_text"] is None


def test_check_cancelled_raises_once_cancel_is_requested(store):
    ctx = jobs.JobContext(insert_job(store), store, {})
    ctx.check_cancelled()
    ctx.cancel_requested = True
    with pytest.raises(jobs.JobCancelled):
        ctx.check_cancelled()
    assert not issubclass(jobs.JobCancelled, Exception)  # a broad `except Exception` can't eat it


def test_log_tail_reads_the_end_of_a_long_log_and_shows_redrawn_lines_last_state(tmp_path):
    log = tmp_path / "job.log"
    lines = [f"line {i:05d} " + "x" * 20 for i in range(10_000)]  # several read blocks
    log.write_text("\n".join(lines) + "\n" + "train 10%\rtrain 20%\rtrain 30%\n")
    row = {"log_path": str(log)}

    assert jobs.log_tail(row, 3).split("\n") == [lines[-2], lines[-1], "train 30%"]
    assert jobs.log_tail(row, 10_001).split("\n")[0] == lines[0]
    assert jobs.log_tail({"log_path": str(tmp_path / "missing.log")}) == ""
    assert jobs.log_tail({"log_path": None}) == ""


def test_worker_command_line_runs_a_queued_job(store, tmp_path):
    job_id = insert_job(store, status="queued", params=json.dumps({"steps": 2}))

    done = subprocess.run([sys.executable, "-m", "tpo.jobs", "run", "--db", str(store.path),
                           str(job_id)], capture_output=True, text=True, timeout=DEADLINE_S)

    assert done.returncode == jobs.EXIT_SUCCEEDED, done.stderr
    assert jobs.get(store, job_id)["output"] == {"steps": 2}
