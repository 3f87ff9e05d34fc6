"""Store methods for background jobs and the metrics they record (the ``jobs`` and
``metrics`` tables). What a job *is* (its life, its process) is :mod:`tpo.jobs`; here are
only its rows.

Every change of a job's status is one conditional UPDATE (``... WHERE status IN (...)``),
so the worker, the app and the CLI can race without one overwriting the outcome another
recorded.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Mapping

from tpo.store.columns import encode, marks, now

# Every value of jobs.status. 'cancelling' is the short-lived "cancel asked, the worker
# has not stopped yet": still active, not yet an outcome.
JOB_STATUSES = ("queued", "running", "cancelling", "succeeded", "failed", "cancelled")
ACTIVE_STATUSES = ("queued", "running", "cancelling")
FINISHED_STATUSES = ("succeeded", "failed", "cancelled")


class JobsMixin:
    """Part of :class:`tpo.store.Store` (uses its ``db``, ``transaction`` and ``_one``)."""

    def add_job(self, kind: str, params: Mapping[str, Any]) -> int:
        """A new queued job; returns its id."""
        created = now()
        with self.transaction() as db:
            return db["jobs"].insert({"kind": kind, "params": json.dumps(dict(params)),
                                      "status": "queued", "progress": 0.0,
                                      "created_at": created, "updated_at": created}).last_pk

    def update_job(self, job_id: int, changes: Mapping[str, Any]) -> None:
        """Set columns that do not decide the job's fate (``log_path``, ``pid``)."""
        with self.transaction() as db:
            db["jobs"].update(job_id, encode(dict(changes)))

    def get_job(self, job_id: int) -> dict:
        """The job's row, ``params`` and ``output`` decoded."""
        return decode_job(self._one("SELECT * FROM jobs WHERE id = ?", [job_id],
                                    missing=f"no job with id {job_id} in {self.path}"))

    def list_jobs(self, *, kind: str | None = None, statuses: Iterable[str] | None = None,
                  limit: int = 50) -> list[dict]:
        """Job rows, newest first, optionally of one kind and of some statuses."""
        where, args = ["1 = 1"], []
        if kind is not None:
            where.append("kind = ?")
            args.append(kind)
        if statuses is not None:
            statuses = tuple(statuses)
            where.append(f"status IN ({marks(statuses)})")
            args += statuses
        sql = f"SELECT * FROM jobs WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ?"
        return [decode_job(row) for row in self.db.query(sql, [*args, limit])]

    def active_jobs(self, *, with_pid_only: bool = True) -> list[dict]:
        """Unfinished jobs; with ``with_pid_only``, only those whose worker recorded a pid."""
        sql = f"SELECT * FROM jobs WHERE status IN ({marks(ACTIVE_STATUSES)})"
        if with_pid_only:
            sql += " AND pid IS NOT NULL"
        return [decode_job(row) for row in self.db.query(sql, ACTIVE_STATUSES)]

    def transition_job(self, job_id: int, from_statuses: Iterable[str],
                       **changes: Any) -> bool:
        """Apply ``changes`` only if the job's status is one of ``from_statuses``, atomically;
        returns whether it was. ``updated_at`` is set too; dict values are stored as JSON."""
        changes = encode({**changes, "updated_at": now()})
        from_statuses = tuple(from_statuses)
        assignments = ", ".join(f"{column} = ?" for column in changes)
        with self.transaction() as db:
            cursor = db.execute(
                f"UPDATE jobs SET {assignments} WHERE id = ? AND status IN ({marks(from_statuses)})",
                [*changes.values(), job_id, *from_statuses])
        return cursor.rowcount == 1

    def gpu_jobs(self) -> list[dict]:
        """The unfinished jobs that need the GPU (``gpu = 1``), oldest first: the ones holding
        a slot (running or cancelling) and the queue (queued). A queued job whose worker has
        not yet said what it needs (``gpu`` NULL: still importing its kind) is in the queue
        too, so GPU jobs start in the order they were submitted."""
        return [decode_job(row) for row in self.db.query(
            f"SELECT * FROM jobs WHERE (gpu = 1 OR (gpu IS NULL AND status = 'queued'))"
            f" AND status IN ({marks(ACTIVE_STATUSES)}) ORDER BY id", ACTIVE_STATUSES)]

    def start_gpu_job(self, job_id: int, slots: int, **changes: Any) -> bool:
        """Start queued GPU job ``job_id`` (one marked ``gpu = 1``: status 'running' plus
        ``changes``) only if no older GPU job (or older job not yet classified) is queued and
        fewer than ``slots`` GPU jobs hold a slot; one statement, so two workers never take the last slot both. Returns whether
        it started."""
        changes = encode({**changes, "status": "running", "updated_at": now()})
        assignments = ", ".join(f"{column} = ?" for column in changes)
        holding = ("running", "cancelling")
        with self.transaction() as db:
            cursor = db.execute(
                f"UPDATE jobs SET {assignments} WHERE id = ? AND status = 'queued' AND gpu = 1"
                " AND NOT EXISTS (SELECT 1 FROM jobs AS older WHERE"
                "   (older.gpu = 1 OR older.gpu IS NULL)"  # NULL: not yet classified
                "   AND older.status = 'queued' AND older.id < ?)"
                " AND (SELECT COUNT(*) FROM jobs AS busy WHERE busy.gpu = 1"
                f"   AND busy.status IN ({marks(holding)})) < ?",
                [*changes.values(), job_id, job_id, *holding, slots])
        return cursor.rowcount == 1

    def settle_ended_job(self, job_id: int, error: str, *, pid: int | None) -> bool:
        """Record the end of a job whose process is gone: failed with ``error``, or
        cancelled if it was being cancelled. Only while the job is unfinished and its pid is
        ``pid`` (the process that was examined) or not recorded yet. Returns whether this
        call recorded it."""
        ended = now()
        sql = (
            "UPDATE jobs SET"
            " status = CASE status WHEN 'cancelling' THEN 'cancelled' ELSE 'failed' END,"
            " error = CASE status WHEN 'cancelling' THEN NULL ELSE ? END,"
            " finished_at = ?, updated_at = ?"
            f" WHERE id = ? AND status IN ({marks(ACTIVE_STATUSES)})"
            " AND (pid IS NULL OR pid = ?)"
        )
        with self.transaction() as db:
            cursor = db.execute(sql, [error, ended, ended, job_id, *ACTIVE_STATUSES, pid])
        return cursor.rowcount == 1

    def set_job_progress(self, job_id: int, fraction: float, text: str) -> None:
        """Progress 0..1 and its text, only while the job is unfinished: a late write must
        not touch a recorded outcome."""
        with self.transaction() as db:
            db.execute(
                "UPDATE jobs SET progress = ?, progress_text = ?, updated_at = ? "
                f"WHERE id = ? AND status IN ({marks(ACTIVE_STATUSES)})",
                [fraction, text, now(), job_id, *ACTIVE_STATUSES])

    def add_metric(self, job_id: int, step: int, name: str, value: float) -> None:
        """One value of a named series; NaN is stored as NULL (SQLite has no NaN)."""
        with self.transaction() as db:
            db["metrics"].insert({"job_id": job_id, "step": int(step), "name": name,
                                  "value": float(value), "at": now()})

    def job_metrics(self, job_id: int, name: str | None = None) -> list[dict]:
        """The job's metric rows (id, job_id, step, name, value, at) in the order written."""
        sql, args = "SELECT * FROM metrics WHERE job_id = ?", [job_id]
        if name is not None:
            sql += " AND name = ?"
            args.append(name)
        return list(self.db.query(sql + " ORDER BY id", args))


def decode_job(row: dict) -> dict:
    row = dict(row)
    row["params"] = json.loads(row["params"]) if row.get("params") else {}
    row["output"] = json.loads(row["output"]) if row.get("output") else None
    return row
