"""The SQLite store: the single source of truth for videos, pairs, reviews, jobs and results.

All SQL of TPO Studio lives in this package, built on sqlite-utils, one module per group of
tables; :class:`Store` (in :mod:`tpo.store.core`) combines them::

    errors       StoreError, NotFoundError, ConflictError, the Database*Error faults
    faults       database faults as one-line messages; the damaged-file checks
    schema       the migrations (sqlite-utils' Migrations), PRAGMA user_version
    columns      timestamps, JSON columns, literal LIKE searches
    core         Store: the file, per-thread connections, transactions, migration
    videos       videos                       (VideosMixin)
    pairs        pairs, generations, reviews, decisions, pairs_fts (PairsMixin; Pair, the
                 row with its views; the review queues)
    jobs         jobs, metrics                (JobsMixin)
    comparisons  comparisons, votes           (ComparisonsMixin)
    evaluations  evals, eval_items, eval_shards (EvaluationsMixin)
    models       models                       (ModelsMixin)
    teams        assignments, guidelines      (TeamsMixin)
"""

from tpo.store.columns import LIKE_ESCAPE, contains_pattern, now
from tpo.store.core import Store
from tpo.store.errors import (ConflictError, DatabaseCorruptError, DatabaseError,
                              DatabaseFullError, DatabaseLockedError, DatabaseUnavailableError,
                              NotFoundError, StoreError)
from tpo.store.faults import database_error
from tpo.store.jobs import ACTIVE_STATUSES, FINISHED_STATUSES, JOB_STATUSES
from tpo.store.pairs import PAIR_JSON_COLUMNS, PAIR_STATUSES, REVIEWABLE, Pair, swap_sides
from tpo.store.schema import SCHEMA_VERSION
from tpo.store.videos import VIDEO_STATUSES

__all__ = [
    "ACTIVE_STATUSES", "ConflictError", "DatabaseCorruptError",
    "DatabaseError", "DatabaseFullError", "DatabaseLockedError", "DatabaseUnavailableError",
    "FINISHED_STATUSES", "JOB_STATUSES", "LIKE_ESCAPE", "NotFoundError", "PAIR_JSON_COLUMNS",
    "PAIR_STATUSES", "Pair", "REVIEWABLE", "SCHEMA_VERSION", "Store", "StoreError",
    "VIDEO_STATUSES", "contains_pattern", "database_error", "now", "swap_sides",
]
