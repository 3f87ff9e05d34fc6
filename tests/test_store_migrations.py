"""Migrations through sqlite-utils' Migrations: new files, and files the old code made (their
state only ``PRAGMA user_version``) migrate without re-running what they already have."""

from __future__ import annotations

import sqlite3
import threading

import pytest
import sqlite_utils

from tpo.store import Store, now
from tpo.store.schema import MIGRATIONS, SCHEMA_VERSION, STEPS, is_due

NAMES = [step.__name__ for step in STEPS]


def applied(path) -> list[str]:
    db = sqlite_utils.Database(path)
    try:
        return [m.name for m in MIGRATIONS.applied(db)]
    finally:
        db.close()


def old_database(path, version: int) -> int:
    """A database as the code before recorded migrations left it at ``version``: the first
    ``version`` steps applied, ``user_version`` set, no ``_sqlite_migrations``; one video."""
    db = sqlite_utils.Database(path)
    for step in STEPS[:version]:
        step(db)
    db.execute(f"PRAGMA user_version = {version}")
    video_id = db["videos"].insert({"path": "/v/a.mp4", "name": "a.mp4", "sha256": "a" * 64,
                                    "status": "ready", "added_at": now()}).last_pk
    db.conn.commit()
    assert "_sqlite_migrations" not in db.table_names()
    db.close()
    return video_id


def test_the_steps_are_registered_in_order_under_their_names():
    db = sqlite_utils.Database(memory=True)
    assert [m.name for m in MIGRATIONS.pending(db)] == NAMES == [
        "initial", "generations", "compare_and_eval", "job_resources", "review_queues", "teams",
        "eval_protocol", "pair_counters", "eval_shards"]
    assert SCHEMA_VERSION == len(STEPS)


def test_a_new_database_records_every_step_and_its_version(tmp_path):
    store = Store(tmp_path / "new.db")
    assert store.schema_version == SCHEMA_VERSION
    assert not is_due(store.db)
    store.close()
    assert applied(tmp_path / "new.db") == NAMES


@pytest.mark.parametrize("version", range(1, SCHEMA_VERSION + 1))
def test_an_old_database_migrates_keeping_its_rows(tmp_path, version):
    path = tmp_path / "old.db"
    video_id = old_database(path, version)
    # Running an applied step again would fail (its tables exist): opening proves it did not.
    store = Store(path)
    try:
        assert store.schema_version == SCHEMA_VERSION
        assert {"generations", "evals", "eval_items"} <= set(store.db.table_names())
        assert "spec_a" in store.db["comparisons"].columns_dict
        assert store.get_video(video_id)["name"] == "a.mp4"
    finally:
        store.close()
    assert applied(path) == NAMES


def test_opening_a_migrated_database_again_writes_nothing(tmp_path):
    path = tmp_path / "old.db"
    old_database(path, 1)
    Store(path).close()
    conn = sqlite3.connect(path)
    records = conn.execute("SELECT id, name, applied_at FROM _sqlite_migrations").fetchall()
    conn.close()
    store = Store(path)
    assert store.schema_version == SCHEMA_VERSION and not is_due(store.db)
    store.close()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT id, name, applied_at FROM _sqlite_migrations").fetchall() == records
    conn.close()


def test_stores_opening_one_old_file_at_once_migrate_it_once(tmp_path):
    path = tmp_path / "old.db"
    old_database(path, 1)
    errors, versions = [], []

    def open_it() -> None:
        try:
            store = Store(path)
            versions.append(store.schema_version)
            store.close()
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and versions == [SCHEMA_VERSION] * 4
    assert applied(path) == NAMES  # each step recorded once
