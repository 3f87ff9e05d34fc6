"""The store's schema as an ordered list of migrations, applied with sqlite-utils'
:class:`~sqlite_utils.migrations.Migrations` (which records each applied one, by name, in the
``_sqlite_migrations`` table).

Never edit a migration that has shipped: append a new one to :data:`STEPS`. Tables follow
docs/architecture.md; JSON-valued columns are TEXT holding JSON (lists of timestamps,
parameters, before/after snapshots).

``PRAGMA user_version`` is kept equal to the number of steps applied: it is what
:attr:`tpo.store.Store.schema_version` reports, what refuses a database newer than this
code, and all that databases made before migrations were recorded have. Step ``i``
(0-based) takes such a database from version ``i`` to ``i + 1``; :func:`migrate` records the
steps a database at version ``N`` already has as applied, without running them.
"""

from __future__ import annotations

from typing import Callable, Iterable

import sqlite_utils
from sqlite_utils.migrations import Migrations


def initial(db: sqlite_utils.Database) -> None:
    db["videos"].create(
        {
            "id": int,
            "path": str,            # absolute path of the file as ingested
            "name": str,            # file name shown in the library
            "sha256": str,          # content hash: the same bytes are ingested once
            "size_bytes": int,
            "duration_s": float,
            "fps": float,
            "n_frames": int,
            "width": int,           # of upright frames, px
            "height": int,
            "rotation": int,        # degrees, from container metadata
            "codec": str,
            "backend": str,         # reader that opened it: decord / pyav
            "status": str,          # ready | error
            "error": str,           # why it is unreadable (status = error)
            "ground_truth": str,    # JSON of known events (synthetic videos), else NULL
            "added_by": str,
            "added_at": str,        # ISO-8601 UTC
            "updated_at": str,
        },
        pk="id",
        not_null={"path", "name", "status", "added_at"},
        defaults={"status": "ready"},
    )
    db["videos"].create_index(["sha256"], unique=True)
    db["videos"].create_index(["path"], unique=True)

    db["pairs"].create(
        {
            "id": int,
            "video_id": int,
            "kind": str,                 # localized | comprehensive
            "strategy": str,             # irrelevant | incomplete | dense-sparse
            "question": str,
            "chosen": str,
            "rejected": str,
            "segment_start": float,      # s, localized pairs only
            "segment_end": float,
            "chosen_timestamps": str,    # JSON list of s: frames the chosen answer saw
            "rejected_timestamps": str,  # JSON list of s: frames the rejected answer saw
            "prompt": str,
            "captions": str,             # JSON
            "generator": str,            # JSON: model ids, seeds, parameters, timing
            "run_key": str,              # settings fingerprint, for resumable generation
            "filter_verdict": str,       # kept | dropped
            "filter_reason": str,
            "status": str,               # pending | accepted | rejected | filtered
            "edited_question": str,      # edits sit beside the generated originals
            "edited_chosen": str,
            "edited_rejected": str,
            "swapped": int,              # 1 when a reviewer swapped chosen and rejected
            "note": str,
            "version": int,              # bumped by every change; stale saves are refused
            "created_at": str,
            "updated_at": str,
        },
        pk="id",
        foreign_keys=[("video_id", "videos", "id")],
        not_null={"video_id", "kind", "status", "version", "created_at"},
        defaults={"status": "pending", "version": 1, "swapped": 0},
    )
    db["pairs"].create_index(["video_id"])
    db["pairs"].create_index(["status"])

    db["reviews"].create(  # append-only audit trail
        {"id": int, "pair_id": int, "user": str, "at": str, "action": str,
         "before": str, "after": str, "note": str},
        pk="id",
        foreign_keys=[("pair_id", "pairs", "id")],
        not_null={"pair_id", "user", "at", "action"},
    )
    db["reviews"].create_index(["pair_id"])

    db["jobs"].create(
        {"id": int, "kind": str, "params": str, "status": str, "pid": int,
         "progress": float,        # 0..1
         "progress_text": str, "log_path": str, "output": str, "error": str,
         "created_at": str, "started_at": str, "finished_at": str, "updated_at": str},
        pk="id",
        not_null={"kind", "status", "created_at"},
        defaults={"status": "queued", "progress": 0.0},
    )
    db["metrics"].create(
        {"id": int, "job_id": int, "step": int, "name": str, "value": float, "at": str},
        pk="id",
        foreign_keys=[("job_id", "jobs", "id")],
        not_null={"job_id", "name"},
    )
    db["metrics"].create_index(["job_id", "name"])
    db["models"].create(
        {"id": int, "name": str, "base": str, "adapter_path": str, "job_id": int,
         "dataset": str, "params": str, "created_at": str},
        pk="id",
        foreign_keys=[("job_id", "jobs", "id")],
        not_null={"name", "base", "created_at"},
    )
    db["comparisons"].create(
        {"id": int, "video_id": int, "question": str, "model_a": str, "model_b": str,
         "answer_a": str, "answer_b": str, "frames": str, "user": str, "created_at": str},
        pk="id",
        foreign_keys=[("video_id", "videos", "id")],
        not_null={"question", "model_a", "model_b", "created_at"},
    )
    db["votes"].create(
        {"id": int, "comparison_id": int, "user": str, "vote": str, "at": str},
        pk="id",
        foreign_keys=[("comparison_id", "comparisons", "id")],
        not_null={"comparison_id", "vote", "at"},
    )


def generations(db: sqlite_utils.Database) -> None:
    """One row per (video, settings) generation run, so a rerun with the same settings skips
    the video even when it yielded no pair (every segment's question was "None")."""
    db["generations"].create(
        {"id": int, "video_id": int, "run_key": str, "job_id": int, "n_pairs": int,
         "n_filtered": int, "params": str, "seconds": float, "created_at": str},
        pk="id",
        foreign_keys=[("video_id", "videos", "id")],
        not_null={"video_id", "run_key", "created_at"},
    )
    db["generations"].create_index(["video_id", "run_key"], unique=True)
    db["pairs"].create_index(["run_key"])


def compare_and_eval(db: sqlite_utils.Database) -> None:
    """Side-by-side comparisons answered by a job (streamed into the row), one vote per person
    and comparison, and stored evaluation runs with every item's answer."""
    comparisons = db["comparisons"]
    comparisons.add_column("spec_a", str)      # JSON {"model", "adapter"}: what was loaded
    comparisons.add_column("spec_b", str)
    comparisons.add_column("blind", int)       # 1: names hidden until the person votes
    comparisons.add_column("status", str)      # answering | done | failed
    comparisons.add_column("error", str)
    comparisons.add_column("job_id", int)
    db["votes"].create_index(["comparison_id", "user"], unique=True)

    db["evals"].create(
        {"id": int, "job_id": int,
         "suite": str,             # needle | videomme | mlvu | longvideobench
         "suite_path": str,        # annotation file or folder (NULL for needle)
         "model": str,             # label people see ("#3 run-…", a folder name, a hub id)
         "spec": str,              # JSON {"model", "adapter"}: what was loaded
         "frames": int,            # frames each question saw, uniform over the video
         "n_items": int, "n_correct": int,
         "n_unparsed": int,        # answers with no readable option letter (count as wrong)
         "accuracy": float,        # n_correct / n_items, 0..1
         "summary": str,           # JSON: by duration class, by task, needle grid
         "heatmap_path": str,      # needle suite: the PNG
         "config": str,            # JSON of the evaluation settings
         "created_at": str},
        pk="id",
        foreign_keys=[("job_id", "jobs", "id")],
        not_null={"suite", "model", "created_at"},
    )
    db["eval_items"].create(
        {"id": int, "eval_id": int, "item_id": str, "video": str, "question": str,
         "options": str,           # JSON list of option texts, in letter order
         "answer": str,            # correct letter
         "response": str,          # the model's raw answer
         "prediction": str,        # letter read from it, NULL when none could be read
         "correct": int, "duration_class": str, "task": str,
         "meta": str},             # JSON, suite-specific (needle: length_s, depth)
        pk="id",
        foreign_keys=[("eval_id", "evals", "id")],
        not_null={"eval_id", "item_id", "correct"},
    )
    db["eval_items"].create_index(["eval_id"])


def job_resources(db: sqlite_utils.Database) -> None:
    """Whether a job needs the GPU, recorded by its worker once it has loaded the job's kind
    (NULL until then): the scheduler counts and queues GPU jobs by it (:mod:`tpo.jobs`)."""
    db["jobs"].add_column("gpu", int)  # 1: a GPU kind (queued for a slot), 0: runs at once


# The pairs' text columns that search reads (FTS5, trigram: any substring of 3+ characters,
# case-insensitively, as the LIKE search it replaces).
FTS_COLUMNS = ("question", "chosen", "rejected", "edited_question", "edited_chosen",
               "edited_rejected")


def review_queues(db: sqlite_utils.Database) -> None:
    """Queues that scale: an index for every queue filter and the counters (each covers
    ``id`` too, the queue's order), a full-text index over the question and answers
    (generated and edited), kept in step by triggers, and each reviewer's own decision per
    pair (``decisions``, kept by :meth:`tpo.store.Store.update_pair`): what a reviewer's
    share, agreement between reviewers and undo read. ``reviews.undoes``: the review row an
    ``undo`` reverted (the audit trail stays append-only)."""
    pairs = db["pairs"]
    pairs.create_index(["kind", "status"])  # also the counters: GROUP BY kind, status, covered
    pairs.create_index(["video_id", "status"])
    pairs.create_index(["strategy", "status"])
    pairs.create_index(["status", "filter_reason"])  # filtered pairs per reason
    db["reviews"].add_column("undoes", int)
    db["reviews"].create_index(["pair_id", "user"])
    db["reviews"].create_index(["user", "at"])  # throughput per reviewer
    db["decisions"].create(  # a reviewer's latest accept/reject of a pair (not undone)
        {"pair_id": int, "user": str,
         "decision": str,      # accepted | rejected
         "review_id": int,     # the review row that made it
         "at": str},
        pk=("pair_id", "user"),
        foreign_keys=[("pair_id", "pairs", "id"), ("review_id", "reviews", "id")],
        not_null={"decision", "review_id", "at"},
    )
    db["decisions"].create_index(["user", "pair_id"])
    # Decisions the audit trail already holds: each reviewer's latest accept/reject of a pair.
    db.execute(
        "INSERT INTO decisions (pair_id, user, decision, review_id, at) "
        "SELECT pair_id, user, json_extract(after, '$.status'), id, at FROM reviews "
        "WHERE id IN (SELECT MAX(id) FROM reviews WHERE action IN "
        "('accept', 'reject', 'bulk-accept', 'bulk-reject', 'reset', 'restore') "
        "GROUP BY pair_id, user) AND action IN ('accept', 'reject', 'bulk-accept', 'bulk-reject')")
    if not fts5_available(db):
        return  # search falls back to LIKE (tpo.store.pairs checks for the table)
    columns = ", ".join(FTS_COLUMNS)
    new = ", ".join(f"new.{c}" for c in FTS_COLUMNS)
    old = ", ".join(f"old.{c}" for c in FTS_COLUMNS)
    db.execute(f"CREATE VIRTUAL TABLE pairs_fts USING fts5({columns}, content='pairs', "
               "content_rowid='id', tokenize='trigram')")
    db.execute("INSERT INTO pairs_fts(pairs_fts) VALUES ('rebuild')")
    db.execute(f"CREATE TRIGGER pairs_fts_insert AFTER INSERT ON pairs BEGIN "
               f"INSERT INTO pairs_fts(rowid, {columns}) VALUES (new.id, {new}); END")
    db.execute(f"CREATE TRIGGER pairs_fts_delete AFTER DELETE ON pairs BEGIN "
               f"INSERT INTO pairs_fts(pairs_fts, rowid, {columns}) "
               f"VALUES ('delete', old.id, {old}); END")
    # Only an edit of a text reindexes the pair: an accept or reject writes no index rows.
    db.execute(f"CREATE TRIGGER pairs_fts_update AFTER UPDATE OF {columns} ON pairs BEGIN "
               f"INSERT INTO pairs_fts(pairs_fts, rowid, {columns}) "
               f"VALUES ('delete', old.id, {old}); "
               f"INSERT INTO pairs_fts(rowid, {columns}) VALUES (new.id, {new}); END")


def teams(db: sqlite_utils.Database) -> None:
    """Work split among named reviewers (``assignments``: one row per pair and reviewer; a
    pair with overlap has several) and the review guidelines, versioned (Markdown)."""
    db["assignments"].create(
        {"id": int, "pair_id": int, "reviewer": str,
         "overlap": int,       # 1: one of several reviewers of an overlap pair
         "assigned_by": str, "assigned_at": str},
        pk="id",
        foreign_keys=[("pair_id", "pairs", "id")],
        not_null={"pair_id", "reviewer", "assigned_at"},
    )
    db["assignments"].create_index(["reviewer", "pair_id"], unique=True)
    db["assignments"].create_index(["pair_id"])
    db["guidelines"].create(
        {"version": int, "text": str, "user": str, "created_at": str},
        pk="version",
        not_null={"text", "created_at"},
    )


def fts5_available(db: sqlite_utils.Database) -> bool:
    """Whether this SQLite has FTS5 with the trigram tokenizer (SQLite >= 3.34)."""
    try:
        db.execute("CREATE VIRTUAL TABLE temp._tpo_fts_probe USING fts5(x, tokenize='trigram')")
    except Exception:  # sqlite3.OperationalError: no such module / tokenizer
        return False
    db.execute("DROP TABLE temp._tpo_fts_probe")
    return True


def eval_protocol(db: sqlite_utils.Database) -> None:
    """Whose protocol produced each stored evaluation (:mod:`tpo.evaluation.protocols`):
    "tpo" (ours, which every evaluation stored before this step used) or "lmms-eval"."""
    db["evals"].add_column("protocol", str, not_null_default="tpo")


def pair_counters(db: sqlite_utils.Database) -> None:
    """The counters without a scan: pairs per (kind, status) in ``pair_counts``, kept in step
    by triggers on ``pairs`` (an insert, a delete, a change of kind or status), so the
    counters every review action shows read a handful of rows, not an index of every pair.
    A row whose count fell to 0 stays (readers skip it)."""
    db.execute("CREATE TABLE pair_counts (kind TEXT NOT NULL, status TEXT NOT NULL, "
               "n INTEGER NOT NULL, PRIMARY KEY (kind, status)) WITHOUT ROWID")
    db.execute("INSERT INTO pair_counts (kind, status, n) "
               "SELECT kind, status, COUNT(*) FROM pairs GROUP BY kind, status")
    add = ("INSERT INTO pair_counts (kind, status, n) VALUES (new.kind, new.status, 1) "
           "ON CONFLICT (kind, status) DO UPDATE SET n = n + 1;")
    remove = "UPDATE pair_counts SET n = n - 1 WHERE kind = old.kind AND status = old.status;"
    db.execute(f"CREATE TRIGGER pair_counts_insert AFTER INSERT ON pairs BEGIN {add} END")
    db.execute(f"CREATE TRIGGER pair_counts_delete AFTER DELETE ON pairs BEGIN {remove} END")
    db.execute("CREATE TRIGGER pair_counts_update AFTER UPDATE OF kind, status ON pairs "
               "WHEN old.kind IS NOT new.kind OR old.status IS NOT new.status "
               f"BEGIN {remove} {add} END")


def eval_shards(db: sqlite_utils.Database) -> None:
    """Finished shards of a sharded evaluation (:mod:`tpo.evaluation.shard`), one row per
    (run key, shard), written by each rank as soon as it has answered the shard: a rerun asks
    only the shards not here, and storing the evaluation removes its run key's rows."""
    db["eval_shards"].create(
        {"run_key": str,       # model, settings and questions (tpo.evaluation.shard.run_key)
         "shard": int,         # the batch's index, 0-based, in question order
         "answers": str,       # JSON list: the batch's records, in question order
         "created_at": str},
        pk=("run_key", "shard"),
        not_null={"run_key", "shard", "answers", "created_at"},
    )


Step = Callable[[sqlite_utils.Database], None]

# In order; each is recorded under its function's name, so a name never changes either.
STEPS: list[Step] = [initial, generations, compare_and_eval, job_resources, review_queues, teams,
                     eval_protocol, pair_counters, eval_shards]
SCHEMA_VERSION = len(STEPS)


def _migration_set(steps: Iterable[Step]) -> Migrations:
    migrations = Migrations("tpo")
    for step in steps:
        migrations()(step)
    return migrations


MIGRATIONS = _migration_set(STEPS)


def user_version(db: sqlite_utils.Database) -> int:
    return db.execute("PRAGMA user_version").fetchone()[0]


def is_due(db: sqlite_utils.Database) -> bool:
    """Whether :func:`migrate` has anything to do (reads only)."""
    return user_version(db) < SCHEMA_VERSION or bool(MIGRATIONS.pending(db))


def migrate(db: sqlite_utils.Database) -> None:
    """Apply every pending step and set ``user_version``; call it inside a transaction that
    holds the write lock, so two processes opening one file migrate it once."""
    # Read again under the lock: another process may have migrated while we waited for it.
    _record_as_applied(db, [step.__name__ for step in STEPS[:user_version(db)]])
    MIGRATIONS.apply(db)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _record_as_applied(db: sqlite_utils.Database, names: list[str]) -> None:
    """Record steps ``names`` as applied without running them: a database made before
    migrations were recorded has them already (its ``user_version`` says how many). A set
    of the same name whose steps do nothing writes exactly the records a real run writes."""
    already = Migrations(MIGRATIONS.name)
    for name in names:
        already(name=name)(_nothing)
    already.apply(db)


def _nothing(db: sqlite_utils.Database) -> None:
    """A step that changes nothing (see :func:`_record_as_applied`)."""
