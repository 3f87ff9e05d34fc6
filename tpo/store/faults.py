"""Database faults as one-line messages: a full disk, a lock held too long, a damaged or
non-SQLite file, a file that cannot be opened.

Every statement runs through :class:`Connection` and :class:`Cursor`, so a fault in the
middle of work reads the same as one at open, and once a statement finds damage the store
is told and writes nothing more. :func:`check_file` refuses a damaged file before SQLite
touches it.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

from tpo.store.errors import (DatabaseCorruptError, DatabaseError, DatabaseFullError,
                              DatabaseLockedError, DatabaseUnavailableError, StoreError)

if TYPE_CHECKING:
    from tpo.store.core import Store

# Wait this long for another process's write lock before saying so. SQLite's busy handler
# retries during the wait; transactions here are short, so a longer wait means a stuck or
# long-running other program, and the person should hear about it rather than stare at a
# frozen command (the old 30 s wait ended in a traceback anyway).
DEFAULT_BUSY_TIMEOUT_S = 5.0

SQLITE_MAGIC = b"SQLite format 3\x00"


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
        new = DatabaseCorruptError(corrupt_message(path, text))
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


def corrupt_message(path: str | os.PathLike, what: str) -> str:
    return (f"database {path} is damaged ({what}); nothing more was written to it - restore "
            f"it from a backup, or move it aside to start a new database")


def check_file(path: Path) -> None:
    """Refuse a file that is not an SQLite database, or is shorter than its header says
    (truncated), before SQLite opens it - so nothing is ever written to it."""
    try:
        if not path.is_file() or (size := path.stat().st_size) == 0:
            return  # a new database (SQLite makes one in an empty file), or not a file
        if open_in_this_process(path):
            return  # checked when it was opened; reading it now would drop SQLite's locks
        with open(path, "rb") as f:  # SQLite reports what cannot be opened
            header = f.read(100)
    except OSError:
        return
    if len(header) < 100 or not header.startswith(SQLITE_MAGIC):
        raise DatabaseCorruptError(corrupt_message(path, "not an SQLite database"))
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    # The page count is valid when the change counter matches "version-valid-for".
    # With a non-empty WAL beside it, pages a checkpoint was still writing live in the
    # WAL, so a short file is no proof of damage there.
    wal = Path(f"{path}-wal")
    if (header[24:28] == header[92:96] and pages and size < pages * page_size
            and not (wal.is_file() and wal.stat().st_size > 0)):
        raise DatabaseCorruptError(corrupt_message(
            path, f"truncated: {size} bytes, its header says {pages * page_size}"))


def open_in_this_process(path: Path) -> bool:
    """Whether this process holds ``path`` open already (another Store on the file: Linux's
    ``/proc/self/fd``; False where that cannot be read). Then the header must not be read:
    closing any descriptor of a file drops every POSIX lock the process holds on it, so
    SQLite's connections here would hold none, and another process's last connection would
    checkpoint and delete the WAL under them (they would then read pages from before)."""
    try:
        target = path.stat()
        fds = os.listdir("/proc/self/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            held = os.stat(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # closed meanwhile, or the listing's own descriptor
        if (held.st_dev, held.st_ino) == (target.st_dev, target.st_ino):
            return True
    return False


class Cursor(sqlite3.Cursor):
    """A cursor whose faults are :class:`DatabaseError`: rows are fetched lazily, so a
    damaged page can surface while iterating, not only in ``execute``."""

    def _fault(self, err: sqlite3.Error) -> BaseException:
        return self.connection.fault(err)

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


class Connection(sqlite3.Connection):
    """A connection that turns file faults into :class:`DatabaseError` (see
    :func:`database_error`) and tells its store when the file is damaged."""

    store: "Store | None" = None

    def fault(self, err: sqlite3.Error) -> BaseException:
        """The error to raise for ``err``; a damaged file is noted on the store."""
        store = self.store
        if store is None:
            return err
        new = database_error(err, store.path, store.busy_timeout_s)
        if isinstance(new, DatabaseCorruptError):
            store.damage = str(new)
        return new

    # sqlite3.Connection.execute makes a plain cursor in C, bypassing cursor(): route
    # every statement through Cursor by hand.
    def cursor(self, factory=None):
        return super().cursor(factory or Cursor)

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
            raise self.fault(err) from err
