"""The :class:`Store`: one database file, its per-thread connections, transactions, the
checks made at open, and migration. The table groups' methods come from the mixins in
:mod:`tpo.store.videos`, :mod:`~tpo.store.pairs`, :mod:`~tpo.store.jobs`,
:mod:`~tpo.store.comparisons`, :mod:`~tpo.store.evaluations`, :mod:`~tpo.store.models` and
:mod:`~tpo.store.teams`.

The database runs in WAL mode so the app, the CLI and background jobs can read while one of
them writes. Each thread gets its own connection (Gradio runs handlers on worker threads; a
sqlite3 connection must not be shared between them). Every user action is one transaction:
``with store.transaction(): ...``.
"""

from __future__ import annotations

import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

import sqlite_utils

from tpo.store import faults, schema
from tpo.store.comparisons import ComparisonsMixin
from tpo.store.errors import (DatabaseCorruptError, DatabaseUnavailableError, NotFoundError,
                              StoreError)
from tpo.store.evaluations import EvaluationsMixin
from tpo.store.jobs import JobsMixin
from tpo.store.models import ModelsMixin
from tpo.store.pairs import PairsMixin
from tpo.store.teams import TeamsMixin
from tpo.store.videos import VideosMixin


class Store(VideosMixin, PairsMixin, JobsMixin, ComparisonsMixin, EvaluationsMixin,
            ModelsMixin, TeamsMixin):
    """A TPO Studio database file. Creates and migrates it on open.

    ``busy_timeout_s``: how long a statement waits for another process's write lock before
    :class:`DatabaseLockedError` (default :data:`tpo.store.faults.DEFAULT_BUSY_TIMEOUT_S`).
    Raises :class:`DatabaseError` when the file cannot be used: a full disk, a lock held too
    long, a damaged or non-SQLite file, a file that cannot be opened. A damaged file is
    refused at open (its header and size are checked before SQLite touches it, and
    ``PRAGMA quick_check`` runs before a migration writes to it), and once a statement finds
    damage the store writes nothing more.
    """

    def __init__(self, path: str | Path, *, busy_timeout_s: float | None = None):
        self.path = Path(path)
        self.busy_timeout_s = (faults.DEFAULT_BUSY_TIMEOUT_S if busy_timeout_s is None
                               else busy_timeout_s)
        self.damage: str | None = None  # why the file is damaged, once a statement found it
        self._local = threading.local()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise DatabaseUnavailableError(
                f"cannot open database {self.path}: its folder {self.path.parent} cannot be "
                f"created ({err.strerror or err}); choose another database file") from None
        faults.check_file(self.path)
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
                                   factory=faults.Connection)
        except sqlite3.Error as err:
            raise faults.database_error(err, self.path, self.busy_timeout_s) from err
        conn.store = self
        try:
            conn.execute("PRAGMA foreign_keys = ON")
        except BaseException:
            conn.close()
            raise
        return conn

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
        if self.damage:  # never write further into a damaged file
            raise DatabaseCorruptError(self.damage)
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

    def copy_to(self, path: str | Path) -> Path:
        """A consistent copy of the whole database (WAL included) at ``path``, taken while
        others may read and write (SQLite's online backup); replaces a file there."""
        path = Path(path)
        if path.resolve() == self.path.resolve():
            raise ValueError(f"cannot copy database {self.path} onto itself")
        path.parent.mkdir(parents=True, exist_ok=True)
        for stale in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            stale.unlink(missing_ok=True)
        target = sqlite3.connect(str(path))
        try:
            self.db.conn.backup(target)
        except sqlite3.Error as err:
            raise faults.database_error(err, path, self.busy_timeout_s) from err
        finally:
            target.close()
        return path

    def close(self) -> None:
        """Close this thread's connection (others close when their threads end)."""
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    # -- schema -------------------------------------------------------------------------

    def _migrate(self) -> None:
        db = self.db
        # Reading the schema first: a damaged schema page fails here, before any write.
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        version = schema.user_version(db)
        if version > schema.SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has schema version {version}, newer than this TPO Studio "
                f"understands ({schema.SCHEMA_VERSION}); upgrade TPO Studio to open it"
            )
        if 0 < version < schema.SCHEMA_VERSION:
            # A migration rewrites tables: check the whole file first (quick_check reads
            # every page once; it runs only when a migration is due).
            problem = db.execute("PRAGMA quick_check(1)").fetchone()[0]
            if problem != "ok":
                self.damage = faults.corrupt_message(self.path, problem)
                raise DatabaseCorruptError(self.damage)
        db.enable_wal()
        if schema.is_due(db):
            with self.transaction():
                schema.migrate(db)

    @property
    def schema_version(self) -> int:
        return schema.user_version(self.db)

    # -- reading one row ------------------------------------------------------------------

    def _one(self, sql: str, params: Sequence[Any], *, missing: str) -> dict:
        """The first row ``sql`` selects; :class:`NotFoundError` saying ``missing`` when it
        selects none. Every getter of the store fetches its row through here."""
        rows = list(self.db.query(sql, params))  # by primary key: one row or none
        if not rows:
            raise NotFoundError(missing)
        return rows[0]
