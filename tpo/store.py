"""The SQLite store: the single source of truth for videos, pairs, reviews, jobs and results.

Built on sqlite-utils. The database runs in WAL mode so the app, the CLI and background
jobs can read while one of them writes. Each thread gets its own connection (Gradio runs
handlers on worker threads; a sqlite3 connection must not be shared between them).
Every user action is one transaction: ``with store.transaction(): ...``.

Database faults become :class:`DatabaseError` subclasses with a one-line message naming the
file, what happened and what to do: a full disk, a lock another process holds for longer
than the busy timeout, a damaged or non-SQLite file, a file that cannot be opened. Every
statement runs through :class:`_Connection`, so a fault in the middle of work reads the same
as one at open. A damaged file is refused at open (its header and size are checked before
SQLite touches it, and ``PRAGMA quick_check`` runs before a migration writes to it), and once
a statement finds damage the store writes nothing more.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import sqlite_utils

from tpo.errors import TPOError
from tpo.schema import MIGRATIONS, SCHEMA_VERSION

PAIR_STATUSES = ("pending", "accepted", "rejected", "filtered")
VIDEO_STATUSES = ("ready", "error")


class StoreError(TPOError):
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


class DatabaseError(StoreError):
    """The database file itself failed (full, locked, damaged, unreachable); see
    :func:`database_error`. Each subclass is also the ``sqlite3`` exception class SQLite
    raised, so code that catches ``sqlite3.Error`` (e.g. a job's cosmetic progress write)
    still does."""


class DatabaseFullError(DatabaseError, sqlite3.OperationalError):
    """SQLITE_FULL: the disk (or the database's page limit) is full."""


class DatabaseLockedError(DatabaseError, sqlite3.OperationalError):
    """SQLITE_BUSY: another process held the write lock for longer than the busy timeout."""


class DatabaseCorruptError(DatabaseError, sqlite3.DatabaseError):
    """SQLITE_CORRUPT / SQLITE_NOTADB, or a header or size that shows the file is damaged."""


class DatabaseUnavailableError(DatabaseError, sqlite3.OperationalError):
    """The file cannot be opened or written: missing folder, read-only, I/O error."""


# Wait this long for another process's write lock before saying so. SQLite's busy handler
# retries during the wait; transactions here are short, so a longer wait means a stuck or
# long-running other program, and the person should hear about it rather than stare at a
# frozen command (the old 30 s wait ended in a traceback anyway).
DEFAULT_BUSY_TIMEOUT_S = 5.0

_SQLITE_MAGIC = b"SQLite format 3\x00"


def database_error(err: BaseException, path: str | os.PathLike,
                   busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S) -> BaseException:
    """The clear :class:`DatabaseError` for a ``sqlite3.Error`` on ``path``, or ``err``
    itself when it is no fault of the file (a constraint, an SQL mistake, ...)."""
    if isinstance(err, StoreError) or not isinstance(err, sqlite3.Error):
        return err
    code = getattr(err, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    text = str(err)
    lowered = text.lower()
    if primary == sqlite3.SQLITE_FULL or "disk is full" in lowered:
        new: DatabaseError = DatabaseFullError(
            f"database {path} could not be written: the disk is full ({text}); free some "
            f"space and try again")
    elif primary in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) and "locked" in lowered:
        new = DatabaseLockedError(
            f"database {path} is locked by another process (waited {busy_timeout_s:g} s); "
            f"close the other program or try again")
    elif (primary in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)
          or "malformed" in lowered or "not a database" in lowered):
        new = DatabaseCorruptError(_corrupt_message(path, text))
    elif primary == sqlite3.SQLITE_CANTOPEN or "unable to open" in lowered:
        new = DatabaseUnavailableError(
            f"cannot open database {path} ({text}): check that the path is a file in a "
            f"folder you may write to, or choose another database file")
    elif primary == sqlite3.SQLITE_READONLY or "readonly" in lowered:
        new = DatabaseUnavailableError(
            f"database {path} is read-only ({text}): make the file and its folder "
            f"writable, or choose another database file")
    elif primary == sqlite3.SQLITE_IOERR or "disk i/o error" in lowered:
        new = DatabaseUnavailableError(
            f"database {path} could not be read or written ({text}): check the disk and "
            f"try again")
    else:
        return err
    new.sqlite_errorcode, new.sqlite_errorname = code, getattr(err, "sqlite_errorname", None)
    return new


def _corrupt_message(path: str | os.PathLike, what: str) -> str:
    return (f"database {path} is damaged ({what}); nothing more was written to it - restore "
            f"it from a backup, or move it aside to start a new database")


class _Cursor(sqlite3.Cursor):
    """A cursor whose faults are :class:`DatabaseError`: rows are fetched lazily, so a
    damaged page can surface while iterating, not only in ``execute``."""

    def _fault(self, err: sqlite3.Error) -> BaseException:
        return self.connection._fault(err)

    def execute(self, *args):
        try:
            return super().execute(*args)
        except sqlite3.Error as err:
            raise self._fault(err) from err

    def executemany(self, *args):
        try:
            return super().executemany(*args)
        except sqlite3.Error as err:
            raise self._fault(err) from err

    def executescript(self, *args):
        try:
            return super().executescript(*args)
        except sqlite3.Error as err:
            raise self._fault(err) from err

    def fetchone(self):
        try:
            return super().fetchone()
        except sqlite3.Error as err:
            raise self._fault(err) from err

    def fetchmany(self, *args, **kwargs):
        try:
            return super().fetchmany(*args, **kwargs)
        except sqlite3.Error as err:
            raise self._fault(err) from err

    def fetchall(self):
        try:
            return super().fetchall()
        except sqlite3.Error as err:
            raise self._fault(err) from err

    def __next__(self):
        try:
            return super().__next__()
        except sqlite3.Error as err:
            raise self._fault(err) from err


class _Connection(sqlite3.Connection):
    """A connection that turns file faults into :class:`DatabaseError` (see
    :func:`database_error`) and tells its store when the file is damaged."""

    store: "Store | None" = None

    def _fault(self, err: sqlite3.Error) -> BaseException:
        store = self.store
        if store is None:
            return err
        new = database_error(err, store.path, store.busy_timeout_s)
        if isinstance(new, DatabaseCorruptError):
            store._damage = str(new)
        return new

    # sqlite3.Connection.execute makes a plain cursor in C, bypassing cursor(): route
    # every statement through _Cursor by hand.
    def cursor(self, factory=None):
        return super().cursor(factory or _Cursor)

    def execute(self, *args):
        return self.cursor().execute(*args)

    def executemany(self, *args):
        return self.cursor().executemany(*args)

    def executescript(self, *args):
        return self.cursor().executescript(*args)

    def commit(self):
        try:
            super().commit()
        except sqlite3.Error as err:
            raise self._fault(err) from err


# The columns a review may change; review rows snapshot them (plus version) before and after.
REVIEWABLE = ("status", "swapped", "edited_question", "edited_chosen", "edited_rejected", "note")


# Searches match text literally: % and _ typed by a person are characters, not wildcards.
LIKE_ESCAPE = "ESCAPE '\\'"


def contains_pattern(text: str) -> str:
    """A LIKE pattern (used with :data:`LIKE_ESCAPE`) matching values that contain ``text``."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def now() -> str:
    """Current UTC time as ISO-8601 with seconds, the format of every ``*_at`` column."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Store:
    """A TPO Studio database file. Creates and migrates it on open.

    ``busy_timeout_s``: how long a statement waits for another process's write lock before
    :class:`DatabaseLockedError` (default :data:`DEFAULT_BUSY_TIMEOUT_S`). Raises
    :class:`DatabaseError` when the file cannot be used (see the module docstring).
    """

    def __init__(self, path: str | Path, *, busy_timeout_s: float | None = None):
        self.path = Path(path)
        self.busy_timeout_s = DEFAULT_BUSY_TIMEOUT_S if busy_timeout_s is None else busy_timeout_s
        self._damage: str | None = None  # set once a statement found the file damaged
        self._local = threading.local()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise DatabaseUnavailableError(
                f"cannot open database {self.path}: its folder {self.path.parent} cannot be "
                f"created ({err.strerror or err}); choose another database file") from None
        self._check_file()
        try:
            self._migrate()
        except BaseException:
            self.close()
            raise

    # -- connections and transactions -------------------------------------------------

    @property
    def db(self) -> sqlite_utils.Database:
        """This thread's connection, opened on first use."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite_utils.Database(self._connect())
            self._local.db = db
        return db

    def _connect(self) -> sqlite3.Connection:
        """A new connection; waits ``busy_timeout_s`` for another writer (a job, the CLI)."""
        try:
            conn = sqlite3.connect(str(self.path), timeout=self.busy_timeout_s,
                                   factory=_Connection)
        except sqlite3.Error as err:
            raise database_error(err, self.path, self.busy_timeout_s) from err
        conn.store = self
        try:
            conn.execute("PRAGMA foreign_keys = ON")
        except BaseException:
            conn.close()
            raise
        return conn

    def _check_file(self) -> None:
        """Refuse a file that is not an SQLite database, or is shorter than its header
        says (truncated), before SQLite opens it - so nothing is ever written to it."""
        try:
            if not self.path.is_file() or (size := self.path.stat().st_size) == 0:
                return  # a new database (SQLite makes one in an empty file), or not a file
            with open(self.path, "rb") as f:  # SQLite reports what cannot be opened
                header = f.read(100)
        except OSError:
            return
        if len(header) < 100 or not header.startswith(_SQLITE_MAGIC):
            raise DatabaseCorruptError(_corrupt_message(self.path, "not an SQLite database"))
        page_size = int.from_bytes(header[16:18], "big")
        page_size = 65536 if page_size == 1 else page_size
        pages = int.from_bytes(header[28:32], "big")
        # The page count is valid when the change counter matches "version-valid-for".
        # With a non-empty WAL beside it, pages a checkpoint was still writing live in the
        # WAL, so a short file is no proof of damage there.
        wal = Path(f"{self.path}-wal")
        if (header[24:28] == header[92:96] and pages and size < pages * page_size
                and not (wal.is_file() and wal.stat().st_size > 0)):
            raise DatabaseCorruptError(_corrupt_message(
                self.path, f"truncated: {size} bytes, its header says {pages * page_size}"))

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
        if self._damage:  # never write further into a damaged file
            raise DatabaseCorruptError(self._damage)
        db = self.db
        if db.conn.in_transaction:
            with db.atomic():  # a savepoint inside the caller's transaction
                yield db
            return
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            try:
                db.conn.rollback()
            except sqlite3.Error:
                pass  # a full or damaged file may refuse even this: the first error tells
            raise
        try:
            db.execute("COMMIT")
        except BaseException:
            if db.conn.in_transaction:
                try:
                    db.conn.rollback()
                except sqlite3.Error:
                    pass
            raise

    def close(self) -> None:
        """Close this thread's connection (others close when their threads end)."""
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    def _migrate(self) -> None:
        db = self.db
        # Reading the schema first: a damaged schema page fails here, before any write.
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has schema version {version}, newer than this TPO Studio "
                f"understands ({SCHEMA_VERSION}); upgrade TPO Studio to open it"
            )
        if version < SCHEMA_VERSION and version > 0:
            # A migration rewrites tables: check the whole file first (quick_check reads
            # every page once; it runs only when a migration is due).
            problem = db.execute("PRAGMA quick_check(1)").fetchone()[0]
            if problem != "ok":
                self._damage = _corrupt_message(self.path, problem)
                raise DatabaseCorruptError(self._damage)
        db.enable_wal()
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
            where.append(f"(v.name LIKE ? {LIKE_ESCAPE} OR v.path LIKE ? {LIKE_ESCAPE})")
            params += [contains_pattern(search)] * 2
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
            where.append(f"filter_reason LIKE ? {LIKE_ESCAPE}")
            params.append(contains_pattern(reason))
        if search:
            columns = ("question", "chosen", "rejected", "edited_question", "edited_chosen",
                       "edited_rejected")
            where.append("(" + " OR ".join(f"{c} LIKE ? {LIKE_ESCAPE}" for c in columns) + ")")
            params += [contains_pattern(search)] * len(columns)
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
