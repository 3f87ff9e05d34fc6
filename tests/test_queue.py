"""Review queues computed in SQL on a real store: ids and counts for every filter (the same
pairs the decoding path gives), full-text search over generated and edited texts, keyset
paging, filtered pairs per reason and their audited bulk restore, undo as an audited action,
the warning before accepting an empty or cut-off chosen answer, the migration of an older
file, and the CLI for all of it."""

from __future__ import annotations

import itertools
import json

import pytest
import sqlite_utils
from click.testing import CliRunner

from tpo.cli import cli
from tpo.curation.review import (UndoError, answer_warning, replay, restore_all, review,
                                 undo)
from tpo.store import ConflictError, Store, now
from tpo.store.schema import STEPS, SCHEMA_VERSION

KINDS = ("localized", "comprehensive")
STRATEGIES = ("irrelevant", "incomplete", "dense-sparse")
REASONS = ("truncated: the chosen answer stopped at the token limit",
           "near-identical: chosen and rejected are 93% alike",
           "near-identical: chosen and rejected are 97% alike", None)


def add_video(store, name="a.mp4"):
    return store.add_video({"path": f"/v/{name}", "name": name, "sha256": name * 8,
                            "status": "ready", "duration_s": 60.0})


def pair_row(i, *, status="pending", reason=None, kind=None, question=None, chosen=None):
    filtered = status == "filtered"
    return {"kind": kind or KINDS[i % 2], "strategy": STRATEGIES[i % 3],
            "question": question or f"What happens in scene {i}?",
            "chosen": chosen or f"A red ball rolls left ({i}).",
            "rejected": f"Nothing moves {i}.", "segment_start": 1.0, "segment_end": 5.0,
            "chosen_timestamps": [1.0, 2.0], "rejected_timestamps": [9.0], "status": status,
            "filter_verdict": "dropped" if filtered else "kept",
            "filter_reason": reason if filtered else None,
            "generator": {"model": "tiny", "config": {"max_new_tokens": 16}}}


@pytest.fixture
def lib(store):
    """Two videos, 24 pairs of mixed kind, strategy and status; 8 filtered for 4 reasons."""
    a, b = add_video(store, "a.mp4"), add_video(store, "b.mp4")
    statuses = itertools.cycle(["pending", "pending", "filtered", "accepted", "rejected",
                                "filtered"])
    rows = [pair_row(i, status=next(statuses), reason=REASONS[i % 4]) for i in range(24)]
    ids = store.save_generation(a, "k", rows[:12], params={}, seconds=0)
    ids += store.save_generation(b, "k", rows[12:], params={}, seconds=0)
    return {"videos": (a, b), "ids": ids}


FILTERS = [{}, {"status": "pending"}, {"status": "filtered"}, {"kind": "localized"},
           {"kind": "comprehensive", "status": "accepted"}, {"strategy": "incomplete"},
           {"reason": "near-identical"}, {"search": "scene 1"}, {"search": "RED BALL"},
           {"search": "(7)"}, {"search": "zz"}, {"search": "%"}, {"search": "no such text"}]


@pytest.mark.parametrize("filters", FILTERS, ids=lambda f: json.dumps(f))
def test_queue_ids_and_count_give_the_pairs_list_pairs_gives(store, lib, filters):
    expected = [p["id"] for p in store.list_pairs(**filters)]
    assert store.queue_ids(**filters) == expected
    assert store.queue_count(**filters) == len(expected)
    # What the Curate tab loads: the same ids with the versions list_pairs would decode.
    assert store.queue_versions(**filters, order="pending-first") == [
        (p["id"], p["version"]) for p in store.list_pairs(**filters, order="pending-first")]


def test_queue_filters_by_video_and_orders_keyset_pages(store, lib):
    a, b = lib["videos"]
    first = store.queue_ids(video_id=a)
    assert first == lib["ids"][:12] and store.queue_ids(video_id=b) == lib["ids"][12:]
    # Keyset pages of 5 walk the whole queue once, in order.
    pages, after = [], None
    while page := store.queue_ids(limit=5, after=after):
        pages += page
        after = page[-1]
    assert pages == lib["ids"]
    assert store.queue_ids(order="newest", after=lib["ids"][3]) == lib["ids"][:3][::-1]
    # pending-first: pending, then filtered, accepted, rejected, each by id; after a pair
    # (even one whose status changed since) the rest of that order follows.
    full = [p["id"] for p in store.list_pairs(order="pending-first")]
    assert store.queue_ids(order="pending-first") == full
    assert store.queue_ids(order="pending-first", after=full[5]) == full[6:]
    assert store.queue_position(lib["ids"][7], status=None) == 7


def test_search_uses_the_full_text_index_and_sees_edits(store, lib):
    assert store.db.execute("SELECT count(*) FROM pairs_fts").fetchone()[0] == 24
    target = lib["ids"][0]
    assert store.queue_ids(search="purple kite") == []
    review(store, target, "edit", user="ana", chosen="A Purple Kite drifts.")
    assert store.queue_ids(search="purple kite") == [target]
    # The edit replaced the chosen side as shown; the generated text is still searchable.
    assert target in store.queue_ids(search="ball rolls left (0)")
    # A status change writes no index rows (the trigger fires on text columns only) and
    # the index stays consistent with the table.
    review(store, target, "accept", user="ana")
    store.db.execute("INSERT INTO pairs_fts(pairs_fts, rank) VALUES ('integrity-check', 1)")
    # Quotes in a search are text, not FTS syntax.
    review(store, lib["ids"][1], "edit", user="ana", question='Is it "red"?')
    assert store.queue_ids(search='"red"') == [lib["ids"][1]]


def test_counters_and_reasons_are_aggregates(store, lib):
    counts = store.pair_counts()
    assert sum(counts["all"].values()) == 24 and counts["all"]["filtered"] == 8
    assert counts["localized"]["pending"] + counts["comprehensive"]["pending"] == 8
    reasons = store.filtered_reasons()
    assert sum(reasons.values()) == 8
    assert set(reasons) == {"truncated", "near-identical", "other"}
    assert reasons["near-identical"] == sum(
        1 for p in store.list_pairs(status="filtered")
        if "near-identical" in (p["filter_reason"] or ""))
    # The queries read indexes only (no pairs table scan).
    plan = " ".join(r[3] for r in store.db.execute(
        "EXPLAIN QUERY PLAN SELECT kind, status, COUNT(*) FROM pairs GROUP BY kind, status"))
    assert "COVERING INDEX" in plan


def test_restore_all_is_one_audited_bulk_action(store, lib):
    near = store.filtered_reasons()["near-identical"]
    assert restore_all(store, user="ana", reason="near-identical") == near
    assert "near-identical" not in store.filtered_reasons()
    restored = [p for p in store.list_pairs(status="pending") if p["filter_reason"]]
    assert len(restored) == near
    for pair in restored:
        (row,) = store.reviews(pair["id"])
        assert (row["user"], row["action"]) == ("ana", "bulk-restore")
        assert row["before"]["status"] == "filtered" and row["after"]["status"] == "pending"
        assert pair["version"] == 2
        state = replay(store, pair["id"])  # the audit trail alone rebuilds the pair
        assert state == {**{k: pair[k] for k in state}}
    left = store.queue_count(status="filtered")
    assert restore_all(store, user="bo") == left and store.queue_count(status="filtered") == 0
    with pytest.raises(ValueError):
        restore_all(store, user=" ")


def test_undo_reverts_the_users_last_action_as_a_new_action(store, lib):
    pair_id = store.queue_ids(status="pending")[0]
    review(store, pair_id, "swap", user="ana")
    accepted = review(store, pair_id, "accept", user="ana")
    assert [d["decision"] for d in store.decisions(pair_id)] == ["accepted"]
    undone = undo(store, pair_id, user="ana")
    assert undone["status"] == "pending" and undone["swapped"] == 1
    assert undone["version"] == accepted["version"] + 1
    assert store.decisions(pair_id) == []
    last = store.reviews(pair_id)[-1]
    assert last["action"] == "undo" and last["undoes"] == store.reviews(pair_id)[1]["id"]
    # Again: the swap before it; then nothing of ana's is left.
    assert undo(store, pair_id, user="ana")["swapped"] == 0
    with pytest.raises(UndoError, match="nothing of ana's"):
        undo(store, pair_id, user="ana")
    state = replay(store, pair_id)
    assert state["status"] == "pending" and state["version"] == store.get_pair(pair_id)["version"]


def test_undo_never_overwrites_someone_elses_later_change(store, lib):
    pair_id = store.queue_ids(status="pending")[0]
    review(store, pair_id, "accept", user="ana")
    review(store, pair_id, "edit", user="bo", chosen="Better answer.")
    with pytest.raises(UndoError, match="changed by bo"):
        undo(store, pair_id, user="ana")
    assert store.get_pair(pair_id)["status"] == "accepted"
    # bo undoes his edit; then ana's accept is hers to undo again.
    undo(store, pair_id, user="bo")
    assert undo(store, pair_id, user="ana")["status"] == "pending"
    assert store.last_undoable_pair("ana") is None
    review(store, lib["ids"][1], "reject", user="ana")
    assert store.last_undoable_pair("ana") == lib["ids"][1]


def test_a_second_reviewers_agreeing_accept_is_a_decision_undone_alone(store, lib):
    pair_id = store.queue_ids(status="pending")[0]
    review(store, pair_id, "accept", user="ana")
    review(store, pair_id, "accept", user="bo")
    assert {d["user"]: d["decision"] for d in store.decisions(pair_id)} == {
        "ana": "accepted", "bo": "accepted"}
    assert undo(store, pair_id, user="bo")["status"] == "accepted"
    assert [d["user"] for d in store.decisions(pair_id)] == ["ana"]
    review(store, pair_id, "reset", user="ana")  # a reset withdraws the decision
    assert store.decisions(pair_id) == []
    with pytest.raises(ConflictError):
        review(store, pair_id, "accept", user="cy", expected_version=1)


def test_answer_warning(store, lib):
    pair = store.get_pair(store.queue_ids(status="pending")[0])
    assert answer_warning(pair) is None  # "... (0)." ends a sentence
    assert answer_warning({**pair, "chosen": "   "}) == "The chosen answer is empty"
    cut = "The ball rolls to the left and then it"
    assert answer_warning({**pair, "chosen": cut}) is None  # short of 3 chars x 16 tokens
    long_cut = cut + " keeps going past the box while the"
    assert "truncated" in answer_warning({**pair, "chosen": long_cut})
    assert answer_warning({**pair, "chosen": long_cut + ' end."'}) is None
    # The filter knew that side stopped at the limit.
    told = {**pair, "chosen": "It goes", "filter_reason": REASONS[0]}
    assert "truncated" in answer_warning(told)
    # After a swap the chosen side is the generated rejected one; an edit is the reviewer's.
    assert answer_warning({**told, "swapped": 1, "rejected": "   "}) == "The chosen answer is empty"
    assert answer_warning({**told, "edited_chosen": "It goes"}) is None


def test_an_older_file_migrates_with_its_decisions_and_search_index(tmp_path):
    path = tmp_path / "old.db"
    db = sqlite_utils.Database(path)
    for step in STEPS[:4]:  # the schema before queues and teams
        step(db)
    db.execute("PRAGMA user_version = 4")
    stamp = now()
    video = db["videos"].insert({"path": "/v/a.mp4", "name": "a.mp4", "sha256": "a" * 64,
                                 "status": "ready", "added_at": stamp}).last_pk
    for i in range(3):
        db["pairs"].insert({"video_id": video, "kind": "localized", "question": f"Where {i}?",
                            "chosen": "Left side.", "rejected": "No idea.", "status": "pending",
                            "version": 1, "created_at": stamp})
    trail = [(1, "ana", "accept", "accepted"), (1, "bo", "reject", "rejected"),
             (2, "ana", "accept", "accepted"), (2, "ana", "reset", "pending")]
    for pair_id, user, action, status in trail:
        db["reviews"].insert({"pair_id": pair_id, "user": user, "at": stamp, "action": action,
                              "before": json.dumps({"status": "pending"}),
                              "after": json.dumps({"status": status})})
    db.conn.commit()
    db.close()
    store = Store(path)
    try:
        assert store.schema_version == SCHEMA_VERSION
        assert {(d["pair_id"], d["user"], d["decision"]) for d in store.decisions()} == {
            (1, "ana", "accepted"), (1, "bo", "rejected")}
        assert store.queue_ids(search="where 2") == [3]
    finally:
        store.close()


# --------------------------------------------------------------------------------------------
# CLI


@pytest.fixture
def run(tmp_path, monkeypatch, settings):
    monkeypatch.setenv("TPO_DATA_DIR", str(settings.data_dir))

    def invoke(*args):
        return CliRunner().invoke(cli, ["--db", str(settings.db_path), *map(str, args)],
                                  catch_exceptions=False)

    return invoke


def test_cli_restore_reasons_all_and_undo(store, lib, run):
    listed = run("restore", "--reasons")
    assert listed.exit_code == 0 and "near-identical" in listed.output
    assert run("restore", "--reason", "judge").exit_code == 2  # --reason needs --all
    done = run("restore", "--all", "--reason", "truncated", "--user", "ana")
    assert done.exit_code == 0 and "restored 2 filtered pairs (truncated)" in done.output
    pair_id = store.queue_ids(status="pending")[0]
    assert run("review", pair_id, "--accept", "--user", "ana").exit_code == 0
    back = run("review", pair_id, "--undo", "--user", "ana")
    assert back.exit_code == 0 and "undo -> pending" in back.output
    again = run("review", pair_id, "--undo", "--user", "ana")
    assert again.exit_code == 1 and again.output.startswith("Error: nothing of ana's to undo")
    assert "Traceback" not in again.output
