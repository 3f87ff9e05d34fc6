"""Reviewer actions on a real store: each action, swap/edit semantics, versions and
conflicts, bulk actions, and rebuilding every pair's state from the audit trail."""

from __future__ import annotations

import pytest

from tpo.curation.review import bulk_review, effective, replay, review
from tpo.store import ConflictError, StoreError


def make_pairs(store, n=3, status="pending"):
    video_id = store.add_video({"path": "/v/a.mp4", "name": "a.mp4", "sha256": "a" * 64,
                                "status": "ready", "duration_s": 60.0})
    rows = [{"kind": "localized", "strategy": "irrelevant", "question": f"Q{i}?",
             "chosen": f"chosen {i}", "rejected": f"rejected {i}", "segment_start": 1.0,
             "segment_end": 5.0, "chosen_timestamps": [1.0, 2.0], "rejected_timestamps": [9.0],
             "status": status, "filter_verdict": "dropped" if status == "filtered" else "kept",
             "filter_reason": "x" if status == "filtered" else None} for i in range(n)]
    return store.save_generation(video_id, "k", rows, params={}, seconds=0)


def test_accept_reject_record_who_and_bump_version(store):
    a, b, _ = make_pairs(store)
    accepted = review(store, a, "accept", user="ana", expected_version=1)
    assert accepted["status"] == "accepted" and accepted["version"] == 2
    rejected = review(store, b, "reject", user="bo", note="off topic")
    assert rejected["status"] == "rejected" and rejected["note"] == "off topic"
    (row,) = store.reviews(b)
    assert (row["user"], row["action"], row["note"]) == ("bo", "reject", "off topic")
    assert row["before"]["status"] == "pending" and row["after"]["status"] == "rejected"


def test_swap_exchanges_sides_and_their_frames(store):
    (pair_id,) = make_pairs(store, 1)
    swapped = review(store, pair_id, "swap", user="ana")
    view = effective(swapped)
    assert (view["chosen"], view["rejected"]) == ("rejected 0", "chosen 0")
    assert view["chosen_timestamps"] == [9.0] and view["rejected_timestamps"] == [1.0, 2.0]
    # The generated texts are untouched; swapping twice restores the original view.
    assert (swapped["chosen"], swapped["rejected"]) == ("chosen 0", "rejected 0")
    assert effective(review(store, pair_id, "swap", user="ana"))["chosen"] == "chosen 0"


def test_edits_keep_originals_and_follow_the_shown_side(store):
    (pair_id,) = make_pairs(store, 1)
    edited = review(store, pair_id, "edit", user="ana", question="Which shape?", chosen="A star.")
    assert edited["question"] == "Q0?" and edited["edited_question"] == "Which shape?"
    assert edited["chosen"] == "chosen 0" and edited["edited_chosen"] == "A star."
    assert effective(edited)["chosen"] == "A star."
    review(store, pair_id, "swap", user="ana")
    # After a swap, "chosen" is the generated rejected side: the edit lands there.
    after = review(store, pair_id, "edit", user="ana", chosen="A circle.")
    assert after["edited_rejected"] == "A circle." and after["edited_chosen"] == "A star."
    assert effective(after)["chosen"] == "A circle." and effective(after)["rejected"] == "A star."
    # Editing back to the generated text clears the edit; reset clears everything.
    assert review(store, pair_id, "edit", user="ana", question="Q0?")["edited_question"] is None
    reset = review(store, pair_id, "reset", user="ana")
    assert reset["swapped"] == 0 and reset["edited_chosen"] is None and reset["edited_rejected"] is None


def test_an_edit_that_changes_nothing_is_refused_or_saves_the_note(store):
    (pair_id,) = make_pairs(store, 1)
    with pytest.raises(ValueError, match="nothing to save"):
        review(store, pair_id, "edit", user="ana", question="Q0?", chosen="chosen 0", rejected="rejected 0")
    noted = review(store, pair_id, "edit", user="ana", question="Q0?", chosen="chosen 0",
                   rejected="rejected 0", note="check the colour")
    assert noted["note"] == "check the colour" and noted["edited_chosen"] is None
    assert [r["action"] for r in store.reviews(pair_id)] == ["note"]


@pytest.mark.parametrize("kwargs, message", [
    ({"action": "edit"}, "nothing to save"),
    ({"action": "edit", "chosen": "  "}, "cannot be empty"),
    ({"action": "dance"}, "unknown action"),
    ({"action": "accept", "user": " "}, "user name"),
])
def test_bad_actions_are_refused_and_change_nothing(store, kwargs, message):
    (pair_id,) = make_pairs(store, 1)
    kwargs = {"user": "ana", **kwargs}
    with pytest.raises(ValueError, match=message):
        review(store, pair_id, kwargs.pop("action"), **kwargs)
    assert store.get_pair(pair_id)["version"] == 1 and store.reviews(pair_id) == []


def test_second_save_on_a_stale_version_is_refused_with_the_newer_pair(store):
    (pair_id,) = make_pairs(store, 1)
    review(store, pair_id, "edit", user="ana", expected_version=1, chosen="Ana's answer.")
    with pytest.raises(ConflictError) as info:
        review(store, pair_id, "edit", user="bo", expected_version=1, chosen="Bo's answer.")
    assert info.value.current["edited_chosen"] == "Ana's answer."
    assert info.value.current["version"] == 2 and "by ana" in str(info.value)
    assert store.get_pair(pair_id)["edited_chosen"] == "Ana's answer."


def test_restore_only_filtered(store):
    filtered, = make_pairs(store, 1, status="filtered")
    assert review(store, filtered, "restore", user="ana")["status"] == "pending"
    with pytest.raises(StoreError, match="not filtered"):
        review(store, filtered, "restore", user="ana")


def test_bulk_accept_is_one_transaction_and_skips_done(store):
    ids = make_pairs(store, 3)
    review(store, ids[0], "accept", user="ana")
    assert bulk_review(store, ids, "accept", user="bo").changed == ids[1:]
    assert {store.get_pair(i)["status"] for i in ids} == {"accepted"}
    assert [r["action"] for r in store.reviews(ids[1])] == ["bulk-accept"]
    with pytest.raises(ValueError):
        bulk_review(store, ids, "swap", user="bo")


def test_bulk_accept_of_pairs_another_reviewer_accepted_records_this_reviewers_decision(store):
    """Overlap: bo bulk-accepts his share, which holds a pair ana accepted. bo's decision is
    recorded as a single Accept would (agreement needs both); a second bulk changes nothing."""
    ids = make_pairs(store, 2)
    review(store, ids[0], "accept", user="ana")
    result = bulk_review(store, ids, "accept", user="bo")
    assert (result.changed, result.agreed, result.unchanged) == ([ids[1]], [ids[0]], [])
    assert {(d["pair_id"], d["user"], d["decision"]) for d in store.decisions()} == {
        (ids[0], "ana", "accepted"), (ids[0], "bo", "accepted"), (ids[1], "bo", "accepted")}
    assert [r["action"] for r in store.reviews(ids[0])] == ["accept", "bulk-accept"]
    versions = {i: store.get_pair(i)["version"] for i in ids}
    again = bulk_review(store, ids, "accept", user="bo")
    assert (again.changed, again.agreed, again.unchanged) == ([], [], ids)
    assert {i: store.get_pair(i)["version"] for i in ids} == versions


def test_audit_trail_rebuilds_every_pair(store):
    ids = make_pairs(store, 3) + make_pairs_more(store)
    review(store, ids[0], "edit", user="ana", question="New?", rejected="Worse.")
    review(store, ids[0], "swap", user="bo")
    review(store, ids[0], "accept", user="ana", note="good")
    review(store, ids[1], "reject", user="bo")
    review(store, ids[3], "restore", user="ana")
    bulk_review(store, ids, "accept", user="cy")
    for pair_id in ids:
        pair = store.get_pair(pair_id)
        state = replay(store, pair_id)
        assert state == {k: pair[k] for k in state}, pair_id


def make_pairs_more(store):
    video_id = store.list_videos()[0]["id"]
    return store.save_generation(video_id, "k2", [{
        "kind": "comprehensive", "strategy": "dense-sparse", "question": "Count?",
        "chosen": "3", "rejected": "2", "chosen_timestamps": [1.0], "rejected_timestamps": [1.0],
        "status": "filtered", "filter_verdict": "dropped", "filter_reason": "x"}],
        params={}, seconds=0)
