"""The GPU queue (:mod:`tpo.jobs.scheduler`): GPU kinds take turns, CPU kinds do not wait,
a queued job says its place and can be cancelled, and ``TPO_GPU_SLOTS`` sets how many run.

Real workers on a real SQLite file, with the ``selftest-gpu`` kind (the selftest declared as
needing the GPU), so no model or torch is needed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from processes import wait_until

from tpo import jobs
from tpo.jobs import registry, scheduler
from tpo.store import Store, now

DEADLINE_S = 60.0
LONG = {"steps": 2000, "sleep_s": 0.05}  # far longer than any test waits for it


pytestmark = pytest.mark.usefixtures("stop_workers")  # no worker outlives its test


def submit(store: Store, tmp_path: Path, kind: str = "selftest-gpu", **params) -> int:
    return jobs.submit(store, kind, params, log_dir=tmp_path / "logs")


def wait_running(store: Store, job_id: int) -> dict:
    """Wait until the job's loop is under way (it holds its slot by then)."""
    wait_until(lambda: jobs.get(store, job_id)["progress"] > 0, f"job {job_id} to progress")
    return jobs.get(store, job_id)


def wait_text(store: Store, job_id: int, text: str) -> dict:
    wait_until(lambda: jobs.get(store, job_id)["progress_text"] == text,
               f"job {job_id} to say {text!r} (it says "
               f"{jobs.get(store, job_id)['progress_text']!r})")
    return jobs.get(store, job_id)


def insert_job(store: Store, **columns) -> int:
    """A jobs row written directly, as another (possibly dead) process would have left it."""
    row = {"kind": "selftest-gpu", "params": "{}", "status": "queued", "created_at": now(),
           "gpu": 1, **columns}
    return store.db["jobs"].insert(row).last_pk


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# -- kinds declare their resources -----------------------------------------------------------


def test_every_kind_is_declared_next_to_its_function_with_its_resources():
    declared = {name: registry.load(name) for name in jobs.KINDS}

    assert {name: kind.gpu for name, kind in declared.items()} == {
        "compare": True, "eval": True, "generate": True, "train": True, "selftest-gpu": True,
        "demo-model": False, "export": False, "tiny-model": False, "selftest": False}
    assert all(kind.name == name and callable(kind.run) for name, kind in declared.items())


def test_a_function_without_a_declaration_is_refused(monkeypatch):
    monkeypatch.setattr(registry, "KINDS", {"bare": "tpo.jobs.scheduler:ordinal",
                                            "misnamed": "tpo.jobs.selftest:run_job"})
    with pytest.raises(TypeError, match="not declared with @job_kind"):
        registry.load("bare")
    with pytest.raises(TypeError, match=r"@job_kind\('misnamed'"):
        registry.load("misnamed")  # declared, but as "selftest"
    with pytest.raises(ValueError, match="unknown job kind 'nope'"):
        registry.load("nope")


# -- the queue -----------------------------------------------------------------------------------


def test_gpu_jobs_run_one_after_the_other_and_the_waiting_ones_say_their_place(store, tmp_path):
    first = submit(store, tmp_path, **LONG)
    wait_running(store, first)
    second = submit(store, tmp_path, steps=2)
    waiting = wait_text(store, second, "queued: 1st in line for the GPU, waiting for "
                                       f"selftest-gpu job #{first} to finish")
    third = submit(store, tmp_path, steps=2)
    wait_text(store, third, f"queued: 2nd in line for the GPU, behind selftest-gpu job #{second}")

    assert waiting["status"] == "queued" and waiting["started_at"] is None
    assert jobs.metrics(store, second) == []  # it has not run a step
    assert [jobs.queue_position(store, jobs.get(store, j)) for j in (first, second, third)] \
        == [None, 1, 2]
    jobs.cancel(store, first)
    rows = [jobs.wait(store, job_id, DEADLINE_S) for job_id in (first, second, third)]

    assert [row["status"] for row in rows] == ["cancelled", "succeeded", "succeeded"]
    # One at a time: each started once the one before it had ended.
    assert rows[1]["started_at"] >= rows[0]["finished_at"]
    assert rows[2]["started_at"] >= rows[1]["finished_at"]
    assert "the GPU is free: starting" in jobs.log_tail(rows[1])
    assert all(row["gpu"] == 1 for row in rows)


def test_a_cpu_job_runs_beside_a_gpu_job(store, tmp_path):
    gpu = submit(store, tmp_path, **LONG)
    wait_running(store, gpu)

    cpu = jobs.wait(store, submit(store, tmp_path, kind="selftest", steps=2), DEADLINE_S)

    assert cpu["status"] == "succeeded" and cpu["gpu"] == 0
    assert jobs.get(store, gpu)["status"] == "running"


def one_running_one_waiting(store: Store, tmp_path: Path) -> tuple[int, int, int]:
    """A long GPU job holding the one slot and a second one waiting behind it: their ids and
    the waiting worker's pid."""
    first = submit(store, tmp_path, **LONG)
    wait_running(store, first)
    second = submit(store, tmp_path, steps=2)
    pid = wait_text(store, second, "queued: 1st in line for the GPU, waiting for "
                                   f"selftest-gpu job #{first} to finish")["pid"]
    return first, second, pid


def test_cancelling_a_queued_gpu_job_stops_its_waiting_worker(store, tmp_path):
    first, second, pid = one_running_one_waiting(store, tmp_path)

    asked = jobs.cancel(store, second)
    assert asked["status"] in ("cancelling", "cancelled")
    row = jobs.wait(store, second, DEADLINE_S)

    assert row["status"] == "cancelled" and row["error"] is None
    assert row["started_at"] is None and jobs.metrics(store, second) == []
    assert "not starting it" in jobs.log_tail(row)
    wait_until(lambda: not Path(f"/proc/{pid}").exists(), "the waiting worker to exit")
    assert jobs.get(store, first)["status"] == "running"


def test_a_waiting_worker_stopped_from_outside_says_so(store, tmp_path):
    first, second, pid = one_running_one_waiting(store, tmp_path)

    os.kill(pid, signal.SIGTERM)  # not through cancel()
    row = jobs.wait(store, second, DEADLINE_S)

    assert row["status"] == "cancelled" and row["error"] == jobs.EXTERNAL_STOP_ERROR


def test_gpu_slots_setting_lets_that_many_run_together(store, tmp_path, monkeypatch):
    monkeypatch.setenv("TPO_GPU_SLOTS", "2")  # the workers inherit it
    first, second = submit(store, tmp_path, **LONG), submit(store, tmp_path, **LONG)
    wait_running(store, first)
    wait_running(store, second)
    third = submit(store, tmp_path, steps=2)

    wait_text(store, third, "queued: 1st in line for the GPU, waiting for "
                            f"selftest-gpu job #{first} to finish")
    assert [jobs.get(store, j)["status"] for j in (first, second)] == ["running", "running"]


def test_a_gpu_job_whose_worker_is_gone_does_not_block_the_line(store, tmp_path):
    dead = insert_job(store, status="running", pid=dead_pid())

    row = jobs.wait(store, submit(store, tmp_path, steps=2), DEADLINE_S)

    assert row["status"] == "succeeded"
    assert jobs.get(store, dead)["status"] == "failed"


# -- the store's claim and the texts (no worker needed) ----------------------------------------


def test_start_gpu_job_takes_a_free_slot_in_order_only(store):
    older, newer = insert_job(store), insert_job(store)
    cpu = insert_job(store, kind="selftest", gpu=0)

    assert not store.start_gpu_job(newer, 1)  # an older one is queued
    assert store.start_gpu_job(older, 1)
    assert not store.start_gpu_job(newer, 1)  # the one slot is taken
    assert store.start_gpu_job(newer, 2)
    assert not store.start_gpu_job(older, 5)  # not queued any more
    assert not store.start_gpu_job(cpu, 5)  # a CPU job never starts this way
    assert [r["id"] for r in store.gpu_jobs()] == [older, newer]
    assert {r["status"] for r in store.gpu_jobs()} == {"running"}


def test_waiting_text_and_queue_position():
    rows = [{"id": 3, "kind": "train", "status": "running"},
            {"id": 5, "kind": "eval", "status": "queued"},
            {"id": 8, "kind": "compare", "status": "queued"}]

    assert scheduler.waiting_text(5, rows) == \
        "queued: 1st in line for the GPU, waiting for train job #3 to finish"
    assert scheduler.waiting_text(8, rows) == \
        "queued: 2nd in line for the GPU, behind eval job #5"
    assert scheduler.waiting_text(3, rows) is None
    assert scheduler.waiting_text(5, rows[1:]) == "queued: 1st in line for the GPU"
    assert [scheduler.ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 101, 111)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "101st", "111th"]


def test_queue_position_comes_from_the_store(store):
    running = insert_job(store, status="running")
    first, second = insert_job(store), insert_job(store)
    unknown = insert_job(store, gpu=None)  # its worker has not loaded its kind yet

    positions = [jobs.queue_position(store, store.get_job(j))
                 for j in (running, first, second, unknown)]
    assert positions == [None, 1, 2, None]


def test_a_job_not_yet_classified_keeps_its_place_in_line(store):
    """A worker still importing its kind has not said whether it needs the GPU (gpu NULL):
    a later GPU job waits for it, so GPU jobs start in the order they were submitted."""
    unknown = insert_job(store, gpu=None)
    later = insert_job(store)
    assert not store.start_gpu_job(later, 1)
    assert [r["id"] for r in store.gpu_jobs()] == [unknown, later]
    store.transition_job(unknown, ("queued",), status="running", gpu=0)  # a CPU kind after all
    assert store.start_gpu_job(later, 1)
