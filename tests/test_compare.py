"""Side-by-side comparisons: making them, the ``compare`` job with the tiny real models,
streaming, votes, the Wilson leaderboard and the questions offered for a video."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from media import make_bad_files, make_video

from tpo import jobs
from tpo.evaluation import compare
from tpo.evaluation.compare import CompareConfig, VoteError, wilson
from tpo.media.library import ingest
from tpo.models.modelref import ModelRef
from tpo.store import StoreError, now

JOB_TIMEOUT_S = 300
SMALL = CompareConfig(frames=4, max_new_tokens=8)
QUESTION = "What is shown in the video?"


@pytest.fixture
def video_id(store, tmp_path):
    """One ingested, readable 4 s clip."""
    report = ingest(store, [make_video(tmp_path / "clip.mp4", duration_s=4, fps=4, size=(64, 48))])
    (vid,) = report.added
    return vid


def ref(name: str, model: str | None = None) -> ModelRef:
    return ModelRef(name, model or f"/models/{name}")


def mark_done(store, comparison_id: int) -> None:
    store.db["comparisons"].update(comparison_id, {"status": "done", "answer_a": "x",
                                                   "answer_b": "y"})


# -- create ------------------------------------------------------------------------------


def test_create_stores_an_unanswered_comparison(store, video_id):
    cid = compare.create(store, video_id, "  " + QUESTION + " ", ref("base"), ref("tuned"),
                         user="ana", blind=False, config=SMALL)
    row = compare.get(store, cid)
    assert row["question"] == QUESTION
    assert (row["model_a"], row["model_b"]) == ("base", "tuned")
    assert row["spec_a"] == {"model": "/models/base", "adapter": None}
    assert row["spec_b"] == {"model": "/models/tuned", "adapter": None}
    assert (row["answer_a"], row["answer_b"]) == ("", "")
    assert row["status"] == "answering" and row["blind"] is False and row["user"] == "ana"
    assert (row["n_frames"], row["max_new_tokens"], row["timestamps"]) == (4, 8, [])
    assert row["votes"] == []
    listed = compare.list_comparisons(store)
    assert [(c["id"], c["n_votes"]) for c in listed] == [(cid, 0)]


def test_create_refuses_an_empty_question(store, video_id):
    for question in ("", "   ", None):
        with pytest.raises(ValueError, match="ask a question"):
            compare.create(store, video_id, question, ref("a"), ref("b"), user="ana")
    assert compare.list_comparisons(store) == []


def test_create_refuses_an_unreadable_or_unknown_video(store, tmp_path):
    bad = make_bad_files(tmp_path / "bad")
    ingest(store, [bad["text"]])
    (row,) = store.list_videos()
    assert row["status"] == "error"
    with pytest.raises(ValueError, match="cannot be read"):
        compare.create(store, row["id"], QUESTION, ref("a"), ref("b"), user="ana")
    with pytest.raises(StoreError):
        compare.create(store, 999, QUESTION, ref("a"), ref("b"), user="ana")
    assert compare.list_comparisons(store) == []


def test_blind_order_is_random_and_seedable(store, video_id):
    orders = []
    for seed in range(20):
        cid = compare.create(store, video_id, QUESTION, ref("base"), ref("tuned"), user="ana",
                             rng=random.Random(seed))
        row = compare.get(store, cid)
        assert row["blind"] is True
        assert {row["model_a"], row["model_b"]} == {"base", "tuned"}
        # the spec travels with its label
        assert row["spec_a"]["model"] == f"/models/{row['model_a']}"
        orders.append(row["model_a"])
        again = compare.get(store, compare.create(store, video_id, QUESTION, ref("base"),
                                                  ref("tuned"), user="ana",
                                                  rng=random.Random(seed)))
        assert again["model_a"] == row["model_a"]  # same seed, same order
    assert set(orders) == {"base", "tuned"}


def test_not_blind_keeps_the_order(store, video_id):
    for seed in range(10):
        cid = compare.create(store, video_id, QUESTION, ref("base"), ref("tuned"), user="ana",
                             blind=False, rng=random.Random(seed))
        assert compare.get(store, cid)["model_a"] == "base"


def test_compare_config_is_validated():
    with pytest.raises(ValueError, match="frames"):
        CompareConfig(frames=0)
    with pytest.raises(ValueError, match="max_new_tokens"):
        CompareConfig(max_new_tokens=0)


# -- the job with the tiny real models -----------------------------------------------------


def expected_answer(store, video_id: int, model_dir, n_frames: int, max_new_tokens: int) -> str:
    """What VLM.answer says on the frames the job samples (greedy: the same text)."""
    from tpo.models.prompts import VideoQuestion
    from tpo.media.video import sample
    from tpo.models.vlm import VLM, ModelConfig

    vid = store.get_video(video_id)
    frames = sample(vid["path"], n_frames)
    with VLM.load(ModelConfig(model=str(model_dir), max_new_tokens=max_new_tokens)) as vlm:
        return vlm.answer([VideoQuestion(frames, QUESTION, vid["duration_s"])])[0]


def run_comparison(store, settings, video_id, model_a: ModelRef, model_b: ModelRef):
    cid = compare.create(store, video_id, QUESTION, model_a, model_b, user="ana", blind=False,
                         config=SMALL)
    job_id = compare.submit(store, cid, log_dir=settings.log_dir)
    row = jobs.wait(store, job_id, JOB_TIMEOUT_S)
    return cid, job_id, row


def test_compare_job_answers_both_sides_with_one_model(store, settings, video_id,
                                                       tiny_smolvlm_dir):
    tiny = ModelRef("tiny", str(tiny_smolvlm_dir))
    cid, job_id, job = run_comparison(store, settings, video_id, tiny, tiny)
    assert job["status"] == "succeeded", jobs.log_tail(job)
    row = compare.get(store, cid)
    assert row["status"] == "done" and row["error"] is None and row["job_id"] == job_id
    assert row["answer_a"] and row["answer_b"]
    assert row["answer_a"] == row["answer_b"]  # same model, same frames, greedy
    duration = store.get_video(video_id)["duration_s"]
    assert len(row["timestamps"]) == SMALL.frames
    assert all(0 <= t <= duration for t in row["timestamps"])
    assert row["timestamps"] == sorted(row["timestamps"])
    assert job["output"] == {"comparison_ids": [cid], "timestamps": {str(cid): row["timestamps"]}}
    assert job["progress"] == 1.0
    assert row["answer_a"] == expected_answer(store, video_id, tiny_smolvlm_dir, SMALL.frames,
                                              SMALL.max_new_tokens)


def test_compare_job_with_two_different_models(store, settings, video_id, tiny_smolvlm_dir,
                                               tiny_qwen2vl_dir):
    smol = ModelRef("smol", str(tiny_smolvlm_dir))
    qwen = ModelRef("qwen", str(tiny_qwen2vl_dir))
    cid, _, job = run_comparison(store, settings, video_id, smol, qwen)
    assert job["status"] == "succeeded", jobs.log_tail(job)
    row = compare.get(store, cid)
    assert row["status"] == "done"
    assert row["answer_a"] == expected_answer(store, video_id, tiny_smolvlm_dir, SMALL.frames,
                                              SMALL.max_new_tokens)
    assert row["answer_b"] == expected_answer(store, video_id, tiny_qwen2vl_dir, SMALL.frames,
                                              SMALL.max_new_tokens)
    # once answered, the comparison can be voted on
    assert compare.vote(store, cid, "ana", "b")["votes"][0]["vote"] == "b"


def test_one_job_answers_a_list_of_blind_comparisons(store, settings, video_id,
                                                     tiny_smolvlm_dir, tiny_qwen2vl_dir):
    """Several questions at once: each model loads once and answers its side everywhere,
    whichever letter the blind shuffle gave it; the video is sampled once for all."""
    smol = ModelRef("smol", str(tiny_smolvlm_dir))
    qwen = ModelRef("qwen", str(tiny_qwen2vl_dir))
    rng = random.Random(3)
    ids = [compare.create(store, video_id, QUESTION, smol, qwen, user="ana", blind=True,
                          config=SMALL, rng=rng) for _ in range(4)]
    rows = [compare.get(store, i) for i in ids]
    assert {r["model_a"] for r in rows} == {"smol", "qwen"}  # both orders occur with seed 3
    job_id = compare.submit(store, ids, log_dir=settings.log_dir)
    job = jobs.wait(store, job_id, JOB_TIMEOUT_S)
    assert job["status"] == "succeeded", jobs.log_tail(job)
    expected = {name: expected_answer(store, video_id, folder, SMALL.frames, SMALL.max_new_tokens)
                for name, folder in (("smol", tiny_smolvlm_dir), ("qwen", tiny_qwen2vl_dir))}
    assert expected["smol"] != expected["qwen"]
    rows = [compare.get(store, i) for i in ids]
    for r in rows:
        assert r["status"] == "done" and r["job_id"] == job_id
        assert (r["answer_a"], r["answer_b"]) == (expected[r["model_a"]], expected[r["model_b"]])
    assert len({tuple(r["timestamps"]) for r in rows}) == 1
    log = Path(job["log_path"]).read_text()
    assert [line.split(" loading ")[1] for line in log.splitlines() if " loading " in line] \
        == [str(tiny_smolvlm_dir) if rows[0]["model_a"] == "smol" else str(tiny_qwen2vl_dir),
            str(tiny_qwen2vl_dir) if rows[0]["model_a"] == "smol" else str(tiny_smolvlm_dir)]


def test_compare_job_with_a_missing_model_fails_and_says_why(store, settings, video_id,
                                                            tiny_smolvlm_dir, tmp_path):
    tiny = ModelRef("tiny", str(tiny_smolvlm_dir))
    missing = ModelRef("missing", str(tmp_path / "no-such-model"))
    cid, _, job = run_comparison(store, settings, video_id, tiny, missing)
    assert job["status"] == "failed"
    assert "Cannot load model" in job["error"]
    row = compare.get(store, cid)
    assert row["status"] == "failed"
    assert "Cannot load model" in row["error"] and "no-such-model" in row["error"]
    assert row["answer_a"]  # A answered before B failed to load
    assert row["answer_b"] == ""
    with pytest.raises(VoteError, match="failed"):
        compare.vote(store, cid, "ana", "a")


def test_a_comparison_whose_job_was_killed_reads_as_failed(store, video_id):
    """A worker killed from outside (out of memory, SIGKILL) writes nothing into the
    comparison; its job's recorded failure stands for it, so the page stops waiting."""
    cid = compare.create(store, video_id, QUESTION, ref("base"), ref("tuned"), user="ana")
    with store.transaction() as db:
        job_id = db["jobs"].insert({"kind": "compare", "params": "{}", "status": "failed",
                                    "error": "killed by SIGKILL (often: out of memory)",
                                    "created_at": now()}).last_pk
        db["comparisons"].update(cid, {"job_id": job_id})
    row = compare.get(store, cid)
    assert row["status"] == "failed" and "SIGKILL" in row["error"]
    with pytest.raises(VoteError, match="failed, there is nothing to vote on"):
        compare.vote(store, cid, "ana", "a")
    with store.transaction() as db:  # a job still running leaves it answering
        db["jobs"].update(job_id, {"status": "queued", "error": None})
    assert compare.get(store, cid)["status"] == "answering"


def test_stream_grows_to_the_answer(tiny_smolvlm_dir, tmp_path):
    from tpo.models.prompts import VideoQuestion
    from tpo.media.video import probe, sample
    from tpo.models.vlm import VLM, ModelConfig

    path = make_video(tmp_path / "clip.mp4", duration_s=2, fps=4, size=(64, 48))
    frames = sample(path, 3)
    item = VideoQuestion(frames, QUESTION, probe(path).duration_s)
    with VLM.load(ModelConfig(model=str(tiny_smolvlm_dir), max_new_tokens=12)) as vlm:
        texts = list(vlm.stream(item))
        assert texts, "at least the final text is yielded"
        assert texts[-1] == vlm.answer([item])[0]
        # each yield extends the text so far (whitespace at the edges is stripped)
        for before, after in zip(texts, texts[1:]):
            assert after.startswith(before.rstrip()) or not before
        no_pixels = VideoQuestion(sample(path, 3, decode=False), QUESTION, 2.0)
        with pytest.raises(ValueError, match="decoded frames"):
            next(vlm.stream(no_pixels))


# -- votes -------------------------------------------------------------------------------


def test_votes_are_checked_and_one_per_person(store, video_id):
    cid = compare.create(store, video_id, QUESTION, ref("base"), ref("tuned"), user="ana",
                         blind=False)
    with pytest.raises(VoteError, match="complete"):
        compare.vote(store, cid, "ana", "a")
    mark_done(store, cid)
    with pytest.raises(VoteError, match="one of"):
        compare.vote(store, cid, "ana", "c")
    with pytest.raises(StoreError, match="no comparison 77"):
        compare.vote(store, 77, "ana", "a")
    revealed = compare.vote(store, cid, "ana", "a")
    assert (revealed["model_a"], revealed["model_b"]) == ("base", "tuned")
    assert [(v["user"], v["vote"]) for v in revealed["votes"]] == [("ana", "a")]
    with pytest.raises(VoteError, match="already voted"):
        compare.vote(store, cid, "ana", "b")
    second = compare.vote(store, cid, "bo", "both_bad")
    assert [(v["user"], v["vote"]) for v in second["votes"]] == [("ana", "a"),
                                                                  ("bo", "both_bad")]
    assert compare.list_comparisons(store)[0]["n_votes"] == 2
    # the unique index holds even for a write that skips vote()'s check
    with pytest.raises(Exception, match="UNIQUE"):
        store.db["votes"].insert({"comparison_id": cid, "user": "ana", "vote": "b", "at": now()})


# -- leaderboard -------------------------------------------------------------------------


def cast(store, cid: int, votes: list[str], prefix: str) -> None:
    for k, choice in enumerate(votes):
        compare.vote(store, cid, f"{prefix}{k}", choice)


def test_leaderboard_counts_wilson_and_ab_order(store, video_id):
    # base vs tuned, base as A in one comparison and as B in the other
    base_a = compare.create(store, video_id, QUESTION, ref("base"), ref("tuned"), user="u",
                            blind=False)
    tuned_a = compare.create(store, video_id, QUESTION, ref("tuned"), ref("base"), user="u",
                             blind=False)
    # base vs zeta: zeta (alphabetically second) wins both
    zeta = compare.create(store, video_id, QUESTION, ref("zeta"), ref("base"), user="u",
                          blind=False)
    for cid in (base_a, tuned_a, zeta):
        mark_done(store, cid)
    # base: 4 + 3 wins, 1 + 1 losses, 1 tie, 2 "both bad"
    cast(store, base_a, ["a", "a", "a", "a", "b", "tie", "both_bad"], "p")
    cast(store, tuned_a, ["b", "b", "b", "a", "both_bad"], "q")
    cast(store, zeta, ["a", "a"], "r")

    board = compare.leaderboard(store)
    assert [(r["model"], r["opponent"]) for r in board] == [("base", "tuned"), ("base", "zeta")]
    first, second = board
    assert {k: first[k] for k in ("wins", "losses", "ties", "both_bad", "votes")} == \
        {"wins": 7, "losses": 2, "ties": 1, "both_bad": 2, "votes": 12}
    assert first["win_rate"] == pytest.approx(0.75)  # (7 + 1/2) / 10: "both bad" left out
    assert first["ci_low"] == pytest.approx(0.442181, abs=1e-5)
    assert first["ci_high"] == pytest.approx(0.919052, abs=1e-5)
    assert {k: second[k] for k in ("wins", "losses", "ties", "both_bad", "votes")} == \
        {"wins": 0, "losses": 2, "ties": 0, "both_bad": 0, "votes": 2}
    assert second["win_rate"] == 0.0
    assert second["ci_low"] == pytest.approx(0.0, abs=1e-9)
    assert second["ci_high"] == pytest.approx(0.657620, abs=1e-5)


def test_a_model_compared_with_itself_gets_a_wins_and_b_losses(store, video_id):
    cid = compare.create(store, video_id, QUESTION, ref("same"), ref("same"), user="u")
    mark_done(store, cid)
    cast(store, cid, ["a", "b", "b", "tie"], "p")
    (row,) = compare.leaderboard(store)
    assert (row["model"], row["opponent"]) == ("same", "same")
    assert (row["wins"], row["losses"], row["ties"]) == (1, 2, 1)
    assert row["win_rate"] == pytest.approx(1.5 / 4)


def test_leaderboard_with_only_both_bad_has_no_win_rate(store, video_id):
    assert compare.leaderboard(store) == []
    cid = compare.create(store, video_id, QUESTION, ref("a"), ref("b"), user="u", blind=False)
    mark_done(store, cid)
    cast(store, cid, ["both_bad", "both_bad"], "p")
    (row,) = compare.leaderboard(store)
    assert (row["votes"], row["both_bad"], row["wins"]) == (2, 2, 0)
    assert row["win_rate"] is None and row["ci_low"] is None and row["ci_high"] is None


def test_wilson_interval_known_values():
    assert wilson(0, 0) == (0.0, 1.0)
    low, high = wilson(5, 10)
    assert (low, high) == (pytest.approx(0.236593, abs=1e-5), pytest.approx(0.763407, abs=1e-5))
    low, high = wilson(10, 10)
    assert low == pytest.approx(0.722467, abs=1e-5) and high == pytest.approx(1.0)
    low, high = wilson(1, 2)
    assert (low, high) == (pytest.approx(0.094531, abs=1e-5), pytest.approx(0.905469, abs=1e-5))
    for s, n in ((0, 3), (3, 3), (2, 7)):
        low, high = wilson(s, n)
        assert 0.0 <= low <= s / n <= high <= 1.0


# -- questions offered for a video -----------------------------------------------------------


def test_questions_from_ground_truth_and_pairs(store):
    truth = {"events": [{"question": "What shape appears first?"},
                        {"question": "What colour is the circle?"}],
             "questions": [{"question": "How many shapes appear in the video?"},
                           {"question": "What shape appears first?"}]}
    vid = store.add_video({"path": "/v/synth.mp4", "name": "synth.mp4", "sha256": "s" * 64,
                           "status": "ready", "duration_s": 10.0, "ground_truth": truth})
    other = store.add_video({"path": "/v/other.mp4", "name": "other.mp4", "sha256": "o" * 64,
                             "status": "ready", "duration_s": 10.0})
    assert compare.questions_for_video(store, other) == []
    pair = {"kind": "localized", "strategy": "irrelevant", "chosen": "c", "rejected": "r",
            "chosen_timestamps": [1.0], "rejected_timestamps": [5.0], "status": "pending"}
    edited_id, _, _ = store.save_generation(vid, "k", [
        {**pair, "question": "What happens at 3 s?"},
        {**pair, "question": "What colour is the circle?"},  # repeats the ground truth
        {**pair, "question": "Where is the ball?"},
    ], params={}, seconds=0)
    store.save_generation(other, "k", [{**pair, "question": "Other video's question?"}],
                          params={}, seconds=0)
    store.update_pair(edited_id, {"edited_question": "What falls at 3 s?"}, user="ana",
                      action="edit", expected_version=1)
    assert compare.questions_for_video(store, vid) == [
        "What shape appears first?", "What colour is the circle?",
        "How many shapes appear in the video?", "What falls at 3 s?", "Where is the ball?"]
    assert compare.questions_for_video(store, other) == ["Other video's question?"]


def test_comparison_json_columns_round_trip(store, video_id):
    adapter = ModelRef("#1 run", "base/model", "/runs/run")
    cid = compare.create(store, video_id, QUESTION, adapter, ref("base"), user="ana",
                         blind=False)
    raw = store.db["comparisons"].get(cid)
    assert json.loads(raw["spec_a"]) == {"model": "base/model", "adapter": "/runs/run"}
    assert compare.get(store, cid)["spec_a"]["adapter"] == "/runs/run"
    with pytest.raises(StoreError, match="no comparison 999"):
        compare.get(store, 999)


# -- schema migration ------------------------------------------------------------------------


def test_a_version_2_database_is_migrated_keeping_its_comparisons(tmp_path):
    import sqlite_utils

    from tpo.store.schema import SCHEMA_VERSION, STEPS
    from tpo.store import Store

    path = tmp_path / "old.db"
    old = sqlite_utils.Database(path)
    for migration in STEPS[:2]:  # the database as the old code made it
        migration(old)
    old.execute("PRAGMA user_version = 2")
    video_id = old["videos"].insert({"path": "/v/a.mp4", "name": "a.mp4", "sha256": "a" * 64,
                                     "status": "ready", "added_at": now()}).last_pk
    cid = old["comparisons"].insert({
        "video_id": video_id, "question": "Old question?", "model_a": "base",
        "model_b": "tuned", "answer_a": "red", "answer_b": "blue", "frames": None,
        "user": "ana", "created_at": now()}).last_pk
    old.conn.commit()
    assert "spec_a" not in old["comparisons"].columns_dict and "evals" not in old.table_names()
    old.close()

    store = Store(path)
    try:
        assert store.schema_version == SCHEMA_VERSION
        columns = store.db["comparisons"].columns_dict
        assert {"spec_a", "spec_b", "blind", "status", "error", "job_id"} <= set(columns)
        assert {"evals", "eval_items"} <= set(store.db.table_names())
        row = compare.get(store, cid)
        assert (row["question"], row["answer_a"], row["answer_b"]) == ("Old question?", "red",
                                                                       "blue")
        assert row["spec_a"] == {} and row["timestamps"] == [] and row["votes"] == []
        assert [c["id"] for c in compare.list_comparisons(store)] == [cid]
        # new comparisons and one-vote-per-person work on the migrated file
        new = compare.create(store, video_id, QUESTION, ref("a"), ref("b"), user="bo",
                             blind=False)
        mark_done(store, new)
        compare.vote(store, new, "bo", "tie")
        with pytest.raises(Exception, match="UNIQUE"):
            store.db["votes"].insert({"comparison_id": new, "user": "bo", "vote": "a",
                                      "at": now()})
    finally:
        store.close()
    assert Store(path).schema_version == SCHEMA_VERSION  # opening again changes nothing
