"""The SQLite store on real database files: schema, migrations, WAL, video rows, counts."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from tpo.store import SCHEMA_VERSION, ConflictError, Store, StoreError

TABLES = {"videos", "pairs", "reviews", "jobs", "metrics", "models", "comparisons", "votes"}


def video_row(n: int, **extra) -> dict:
    return {"path": f"/videos/v{n}.mp4", "name": f"v{n}.mp4", "sha256": f"{n:064x}",
            "duration_s": 60.0 + n, "fps": 8.0, "n_frames": 480, "width": 320, "height": 180,
            "status": "ready", **extra}


def test_new_database_has_all_tables_wal_and_version(store):
    assert TABLES <= set(store.db.table_names())
    assert store.schema_version == SCHEMA_VERSION
    mode = sqlite3.connect(store.path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_reopening_keeps_rows_and_does_not_migrate_again(settings):
    first = Store(settings.db_path)
    video_id = first.add_video(video_row(1))
    first.close()
    again = Store(settings.db_path)
    assert again.get_video(video_id)["name"] == "v1.mp4"
    assert again.schema_version == SCHEMA_VERSION


def test_newer_schema_is_refused_with_a_clear_message(settings):
    Store(settings.db_path).close()
    conn = sqlite3.connect(settings.db_path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    conn.close()
    with pytest.raises(StoreError, match="newer than this TPO Studio"):
        Store(settings.db_path)


def test_same_hash_or_path_cannot_be_inserted_twice(store):
    store.add_video(video_row(1))
    with pytest.raises(sqlite3.IntegrityError):
        store.add_video(video_row(2, sha256=f"{1:064x}"))
    with pytest.raises(sqlite3.IntegrityError):
        store.add_video(video_row(3, path="/videos/v1.mp4"))
    assert len(store.list_videos()) == 1


def test_find_video_by_hash_and_path(store):
    video_id = store.add_video(video_row(7))
    assert store.find_video(sha256=f"{7:064x}")["id"] == video_id
    assert store.find_video(path="/videos/v7.mp4")["id"] == video_id
    assert store.find_video(sha256="nope") is None


def test_missing_video_id_is_a_store_error(store):
    with pytest.raises(StoreError, match="no video with id 42"):
        store.get_video(42)


def test_list_search_status_and_pair_counts(store):
    a = store.add_video(video_row(1, name="kitchen.mp4"))
    store.add_video(video_row(2, name="garden.mp4"))
    store.add_video(video_row(3, name="broken.mp4", status="error", error="no video stream"))
    for status in ["pending", "pending", "accepted", "rejected", "filtered"]:
        store.db["pairs"].insert({"video_id": a, "kind": "localized", "status": status,
                                  "version": 1, "created_at": "2026-01-01T00:00:00+00:00"})
    assert [v["name"] for v in store.list_videos(search="KITCH")] == ["kitchen.mp4"]
    assert [v["name"] for v in store.list_videos(status="error")] == ["broken.mp4"]
    kitchen = store.list_videos(search="kitchen")[0]
    assert (kitchen["pairs_pending"], kitchen["pairs_accepted"], kitchen["pairs_rejected"],
            kitchen["pairs_filtered"]) == (2, 1, 1, 1)
    assert store.list_videos(search="garden")[0]["pairs_pending"] == 0
    counts = store.counts()
    assert counts["videos"] == 3 and counts["ready"] == 2 and counts["errors"] == 1
    assert counts["pairs_pending"] == 2 and counts["pairs_accepted"] == 1


def test_transaction_rolls_back_as_a_whole(store):
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.add_video(video_row(1))
            store.add_video(video_row(2))
            raise RuntimeError("boom")
    assert store.list_videos() == []


def test_copy_holds_every_committed_row_while_another_connection_writes(store, tmp_path):
    """copy_to: SQLite's online backup, WAL included; the copy is a store of its own."""
    store.add_video(video_row(1))
    other = Store(store.path)  # another connection holding rows only in the WAL so far
    other.add_video(video_row(2))
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / "tpo.db-wal").write_bytes(b"stale")  # left by an old copy: replaced
    copy = Store(store.copy_to(tmp_path / "copy" / "tpo.db"))
    assert sorted(v["name"] for v in copy.list_videos()) == ["v1.mp4", "v2.mp4"]
    copy.add_video(video_row(3))  # the copy is independent of the original
    assert len(store.list_videos()) == 2
    with pytest.raises(ValueError, match="onto itself"):
        store.copy_to(store.path)
    assert len(store.list_videos()) == 2


def test_pairs_must_belong_to_a_known_video(store):
    with pytest.raises(sqlite3.IntegrityError):
        store.db["pairs"].insert({"video_id": 999, "kind": "localized", "status": "pending",
                                  "version": 1, "created_at": "2026-01-01T00:00:00+00:00"})


def test_threads_get_their_own_connections(store):
    """Gradio calls handlers from worker threads; each must be able to write."""
    errors = []

    def add(n: int) -> None:
        try:
            store.add_video(video_row(n))
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=add, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(store.list_videos()) == 8


def test_ground_truth_round_trips_as_json(store):
    gt = {"events": [{"label": "red circle", "start_s": 3.0, "end_s": 9.0}]}
    video_id = store.add_video(video_row(1, ground_truth=gt))
    assert store.get_video(video_id)["ground_truth"] == gt


def pair(status="pending", **extra) -> dict:
    return {"kind": "localized", "strategy": "irrelevant", "question": "What is red?",
            "chosen": "The circle.", "rejected": "Nothing.", "segment_start": 1.0,
            "segment_end": 4.0, "chosen_timestamps": [1.0, 2.0], "rejected_timestamps": [5.0, 9.0],
            "status": status, **extra}


def test_save_generation_stores_pairs_and_run_atomically(store):
    video_id = store.add_video(video_row(1))
    ids = store.save_generation(video_id, "key1", [pair(), pair("filtered", filter_reason="x")],
                                params={"localized": 2}, seconds=1.5)
    assert store.has_generation(video_id, "key1") and not store.has_generation(video_id, "key2")
    got = store.get_pair(ids[0])
    assert got["chosen_timestamps"] == [1.0, 2.0] and got["version"] == 1 and got["run_key"] == "key1"
    assert [p["id"] for p in store.list_pairs(status="filtered")] == [ids[1]]
    assert store.list_pairs(search="circle", video_id=video_id)[0]["id"] == ids[0]
    with pytest.raises(sqlite3.IntegrityError):  # the same run twice without replace
        store.save_generation(video_id, "key1", [pair()], params={}, seconds=0)
    assert len(store.list_pairs()) == 2  # the failed save left nothing behind


def test_replace_keeps_reviewed_pairs(store):
    video_id = store.add_video(video_row(1))
    first, second = store.save_generation(video_id, "k", [pair(), pair()], params={}, seconds=0)
    store.set_pair_status(first, "accepted", user="ana", action="accept")
    (new,) = store.save_generation(video_id, "k", [pair(question="New?")], params={}, seconds=0,
                                   replace=True)
    # The unreviewed pending pair is gone (SQLite may reuse its id for the new one).
    assert {p["id"]: p["question"] for p in store.list_pairs()} == {first: "What is red?",
                                                                    new: "New?"}


def test_status_change_is_audited_and_version_checked(store):
    video_id = store.add_video(video_row(1))
    (pair_id,) = store.save_generation(video_id, "k", [pair("filtered")], params={}, seconds=0)
    restored = store.set_pair_status(pair_id, "pending", user="ana", action="restore",
                                     expected_version=1)
    assert restored["status"] == "pending" and restored["version"] == 2
    with pytest.raises(ConflictError, match=r"was changed by ana at .* \(now version 2, you had version 1\)"):
        store.set_pair_status(pair_id, "accepted", user="bo", action="accept", expected_version=1)
    (review,) = store.reviews(pair_id)
    assert review["user"] == "ana" and review["action"] == "restore"
    assert review["before"]["status"] == "filtered" and review["before"]["version"] == 1
    assert review["after"]["status"] == "pending" and review["after"]["version"] == 2
    assert store.get_pair(pair_id)["last_user"] == "ana"



def test_pair_queue_filters_order_and_counts(store):
    video_id = store.add_video(video_row(1))
    ids = store.save_generation(video_id, "k", [
        pair("accepted"), pair("filtered", filter_reason="truncated: the chosen answer"),
        pair(kind="comprehensive", strategy="dense-sparse", question="How many?"), pair()],
        params={}, seconds=0)
    assert [p["id"] for p in store.list_pairs(order="pending-first")] == [ids[2], ids[3], ids[1], ids[0]]
    assert [p["id"] for p in store.list_pairs(reason="TRUNC")] == [ids[1]]
    assert [p["id"] for p in store.list_pairs(strategy="dense-sparse")] == [ids[2]]
    assert [p["id"] for p in store.list_pairs(order="newest")][0] == ids[3]
    counts = store.pair_counts()
    assert counts["all"] == {"pending": 2, "accepted": 1, "rejected": 0, "filtered": 1}
    assert counts["comprehensive"]["pending"] == 1 and counts["localized"]["pending"] == 1
    with pytest.raises(StoreError, match="unknown order"):
        store.list_pairs(order="random")
