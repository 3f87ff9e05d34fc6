"""The store's schema as an ordered list of migrations (SQLite ``PRAGMA user_version``).

Migration ``i`` (0-based) takes a database at version ``i`` to ``i + 1``. Never edit a
migration that has shipped: append a new one. Tables follow docs/architecture.md; JSON-valued
columns are TEXT holding JSON (lists of timestamps, parameters, before/after snapshots).
"""

from __future__ import annotations

from typing import Callable

import sqlite_utils


def _initial(db: sqlite_utils.Database) -> None:
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


def _generations(db: sqlite_utils.Database) -> None:
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


def _compare_and_eval(db: sqlite_utils.Database) -> None:
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


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [_initial, _generations,
                                                             _compare_and_eval]
SCHEMA_VERSION = len(MIGRATIONS)
