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
        """One atomic unit of work; nested calls become savepoints."""
        with self.db.atomic() as db:
            yield db

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
            with db.atomic():
                MIGRATIONS[i](db)
                db.execute(f"PRAGMA user_version = {i + 1}")

    @property
    def schema_version(self) -> int:
        return self.db.execute("PRAGMA user_version").fetchone()[0]

    # -- videos -----------------------------------------------------------------------

    def add_video(self, row: dict[str, Any]) -> int:
        """Insert a video row (``added_at`` filled in); returns its id."""
        row = {**row, "added_at": row.get("added_at") or now()}
        return self.db["videos"].insert(_encode(row)).last_pk

    def update_video(self, video_id: int, changes: dict[str, Any]) -> None:
        self.get_video(video_id)  # raises a clear error for a missing id
        self.db["videos"].update(video_id, _encode({**changes, "updated_at": now()}))

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


def _encode(row: dict[str, Any]) -> dict[str, Any]:
    """JSON-encode dict/list values so they fit TEXT columns."""
    return {k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in row.items()}


def _decode_video(row: dict[str, Any]) -> dict[str, Any]:
    row = dict(row)
    if row.get("ground_truth"):
        row["ground_truth"] = json.loads(row["ground_truth"])
    return row
