"""The SQLite store: the single source of truth for videos, pairs, reviews, jobs and results.

Built on sqlite-utils. The database runs in WAL mode so the app, the CLI and background
jobs can read while one of them writes. Each thread gets its own connection (Gradio runs
handlers on worker threads; a sqlite3 connection must not be shared between them).
Every user action is one transaction: ``with store.transaction(): ...``.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import sqlite_utils

from tpo.schema import MIGRATIONS, SCHEMA_VERSION

PAIR_STATUSES = ("pending", "accepted", "rejected", "filtered")
VIDEO_STATUSES = ("ready", "error")


class StoreError(Exception):
    """A store operation that cannot be done (missing row, newer schema, ...)."""


class ConflictError(StoreError):
    """A save based on a version of a pair that someone else has changed since.

    ``current`` is the pair as it is now, so the person can see what changed.
    """

    def __init__(self, current: dict, expected_version: int):
        self.current, self.expected_version = current, expected_version
        last = (f" by {current['last_user']} at {current['updated_at']}"
                if current.get("last_user") else f" at {current.get('updated_at')}")
        super().__init__(
            f"pair {current['id']} was changed{last} (now version {current['version']}, "
            f"you had version {expected_version}); your change was not saved - reload it")


# The columns a review may change; review rows snapshot them (plus version) before and after.
REVIEWABLE = ("status", "swapped", "edited_question", "edited_chosen", "edited_rejected", "note")


def now() -> str:
    """Current UTC time as ISO-8601 with seconds, the format of every ``*_at`` column."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Store:
    """A TPO Studio database file. Creates and migrates it on open."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._migrate()

    # -- connections and transactions -------------------------------------------------

    @property
    def db(self) -> sqlite_utils.Database:
        """This thread's connection, opened on first use."""
        db = getattr(self._local, "db", None)
        if db is None:
            # timeout: wait up to 30 s for another writer (a job, the CLI) instead of failing.
            conn = sqlite3.connect(str(self.path), timeout=30)
            conn.execute("PRAGMA foreign_keys = ON")
            db = sqlite_utils.Database(conn)
            self._local.db = db
        return db

    @contextmanager
    def transaction(self) -> Iterator[sqlite_utils.Database]:
        """One atomic unit of work that takes SQLite's write lock up front; nested calls
        become savepoints.

        ``BEGIN IMMEDIATE`` rather than a deferred ``BEGIN``: a deferred transaction that
        reads before it writes (sqlite-utils reads the schema before an insert) fails at
        once with "database is locked" when another connection wrote in between, whatever
        the busy timeout; an immediate one waits for the lock instead. The app, the CLI and
        job workers write concurrently.
        """
        db = self.db
        if db.conn.in_transaction:
            with db.atomic():  # a savepoint inside the caller's transaction
                yield db
            return
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.conn.rollback()
            raise
        db.execute("COMMIT")

    def close(self) -> None:
        """Close this thread's connection (others close when their threads end)."""
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    def _migrate(self) -> None:
        db = self.db
        db.enable_wal()
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has schema version {version}, newer than this TPO Studio "
                f"understands ({SCHEMA_VERSION}); upgrade TPO Studio to open it"
            )
        for i in range(version, SCHEMA_VERSION):
            with self.transaction():
                # Another process may have migrated while we waited for the write lock.
                if db.execute("PRAGMA user_version").fetchone()[0] > i:
                    continue
                MIGRATIONS[i](db)
                db.execute(f"PRAGMA user_version = {i + 1}")

    @property
    def schema_version(self) -> int:
        return self.db.execute("PRAGMA user_version").fetchone()[0]

    # -- videos -----------------------------------------------------------------------

    def add_video(self, row: dict[str, Any]) -> int:
        """Insert a video row (``added_at`` filled in); returns its id."""
        row = {**row, "added_at": row.get("added_at") or now()}
        with self.transaction() as db:
            return db["videos"].insert(_encode(row)).last_pk

    def update_video(self, video_id: int, changes: dict[str, Any]) -> None:
        with self.transaction() as db:
            self.get_video(video_id)  # raises a clear error for a missing id
            db["videos"].update(video_id, _encode({**changes, "updated_at": now()}))

    def get_video(self, video_id: int) -> dict:
        rows = list(self.db["videos"].rows_where("id = ?", [video_id]))
        if not rows:
            raise StoreError(f"no video with id {video_id} in {self.path}")
        return _decode_video(rows[0])

    def find_video(self, *, sha256: str | None = None, path: str | None = None) -> dict | None:
        """The video with this content hash or this path, or ``None``."""
        column, value = ("sha256", sha256) if sha256 is not None else ("path", path)
        rows = list(self.db["videos"].rows_where(f"{column} = ?", [value], limit=1))
        return _decode_video(rows[0]) if rows else None

    def list_videos(self, search: str = "", status: str | None = None) -> list[dict]:
        """Videos (newest last) with their pair counts per review status.

        ``search`` matches the name or path, case-insensitively; ``status`` is ready/error.
        """
        where, params = ["1 = 1"], []
        if search:
            where.append("(v.name LIKE ? OR v.path LIKE ?)")
            params += [f"%{search}%"] * 2
        if status:
            where.append("v.status = ?")
            params.append(status)
        counts = ", ".join(
            f"SUM(CASE WHEN p.status = '{s}' THEN 1 ELSE 0 END) AS pairs_{s}" for s in PAIR_STATUSES
        )
        sql = (
            f"SELECT v.*, {counts} FROM videos v LEFT JOIN pairs p ON p.video_id = v.id "
            f"WHERE {' AND '.join(where)} GROUP BY v.id ORDER BY v.id"
        )
        rows = []
        for row in self.db.query(sql, params):
            for s in PAIR_STATUSES:
                row[f"pairs_{s}"] = row[f"pairs_{s}"] or 0
            rows.append(_decode_video(row))
        return rows

    def counts(self) -> dict[str, int]:
        """Library and pair totals for the header: videos, ready, errors, pairs_<status>."""
        out = {"videos": 0, "ready": 0, "errors": 0}
        for row in self.db.query("SELECT status, COUNT(*) AS n FROM videos GROUP BY status"):
            out["videos"] += row["n"]
            out["ready" if row["status"] == "ready" else "errors"] += row["n"]
        out.update({f"pairs_{s}": 0 for s in PAIR_STATUSES})
        for row in self.db.query("SELECT status, COUNT(*) AS n FROM pairs GROUP BY status"):
            out[f"pairs_{row['status']}"] = row["n"]
        return out


    # -- pairs ------------------------------------------------------------------------------

    def has_generation(self, video_id: int, run_key: str) -> bool:
        """True when this video was already generated with these settings."""
        return bool(self.db.execute(
            "SELECT 1 FROM generations WHERE video_id = ? AND run_key = ?", [video_id, run_key]
        ).fetchone())

    def save_generation(self, video_id: int, run_key: str, pairs: list[dict[str, Any]], *,
                        params: dict, seconds: float, job_id: int | None = None,
                        replace: bool = False) -> list[int]:
        """Store one video's generated pairs and the run record in one transaction.

        With ``replace``, the video's earlier *pending or filtered* pairs of the same run key
        are deleted first (``--force``); reviewed pairs are never deleted.
        """
        stamp = now()
        with self.transaction() as db:
            if replace:
                db.execute("DELETE FROM pairs WHERE video_id = ? AND run_key = ? AND status IN "
                           "('pending', 'filtered') AND id NOT IN (SELECT pair_id FROM reviews)",
                           [video_id, run_key])
                db.execute("DELETE FROM generations WHERE video_id = ? AND run_key = ?",
                           [video_id, run_key])
            ids = []
            for pair in pairs:
                row = {**pair, "video_id": video_id, "run_key": run_key, "version": 1,
                       "created_at": stamp, "updated_at": stamp}
                ids.append(db["pairs"].insert(_encode(row)).last_pk)
            db["generations"].insert(_encode({
                "video_id": video_id, "run_key": run_key, "job_id": job_id,
                "n_pairs": len(pairs), "n_filtered": sum(p["status"] == "filtered" for p in pairs),
                "params": params, "seconds": seconds, "created_at": stamp}))
        return ids

    def list_pairs(self, *, status: str | None = None, kind: str | None = None,
                   video_id: int | None = None, strategy: str | None = None,
                   reason: str = "", search: str = "", order: str = "id",
                   limit: int | None = None) -> list[dict]:
        """Pairs, JSON columns decoded; filters combine with AND.

        ``reason`` matches the filter reason, ``search`` the question and answers (generated
        or edited), both case-insensitively. ``order``: ``id`` (oldest first), ``newest``,
        ``pending-first`` (the review queue: pending, then filtered, accepted, rejected).
        """
        where, params = [], []
        for column, value in (("status", status), ("kind", kind), ("video_id", video_id),
                              ("strategy", strategy)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if reason:
            where.append("filter_reason LIKE ?")
            params.append(f"%{reason}%")
        if search:
            columns = ("question", "chosen", "rejected", "edited_question", "edited_chosen",
                       "edited_rejected")
            where.append("(" + " OR ".join(f"{c} LIKE ?" for c in columns) + ")")
            params += [f"%{search}%"] * len(columns)
        orders = {"id": "id", "newest": "id DESC",
                  "pending-first": "CASE status WHEN 'pending' THEN 0 WHEN 'filtered' THEN 1 "
                                   "WHEN 'accepted' THEN 2 ELSE 3 END, id"}
        if order not in orders:
            raise StoreError(f"unknown order {order!r}; expected one of {sorted(orders)}")
        rows = self.db["pairs"].rows_where(" AND ".join(where) or None, params,
                                           order_by=orders[order], limit=limit)
        return [_decode_pair(r) for r in rows]

    def pair_counts(self) -> dict[str, dict[str, int]]:
        """``{kind: {status: n}}`` for every kind present, plus ``"all"``."""
        out: dict[str, dict[str, int]] = {"all": dict.fromkeys(PAIR_STATUSES, 0)}
        for row in self.db.query("SELECT kind, status, COUNT(*) AS n FROM pairs GROUP BY kind, status"):
            out.setdefault(row["kind"], dict.fromkeys(PAIR_STATUSES, 0))[row["status"]] = row["n"]
            out["all"][row["status"]] += row["n"]
        return out

    def get_pair(self, pair_id: int) -> dict:
        """The pair, JSON columns decoded, with ``last_user``: who reviewed it last (or None)."""
        rows = list(self.db.query(
            "SELECT p.*, (SELECT user FROM reviews r WHERE r.pair_id = p.id ORDER BY r.id DESC "
            "LIMIT 1) AS last_user FROM pairs p WHERE p.id = ?", [pair_id]))
        if not rows:
            raise StoreError(f"no pair with id {pair_id} in {self.path}")
        return _decode_pair(rows[0])

    def update_pair(self, pair_id: int, changes: dict[str, Any], *, user: str, action: str,
                    expected_version: int, note: str | None = None) -> dict:
        """Change reviewable columns, bump the version and append the review, atomically.

        The UPDATE is conditional on ``expected_version``: of two saves that read the same
        version, the second changes nothing and raises :class:`ConflictError`, even when
        the saves come from different processes.
        """
        unknown = set(changes) - set(REVIEWABLE)
        if unknown:
            raise StoreError(f"not reviewable: {sorted(unknown)}")
        if "status" in changes and changes["status"] not in PAIR_STATUSES:
            raise StoreError(f"unknown pair status {changes['status']!r}; expected one of {PAIR_STATUSES}")
        with self.transaction() as db:
            before = self.get_pair(pair_id)
            stamp = now()
            after = {**{k: before[k] for k in REVIEWABLE}, **changes,
                     "version": expected_version + 1}
            sets = ", ".join(f"{k} = ?" for k in changes)
            cursor = db.execute(
                f"UPDATE pairs SET {sets}, version = ?, updated_at = ? WHERE id = ? AND version = ?",
                [*changes.values(), after["version"], stamp, pair_id, expected_version])
            if cursor.rowcount != 1:
                raise ConflictError(before, expected_version)
            db["reviews"].insert(_encode({
                "pair_id": pair_id, "user": user, "at": stamp, "action": action,
                "before": {**{k: before[k] for k in REVIEWABLE}, "version": before["version"]},
                "after": after, "note": note}))
        return self.get_pair(pair_id)

    def set_pair_status(self, pair_id: int, status: str, *, user: str, action: str,
                        expected_version: int | None = None, note: str | None = None) -> dict:
        """Change a pair's status (see :meth:`update_pair`); ``None`` version: the current."""
        if expected_version is None:
            expected_version = self.get_pair(pair_id)["version"]
        return self.update_pair(pair_id, {"status": status}, user=user, action=action,
                                expected_version=expected_version, note=note)

    def list_models(self) -> list[dict]:
        """Fine-tuned models (newest first): name, base, adapter_path, job_id, dataset."""
        return list(self.db.query("SELECT * FROM models ORDER BY id DESC"))

    def reviews(self, pair_id: int) -> list[dict]:
        rows = self.db["reviews"].rows_where("pair_id = ?", [pair_id], order_by="id")
        return [{**r, "before": json.loads(r["before"] or "null"),
                 "after": json.loads(r["after"] or "null")} for r in rows]


def _encode(row: dict[str, Any]) -> dict[str, Any]:
    """JSON-encode dict/list values so they fit TEXT columns."""
    return {k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in row.items()}


PAIR_JSON_COLUMNS = ("chosen_timestamps", "rejected_timestamps", "captions", "generator")


def _decode_pair(row: dict[str, Any]) -> dict[str, Any]:
    row = dict(row)
    for column in PAIR_JSON_COLUMNS:
        if row.get(column):
            row[column] = json.loads(row[column])
    return row


def _decode_video(row: dict[str, Any]) -> dict[str, Any]:
    row = dict(row)
    if row.get("ground_truth"):
        row["ground_truth"] = json.loads(row["ground_truth"])
    return row
