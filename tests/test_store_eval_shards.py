"""The finished shards of a sharded evaluation in the store (``eval_shards``): saved one
transaction each (twice is harmless), listed and loaded per run key, removed together with the
storing of the evaluation; ranks in processes of their own write to one file at once, and a
launching process with two stores on it sees every write; a database from before the table
migrates to it keeping its rows."""

from __future__ import annotations

import multiprocessing
import sqlite3

import pytest
import sqlite_utils

from tpo.store import Store, now
from tpo.store.schema import SCHEMA_VERSION, STEPS

KEY, OTHER = "0123456789abcdef", "fedcba9876543210"


def records(shard: int, n: int = 2, reply: str = "A") -> list[dict]:
    return [{"item_id": f"q{shard}-{k}", "response": reply, "prediction": reply,
             "correct": True, "meta": {"depth": 0.5}, "error": None} for k in range(n)]


def test_saved_shards_are_listed_and_loaded_per_run_key(store):
    assert store.eval_shard_indexes(KEY) == [] and store.load_eval_shards(KEY) == {}
    assert store.save_eval_shard(KEY, 2, records(2)) is True
    assert store.save_eval_shard(KEY, 0, records(0, n=1)) is True
    assert store.save_eval_shard(OTHER, 0, records(0)) is True
    assert store.eval_shard_indexes(KEY) == [0, 2]
    assert store.load_eval_shards(KEY) == {0: records(0, n=1), 2: records(2)}
    assert store.eval_shard_runs() == {KEY: 2, OTHER: 1}


def test_saving_a_shard_again_keeps_the_first_answers(store):
    assert store.save_eval_shard(KEY, 1, records(1, reply="A")) is True
    assert store.save_eval_shard(KEY, 1, records(1, reply="B")) is False
    assert store.eval_shard_indexes(KEY) == [1]
    assert store.load_eval_shards(KEY)[1][0]["response"] == "A"


def test_deleting_a_run_keys_shards_leaves_the_others(store):
    for b in range(3):
        store.save_eval_shard(KEY, b, records(b))
    store.save_eval_shard(OTHER, 0, records(0))
    assert store.delete_eval_shards(KEY) == 3
    assert store.eval_shard_indexes(KEY) == []
    assert store.eval_shard_runs() == {OTHER: 1}
    assert store.delete_eval_shards(KEY) == 0


def evaluation_row() -> dict:
    return {"suite": "videomme", "model": "m", "frames": 4, "n_items": 1, "n_correct": 1,
            "accuracy": 1.0, "created_at": now()}


def test_the_evaluation_and_the_removal_of_its_shards_commit_together(store):
    store.save_eval_shard(KEY, 0, records(0))
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.add_evaluation(evaluation_row(), [{"item_id": "q0-0", "correct": 1}])
            store.delete_eval_shards(KEY)
            raise RuntimeError("the process died before the commit")
    assert store.list_evaluations() == [] and store.eval_shard_indexes(KEY) == [0]
    with store.transaction():
        eval_id = store.add_evaluation(evaluation_row(), [{"item_id": "q0-0", "correct": 1}])
        store.delete_eval_shards(KEY)
    assert [e["id"] for e in store.list_evaluations()] == [eval_id]
    assert store.eval_shard_runs() == {}


def _rank(path: str, rank: int, world: int, n_shards: int) -> None:
    """One rank in a process of its own: its own Store on the file, every world-th shard."""
    store = Store(path)
    try:
        for b in range(rank, n_shards, world):
            store.save_eval_shard(KEY, b, records(b))
    finally:
        store.close()


def test_ranks_in_processes_of_their_own_write_one_file_at_once(store):
    n_shards, world = 24, 3
    context = multiprocessing.get_context("spawn")  # like accelerate's ranks: fresh processes
    ranks = [context.Process(target=_rank, args=(str(store.path), r, world, n_shards))
             for r in range(world)]
    for p in ranks:
        p.start()
    for p in ranks:
        p.join()
    assert [p.exitcode for p in ranks] == [0] * world
    assert store.eval_shard_indexes(KEY) == list(range(n_shards))
    assert store.load_eval_shards(KEY)[23] == records(23)


def test_a_second_store_in_the_launching_process_keeps_both_in_step(store):
    """The CLI run inside a test opens a second Store on the fixture's file: opening it must
    not drop this process's file locks (then each rank, closing, would take itself for the
    last connection and delete the WAL, and both stores would go on reading old pages)."""
    second = Store(store.path)
    try:
        context = multiprocessing.get_context("spawn")
        for n in range(1, 4):  # one rank at a time, each the only other process
            rank = context.Process(target=_rank, args=(str(store.path), n - 1, 3, 3))
            rank.start()
            rank.join()
            assert rank.exitcode == 0
            assert store.eval_shard_runs() == {KEY: n} == second.eval_shard_runs()
    finally:
        second.close()


def test_a_database_from_before_the_shards_table_migrates_to_it(tmp_path):
    """A file the code before this step made (every earlier step applied and recorded,
    one evaluation stored): opening it adds ``eval_shards`` and keeps the evaluation."""
    path = tmp_path / "old.db"
    db = sqlite_utils.Database(path)
    for step in STEPS[:-1]:
        step(db)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION - 1}")
    db["evals"].insert({**evaluation_row(), "protocol": "tpo"})
    db.conn.commit()
    assert "eval_shards" not in db.table_names()
    db.close()
    store = Store(path)
    try:
        assert store.schema_version == SCHEMA_VERSION
        assert STEPS[-1].__name__ == "eval_shards"
        assert [e["model"] for e in store.list_evaluations()] == ["m"]
        assert store.save_eval_shard(KEY, 0, records(0))
        assert store.load_eval_shards(KEY) == {0: records(0)}
    finally:
        store.close()
    conn = sqlite3.connect(path)
    try:
        pk = [r[1] for r in sorted(conn.execute("PRAGMA table_info(eval_shards)"),
                                   key=lambda r: r[5]) if r[5]]
        applied = [r[0] for r in conn.execute(
            "SELECT name FROM _sqlite_migrations ORDER BY id")]
    finally:
        conn.close()
    assert pk == ["run_key", "shard"]
    assert applied == [step.__name__ for step in STEPS]  # each recorded once, this one last
