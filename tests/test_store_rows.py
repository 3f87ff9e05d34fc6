"""The store's rows and getters: Pair and its views, NotFoundError from every getter, and the
job, comparison, evaluation and model methods that hold the SQL their modules used to run."""

from __future__ import annotations

import math

import pytest

from tpo.curation.review import effective
from tpo.store import NotFoundError, Pair, StoreError, swap_sides


def video(store, n: int = 1) -> int:
    return store.add_video({"path": f"/videos/v{n}.mp4", "name": f"v{n}.mp4",
                            "sha256": f"{n:064x}", "duration_s": 60.0, "status": "ready"})


def a_pair(store, **reviewed) -> Pair:
    video_id = video(store)
    (pair_id,) = store.save_generation(video_id, "k", [{
        "kind": "localized", "strategy": "irrelevant", "question": "What is red?",
        "chosen": "The circle.", "rejected": "Nothing.", "segment_start": 1.0,
        "segment_end": 4.0, "chosen_timestamps": [1.0, 2.0], "rejected_timestamps": [5.0],
        "status": "pending"}], params={}, seconds=0)
    if reviewed:
        store.update_pair(pair_id, reviewed, user="ana", action="edit", expected_version=1)
    return store.get_pair(pair_id)


# -- pairs -------------------------------------------------------------------------------


def test_swap_sides_maps_both_ways():
    assert swap_sides(0, "c", "r") == ("c", "r")
    assert swap_sides(1, "c", "r") == ("r", "c")
    assert swap_sides(1, *swap_sides(1, "c", "r")) == ("c", "r")


def test_pairs_come_back_as_pair_rows(store):
    pair = a_pair(store)
    assert isinstance(pair, Pair) and isinstance(pair, dict)
    assert all(isinstance(p, Pair) for p in store.list_pairs())
    assert pair.effective() == {"question": "What is red?", "chosen": "The circle.",
                                "rejected": "Nothing.", "chosen_timestamps": [1.0, 2.0],
                                "rejected_timestamps": [5.0]}
    assert pair.generated_side("chosen") == "chosen"
    assert pair.original_sides() == ("The circle.", "Nothing.")


def test_a_swapped_and_edited_pair_reads_as_reviewed(store):
    pair = a_pair(store, swapped=1, edited_chosen="A red circle.")
    # the edit sits on the generated chosen side, which the swap made the rejected one
    assert pair.effective() == {"question": "What is red?", "chosen": "Nothing.",
                                "rejected": "A red circle.", "chosen_timestamps": [5.0],
                                "rejected_timestamps": [1.0, 2.0]}
    assert (pair.generated_side("chosen"), pair.generated_side("rejected")) == ("rejected",
                                                                                "chosen")
    assert pair.original_sides() == ("Nothing.", "The circle.")
    assert effective(dict(pair)) == pair.effective()  # the review module's alias, plain dict


# -- one place for "no such row" ---------------------------------------------------------


@pytest.mark.parametrize("getter, message", [
    ("get_video", "no video with id 42"), ("get_pair", "no pair with id 42"),
    ("get_job", "no job with id 42"), ("get_comparison", "no comparison 42"),
    ("get_evaluation", "no evaluation 42")])
def test_every_getter_raises_not_found(store, getter, message):
    with pytest.raises(NotFoundError, match=message) as raised:
        getattr(store, getter)(42)
    assert isinstance(raised.value, StoreError)


# -- jobs --------------------------------------------------------------------------------


def test_job_rows_change_only_from_the_statuses_named(store):
    job_id = store.add_job("selftest", {"steps": 2})
    store.update_job(job_id, {"log_path": "/tmp/job.log"})
    row = store.get_job(job_id)
    assert (row["status"], row["params"], row["output"], row["log_path"]) == (
        "queued", {"steps": 2}, None, "/tmp/job.log")
    assert store.transition_job(job_id, ("queued",), status="running", pid=123)
    assert not store.transition_job(job_id, ("queued",), status="running")
    store.set_job_progress(job_id, 0.5, "half")
    assert not store.settle_ended_job(job_id, "gone", pid=999)  # another process's pid
    assert store.transition_job(job_id, ("running",), status="succeeded", output={"n": 1})
    store.set_job_progress(job_id, 0.9, "late")  # after the outcome: ignored
    row = store.get_job(job_id)
    assert (row["status"], row["output"], row["progress"], row["progress_text"]) == (
        "succeeded", {"n": 1}, 0.5, "half")
    assert [j["id"] for j in store.list_jobs(kind="selftest", statuses=["succeeded"])] == [job_id]
    assert store.list_jobs(statuses=["queued"]) == [] and store.active_jobs() == []


def test_a_dead_workers_job_is_settled_once(store):
    job_id = store.add_job("selftest", {})
    assert store.transition_job(job_id, ("queued",), status="cancelling", pid=7)
    assert [j["id"] for j in store.active_jobs()] == [job_id]
    assert store.settle_ended_job(job_id, "gone", pid=7)
    assert not store.settle_ended_job(job_id, "gone", pid=7)
    row = store.get_job(job_id)
    assert (row["status"], row["error"]) == ("cancelled", None)


def test_metrics_keep_their_order_and_nan_is_null(store):
    job_id = store.add_job("selftest", {})
    store.add_metric(job_id, 1, "loss", 2.0)
    store.add_metric(job_id, 2, "loss", math.nan)
    store.add_metric(job_id, 2, "margin", 0.5)
    assert [(m["step"], m["value"]) for m in store.job_metrics(job_id, "loss")] == [(1, 2.0),
                                                                                   (2, None)]
    assert len(store.job_metrics(job_id)) == 3


# -- comparisons, evaluations, models ----------------------------------------------------


def test_comparison_rows_and_votes(store):
    video_id = video(store)
    row = {"video_id": video_id, "question": "Q?", "model_a": "a", "model_b": "b",
           "answer_a": "", "answer_b": "", "status": "answering", "created_at": "t"}
    first, second = store.add_comparison(row), store.add_comparison(row)
    store.update_comparison(first, {"status": "done", "answer_a": "yes"})
    store.fail_answering([first, second], "RuntimeError: boom")
    assert store.get_comparison(first)["status"] == "done"  # only answering ones fail
    assert (store.get_comparison(second)["status"], store.get_comparison(second)["error"]) == (
        "failed", "RuntimeError: boom")
    store.add_vote(first, "ana", "a")
    assert store.has_voted(first, "ana") and not store.has_voted(first, "bo")
    assert [v["vote"] for v in store.comparison_votes(first)] == ["a"]
    assert store.votes_with_models() == [{"model_a": "a", "model_b": "b", "vote": "a"}]
    assert [(c["id"], c["n_votes"]) for c in store.list_comparisons()] == [(second, 0),
                                                                           (first, 1)]


def test_evaluation_rows_round_trip(store):
    row = {"suite": "needle", "model": "base", "spec": {"model": "m"}, "frames": 8,
           "n_items": 1, "n_correct": 1, "accuracy": 1.0, "summary": {"n": 1},
           "config": {"frames": 8}, "created_at": "t"}
    assert store.newest_evaluation_id() is None
    eval_id = store.add_evaluation(row, [{"item_id": "q1", "options": ["x", "y"],
                                          "answer": "A", "correct": 1, "meta": {"depth": 0.5}}])
    store.update_evaluation(eval_id, {"heatmap_path": "/tmp/h.png"})
    got = store.get_evaluation(eval_id)
    assert (got["spec"], got["summary"], got["config"], got["heatmap_path"]) == (
        {"model": "m"}, {"n": 1}, {"frames": 8}, "/tmp/h.png")
    (item,) = store.evaluation_items(eval_id)
    assert (item["options"], item["meta"], item["correct"]) == (["x", "y"], {"depth": 0.5}, True)
    assert [e["id"] for e in store.list_evaluations(suite="needle")] == [eval_id]
    assert store.list_evaluations(suite="mlvu") == [] and store.newest_evaluation_id() == eval_id


def test_a_model_is_one_row_per_adapter_folder(store):
    row = {"name": "run", "base": "m", "adapter_path": "/runs/run", "created_at": "t"}
    first = store.save_model(row)
    assert store.save_model({**row, "base": "m2"}) == first
    other = store.save_model({**row, "adapter_path": "/runs/other"})
    assert [(m["id"], m["base"]) for m in store.list_models()] == [(other, "m"), (first, "m2")]


def test_every_store_error_is_meant_for_a_person():
    from tpo.errors import TPOError
    from tpo.store import errors

    classes = [c for c in vars(errors).values()
               if isinstance(c, type) and issubclass(c, Exception) and c.__module__ == errors.__name__]
    assert len(classes) >= 8 and all(issubclass(c, TPOError) for c in classes)
