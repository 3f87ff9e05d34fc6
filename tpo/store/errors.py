"""What the store raises. Every error here is a :class:`tpo.errors.TPOError`: a person can act
on it (a missing row, a stale save, a full disk, a damaged file).

:class:`NotFoundError` is raised in one place only, the store's "fetch a row or raise"
(:meth:`tpo.store.Store._one`), which every getter goes through.
"""

from __future__ import annotations

import sqlite3

from tpo.errors import TPOError


class StoreError(TPOError):
    """A store operation that cannot be done (missing row, newer schema, ...)."""


class NotFoundError(StoreError):
    """No row with the id asked for (a video, pair, job, comparison, evaluation)."""


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
    :func:`tpo.store.faults.database_error`. Each subclass is also the ``sqlite3`` exception
    class SQLite raised, so code that catches ``sqlite3.Error`` (e.g. a job's cosmetic
    progress write) still does."""


class DatabaseFullError(DatabaseError, sqlite3.OperationalError):
    """SQLITE_FULL: the disk (or the database's page limit) is full."""


class DatabaseLockedError(DatabaseError, sqlite3.OperationalError):
    """SQLITE_BUSY: another process held the write lock for longer than the busy timeout."""


class DatabaseCorruptError(DatabaseError, sqlite3.DatabaseError):
    """SQLITE_CORRUPT / SQLITE_NOTADB, or a header or size that shows the file is damaged."""


class DatabaseUnavailableError(DatabaseError, sqlite3.OperationalError):
    """The file cannot be opened or written: missing folder, read-only, I/O error."""
