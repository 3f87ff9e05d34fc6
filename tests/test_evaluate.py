"""Multiple-choice evaluation: config, scoring, storage, the needle suite and a local
Video-MME layout with the tiny real models, scripted doubles for exact accuracies, the
``eval`` job."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from media import make_video
from PIL import Image

from tpo.evaluation import eval_results as er
from tpo.evaluation import evaluate as ev
from tpo import jobs
from tpo.evaluation.evaluate import EvalConfig
from tpo.evaluation.mcq import MCQItem
from tpo.models.modelref import ModelRef
from tpo.evaluation.needle import NeedleConfig, build_needle_suite
from tpo.models.prompts import Reply
from tpo.store import StoreError

JOB_TIMEOUT_S = 300
NEEDLE = dict(suite="needle", frames=4, max_new_tokens=4, batch_size=2,
              needle_lengths=(10, 20), needle_depths=(0, 1))


# -- config --------------------------------------------------------------------------------


def test_config_is_validated():
    assert EvalConfig().suite_name == "needle" and EvalConfig().suite_path is None
    config = EvalConfig(suite=" VideoMME : /data/vmme ")
    assert (config.suite_name, config.suite_path) == ("videomme", "/data/vmme")
    assert EvalConfig(suite="mlvu:a:b").suite_path == "a:b"  # only the first colon splits
    with pytest.raises(ValueError, match="unknown suite 'bogus'"):
        EvalConfig(suite="bogus")
    with pytest.raises(ValueError, match="needs a path"):
        EvalConfig(suite="videomme")
    with pytest.raises(ValueError, match="needs a path"):
        EvalConfig(suite="longvideobench:  ")
    for name in ("max_new_tokens", "batch_size", "needle_per_cell"):
        with pytest.raises(ValueError, match=name):
            EvalConfig(**{name: 0})
    with pytest.raises(ValueError, match="frames"):
        EvalConfig(frames=-1)  # 0 is "every frame" on the needle suite (test below)
    with pytest.raises(ValueError, match="limit"):
        EvalConfig(limit=0)


def test_needle_config_follows_the_overrides():
    default = EvalConfig().needle_config()
    assert default == NeedleConfig()
    tiny = EvalConfig(**NEEDLE, needle_per_cell=2).needle_config()
    assert tiny.lengths_s == (10.0, 20.0) and tiny.depths == (0.0, 1.0) and tiny.per_cell == 2
    with pytest.raises(ValueError, match="depths"):
        EvalConfig(needle_depths=(0.5, 2)).needle_config()


# -- summarize -----------------------------------------------------------------------------


def rec(item_id, correct, prediction="A", duration="short", task="t1", meta=None, error=None):
    return {"item_id": item_id, "correct": correct, "prediction": prediction,
            "duration_class": duration, "task": task, "meta": meta or {}, "error": error}


def test_summarize_groups_and_leaves_errors_out():
    records = [rec("1", True), rec("2", False, prediction=None),
               rec("3", True, duration="long", task="t2"),
               rec("4", False, prediction="B", duration="long", task="t2"),
               rec("5", False, duration="long", task="", prediction=None),
               rec("6", False, prediction=None, error="bad.mp4: empty file")]
    s = ev.summarize(records)
    assert (s["n"], s["correct"], s["accuracy"], s["unparsed"]) == (5, 2, 0.4, 2)
    assert s["errors"] == [{"item_id": "6", "error": "bad.mp4: empty file"}]
    assert list(s["by_duration"]) == ["short", "long"]  # order of appearance
    assert s["by_duration"]["short"] == {"n": 2, "correct": 1, "accuracy": 0.5}
    assert s["by_duration"]["long"] == {"n": 3, "correct": 1, "accuracy": pytest.approx(1 / 3)}
    assert s["by_task"] == {"t1": {"n": 2, "correct": 1, "accuracy": 0.5},
                            "t2": {"n": 2, "correct": 1, "accuracy": 0.5},
                            "-": {"n": 1, "correct": 0, "accuracy": 0.0}}
    assert "grid" not in s


def test_summarize_needle_grid_and_empty():
    records = [rec("a", True, meta={"length_s": 10.0, "depth": 0.0}),
               rec("b", False, meta={"length_s": 20.0, "depth": 1.0}),
               rec("c", False, meta={"length_s": 20.0, "depth": 0.0}, error="broken")]
    s = ev.summarize(records)
    assert s["grid"] == [{"length_s": 10.0, "depth": 0.0, "correct": 1},
                         {"length_s": 20.0, "depth": 1.0, "correct": 0}]
    mixed = ev.summarize(records + [rec("d", True)])  # one record without a depth: no grid
    assert "grid" not in mixed
    nothing = ev.summarize([rec("x", False, error="broken")])
    assert (nothing["n"], nothing["accuracy"], nothing["unparsed"]) == (0, None, 0)
    assert "grid" not in nothing and nothing["by_task"] == {}


# -- scripted doubles (logic only; the tiny real models run the real path below) -------------


class Scripted:
    """A loaded 'model' that replies the given texts in order and records what it was asked."""

    def __init__(self, texts):
        self.texts = list(texts)
        self.asked: list = []
        self.max_new_tokens: list = []
        self.closed = False

    def replies(self, questions, *, max_new_tokens=None):
        self.asked += list(questions)
        self.max_new_tokens.append(max_new_tokens)
        out = [Reply(self.texts.pop(0), truncated=False) for _ in questions]
        return out

    def close(self):
        self.closed = True


@pytest.fixture
def needle_items(tmp_path):
    """The tiny needle suite as evaluate() will build it (same cache: rendered once)."""
    cache = tmp_path / "needle"
    items = build_needle_suite(cache, EvalConfig(**NEEDLE).needle_config())
    assert len(items) == 4
    return cache, items


def scripted_eval(store, tmp_path, cache, texts, config=None):
    double = Scripted(texts)
    loaded = []

    def load(ref, cfg):
        loaded.append((ref, cfg))
        return double

    config = config or EvalConfig(**NEEDLE)
    ids = ev.evaluate(store, [ModelRef("scripted", "scripted")], config, cache_dir=cache,
                      out_dir=tmp_path / "out", load=load)
    return ids, double, loaded


def test_always_right_scores_100_percent(store, tmp_path, needle_items):
    cache, items = needle_items
    (eval_id,), double, loaded = scripted_eval(store, tmp_path, cache,
                                               [item.answer for item in items])
    assert double.closed and loaded[0][0].label == "scripted"
    # asked every question, in order, on `frames` frames, with the MCQ prompt
    assert [q.question for q in double.asked] == [item.prompt() for item in items]
    assert all(len(q.frames.timestamps) == 4 for q in double.asked)
    assert all(q.frames.images is not None for q in double.asked)
    assert [q.duration_s for q in double.asked] == pytest.approx([10, 10, 20, 20], abs=0.2)
    assert double.max_new_tokens == [4, 4]  # two batches of two
    row = er.get_eval(store, eval_id)
    assert (row["n_items"], row["n_correct"], row["n_unparsed"], row["accuracy"]) == (4, 4, 0, 1.0)
    assert row["summary"]["by_duration"] == {"10 s": {"n": 2, "correct": 2, "accuracy": 1.0},
                                             "20 s": {"n": 2, "correct": 2, "accuracy": 1.0}}
    assert row["config"]["frames"] == 4 and row["spec"] == {"model": "scripted", "adapter": None}


def test_unparsed_and_wrong_answers_count_as_wrong(store, tmp_path, needle_items):
    cache, items = needle_items
    wrong = next(letter for letter in items[2].letters if letter != items[2].answer)
    texts = ["I really could not say.", items[1].answer, wrong,
             f"The answer is ({items[3].answer})."]
    (eval_id,), _, _ = scripted_eval(store, tmp_path, cache, texts)
    row = er.get_eval(store, eval_id)
    assert (row["n_items"], row["n_correct"], row["n_unparsed"]) == (4, 2, 1)
    assert row["accuracy"] == 0.5
    stored = er.eval_items(store, eval_id)
    assert [r["response"] for r in stored] == texts
    assert [r["prediction"] for r in stored] == [None, items[1].answer, wrong, items[3].answer]
    assert [r["correct"] for r in stored] == [False, True, False, True]
    assert [r["item_id"] for r in stored] == [item.item_id for item in items]
    assert stored[0]["options"] == list(items[0].options)
    assert stored[0]["meta"]["depth"] == items[0].meta["depth"]
    grid = {(g["length_s"], g["depth"]): g["correct"] for g in row["summary"]["grid"]}
    assert grid == {(10.0, 0.0): 0, (10.0, 1.0): 1, (20.0, 0.0): 0, (20.0, 1.0): 1}
    table = er.results_table([row])
    assert table.loc[0, "accuracy %"] == 50.0 and table.loc[0, "unparsed"] == 1
    assert table.loc[0, "10 s %"] == 50.0 and table.loc[0, "20 s %"] == 50.0


def test_limit_cuts_the_suite(store, tmp_path, needle_items):
    cache, items = needle_items
    config = EvalConfig(**NEEDLE, limit=3)
    (eval_id,), double, _ = scripted_eval(store, tmp_path, cache, ["A", "A", "A"], config)
    assert len(double.asked) == 3 and len(er.eval_items(store, eval_id)) == 3


def test_a_model_that_raises_is_closed_and_nothing_is_stored(store, tmp_path, needle_items):
    cache, _ = needle_items

    class Broken(Scripted):
        def replies(self, questions, *, max_new_tokens=None):
            raise RuntimeError("out of memory")

    broken = Broken([])
    with pytest.raises(RuntimeError, match="out of memory"):
        ev.evaluate(store, [ModelRef("broken", "broken")], EvalConfig(**NEEDLE),
                    cache_dir=cache, out_dir=tmp_path / "out", load=lambda ref, cfg: broken)
    assert broken.closed
    assert er.list_evals(store) == []


# -- the needle suite with the tiny real models ---------------------------------------------


def test_needle_suite_with_two_tiny_models(store, tmp_path, tiny_smolvlm_dir, tiny_qwen2vl_dir):
    models = [ModelRef("smol", str(tiny_smolvlm_dir)), ModelRef("qwen", str(tiny_qwen2vl_dir))]
    seen = []
    ids = ev.evaluate(store, models, EvalConfig(**NEEDLE), cache_dir=tmp_path / "needle",
                      out_dir=tmp_path / "out", progress=lambda f, t: seen.append((f, t)))
    assert len(ids) == 2
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any(t.startswith("smol: ") for _, t in seen) and any(t.startswith("qwen: ") for _, t in seen)
    evals = er.list_evals(store, suite="needle")
    assert [e["id"] for e in evals] == ids[::-1]  # newest first
    for eval_id, ref in zip(ids, models):
        row = er.get_eval(store, eval_id)
        assert row["model"] == ref.label and row["spec"]["model"] == ref.model
        assert row["suite"] == "needle" and row["suite_path"] is None and row["frames"] == 4
        items = er.eval_items(store, eval_id)
        assert len(items) == row["n_items"] == 4
        assert row["n_correct"] == sum(r["correct"] for r in items)
        assert row["accuracy"] == pytest.approx(row["n_correct"] / 4)
        assert row["n_unparsed"] == sum(r["prediction"] is None for r in items)
        for r in items:
            assert r["correct"] == (r["prediction"] == r["answer"])
            assert r["response"] is not None
        assert len(row["summary"]["grid"]) == 4
        heatmap = Path(row["heatmap_path"])
        assert heatmap.is_file() and heatmap.parent == (tmp_path / "out")
        with Image.open(heatmap) as image:
            assert image.format == "PNG" and image.size[0] > 100
    tasks = er.task_table(evals)
    assert set(tasks.columns) == {"task", f"#{ids[1]} qwen", f"#{ids[0]} smol"}


def test_eval_job_runs_the_suite_and_stores_results(store, settings, tmp_path,
                                                    tiny_smolvlm_dir):
    tiny = ModelRef("tiny", str(tiny_smolvlm_dir))
    params = ev.job_params([tiny], EvalConfig(**NEEDLE), cache_dir=tmp_path / "needle",
                           out_dir=tmp_path / "out")
    stored_params = json.loads(json.dumps(params))  # what the job row holds
    assert stored_params["models"] == [{"label": "tiny", "model": str(tiny_smolvlm_dir),
                                        "adapter": None}]
    assert stored_params["config"]["needle_depths"] == [0, 1]
    assert Path(stored_params["cache_dir"]).is_absolute()
    job_id = jobs.submit(store, "eval", params, log_dir=settings.log_dir)
    row = jobs.wait(store, job_id, JOB_TIMEOUT_S)
    assert row["status"] == "succeeded", jobs.log_tail(row)
    (stored,) = er.list_evals(store, job_id=job_id)
    assert row["output"]["eval_ids"] == [stored["id"]]
    assert row["output"]["summary"].startswith("1 evaluation(s): tiny ")
    assert stored["n_items"] == 4 and len(er.eval_items(store, stored["id"])) == 4
    assert stored["config"]["needle_lengths"] == [10, 20]
    assert Path(stored["heatmap_path"]).is_file()
    assert "accuracy %" in jobs.log_tail(row)  # the results table is logged
    assert er.list_evals(store, job_id=job_id + 1) == []


def test_eval_job_with_a_missing_benchmark_fails_with_the_reason(store, settings, tmp_path):
    config = EvalConfig(suite=f"videomme:{tmp_path / 'nowhere'}")
    params = ev.job_params([ModelRef("m", "m")], config, cache_dir=tmp_path / "c",
                           out_dir=tmp_path / "o")
    row = jobs.wait(store, jobs.submit(store, "eval", params, log_dir=settings.log_dir),
                    JOB_TIMEOUT_S)
    assert row["status"] == "failed"
    assert "does not exist" in row["error"] and "nowhere" in row["error"]
    assert er.list_evals(store) == []


# -- a local Video-MME layout ---------------------------------------------------------------


def videomme_row(video: str, n: int, answer: str, duration: str, task: str) -> dict:
    return {"video_id": f"v{video}", "duration": duration, "domain": "Knowledge",
            "sub_category": "Science", "url": f"https://www.youtube.com/watch?v={video}",
            "videoID": video, "question_id": f"{video}-{n}", "task_type": task,
            "question": f"Question {n} about {video}?",
            "options": [f"A. red {n}", f"B. green {n}", f"C. blue {n}", f"D. yellow {n}"],
            "answer": answer}


@pytest.fixture
def videomme(tmp_path):
    """The HF release's layout: videomme/test-00000-of-00001.parquet and data/<videoID>.mp4.
    clipA and clipB are real videos, broken.mp4 is not a video, gone.mp4 is absent."""
    root = tmp_path / "Video-MME"
    (root / "videomme").mkdir(parents=True)
    (root / "data").mkdir()
    make_video(root / "data" / "clipA.mp4", duration_s=3, fps=4, size=(64, 48))
    make_video(root / "data" / "clipB.mp4", duration_s=2, fps=4, size=(64, 48))
    (root / "data" / "broken.mp4").write_text("not a video at all\n" * 20)
    rows = [videomme_row("clipA", 1, "A", "short", "Counting Problem"),
            videomme_row("clipA", 2, "C", "short", "Object Recognition"),
            videomme_row("broken", 1, "B", "medium", "Counting Problem"),
            videomme_row("clipB", 1, "D", "long", "Object Recognition"),
            videomme_row("gone", 1, "A", "long", "Counting Problem")]
    path = root / "videomme" / "test-00000-of-00001.parquet"
    pd.DataFrame(rows).to_parquet(path)
    return root, path


def test_videomme_with_the_tiny_model(store, tmp_path, videomme, tiny_smolvlm_dir):
    root, annotations = videomme
    config = EvalConfig(suite=f"videomme:{root}", frames=4, max_new_tokens=4)
    suite = ev.load_suite(config, tmp_path / "cache")
    assert suite.name == "videomme" and suite.path == str(root.resolve())
    assert [i.item_id for i in suite.items] == ["clipA-1", "clipA-2", "broken-1", "clipB-1"]
    assert [m[0] for m in suite.missing] == ["gone-1"]
    (eval_id,) = ev.evaluate(store, [ModelRef("tiny", str(tiny_smolvlm_dir))], config,
                             cache_dir=tmp_path / "cache", out_dir=tmp_path / "out")
    row = er.get_eval(store, eval_id)
    assert row["suite"] == "videomme" and row["suite_path"] == str(root.resolve())
    assert row["n_items"] == 3  # the broken video is left out of the accuracy
    assert row["heatmap_path"] is None  # only the needle suite draws one
    (error,) = row["summary"]["errors"]
    assert error["item_id"] == "broken-1" and "broken.mp4" in error["error"]
    assert set(row["summary"]["by_duration"]) == {"short", "long"}
    assert set(row["summary"]["by_task"]) == {"Counting Problem", "Object Recognition"}
    assert "grid" not in row["summary"]
    # the question whose video is not on disk was not asked, and the summary says so
    assert row["summary"]["missing"] == [
        {"item_id": "gone-1", "video": str((root / "data" / "gone.mp4").resolve())}]
    items = er.eval_items(store, eval_id)
    assert len(items) == 4
    broken = next(r for r in items if r["item_id"] == "broken-1")
    assert broken["response"] is None and broken["correct"] is False
    assert "broken.mp4" in broken["meta"]["error"]
    answered = [r for r in items if r["item_id"] != "broken-1"]
    assert all(r["response"] is not None for r in answered)
    assert row["n_correct"] == sum(r["correct"] for r in answered)
    assert items[0]["options"] == ["red 1", "green 1", "blue 1", "yellow 1"]  # "A. " dropped
    assert items[0]["video"] == str((root / "data" / "clipA.mp4").resolve())


def test_corrupt_video_is_an_error_not_a_wrong_answer(store, tmp_path, videomme):
    root, annotations = videomme
    config = EvalConfig(suite=f"videomme:{annotations}", frames=4, batch_size=3)
    double = Scripted(["A", "C", "D"])  # right for every readable video
    (eval_id,) = ev.evaluate(store, [ModelRef("s", "s")], config, cache_dir=tmp_path / "c",
                             out_dir=tmp_path / "o", load=lambda ref, cfg: double)
    row = er.get_eval(store, eval_id)
    assert (row["n_items"], row["n_correct"], row["accuracy"]) == (3, 3, 1.0)
    assert [e["item_id"] for e in row["summary"]["errors"]] == ["broken-1"]
    assert [q.question.splitlines()[1] for q in double.asked] == [
        "Question 1 about clipA?", "Question 2 about clipA?", "Question 1 about clipB?"]
    # the items keep the suite's order, the failed one in its place
    assert [r["item_id"] for r in er.eval_items(store, eval_id)] == [
        "clipA-1", "clipA-2", "broken-1", "clipB-1"]
    assert row["summary"]["by_duration"]["long"] == {"n": 1, "correct": 1, "accuracy": 1.0}


def test_unreadable_suite_fails_before_any_model_loads(store, tmp_path):
    def load(ref, cfg):
        raise AssertionError("no model should load")

    with pytest.raises(ValueError, match="does not exist"):
        ev.evaluate(store, [ModelRef("m", "m")], EvalConfig(suite=f"videomme:{tmp_path}/x"),
                    cache_dir=tmp_path, out_dir=tmp_path, load=load)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no annotation file"):
        ev.evaluate(store, [ModelRef("m", "m")], EvalConfig(suite=f"videomme:{empty}"),
                    cache_dir=tmp_path, out_dir=tmp_path, load=load)


def test_unknown_eval_id(store):
    with pytest.raises(StoreError, match="no evaluation 5"):
        er.get_eval(store, 5)
    assert er.results_table([]).empty and er.task_table([]).empty


def test_item_order_survives_errors_in_the_first_batch(store, tmp_path):
    """answer_items with a corrupt first video: records still come back in item order."""
    good = make_video(tmp_path / "good.mp4", duration_s=2, fps=4, size=(64, 48))
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"")
    items = [MCQItem("x", "1", str(bad), "Q1?", ("a", "b"), "A"),
             MCQItem("x", "2", str(good), "Q2?", ("a", "b"), "B"),
             MCQItem("x", "3", str(good), "Q3?", ("a", "b"), "A")]
    records = ev.answer_items(Scripted(["B", "B"]), items, EvalConfig(frames=2, batch_size=2))
    assert [r["item_id"] for r in records] == ["1", "2", "3"]
    assert [r["correct"] for r in records] == [False, True, False]
    assert records[0]["error"] and records[0]["prediction"] is None


def test_frames_0_feeds_every_haystack_frame_on_the_needle_suite(store, tmp_path, needle_items):
    """V-NIAH style: every frame of the 1 fps haystack, so the needle is always in view."""
    cache, items = needle_items
    config = EvalConfig(**{**NEEDLE, "frames": 0})
    (eval_id,), double, _ = scripted_eval(store, tmp_path, cache, [i.answer for i in items],
                                          config)
    assert [len(q.frames.timestamps) for q in double.asked] == [10, 10, 20, 20]
    row = er.get_eval(store, eval_id)
    assert row["frames"] == 0 and er.results_table([row])["frames"].tolist() == ["every"]
    assert er.frames_label(0) == "every frame" and er.frames_label(8) == "8 frames"
    with pytest.raises(ValueError, match="needle suite only"):
        EvalConfig(suite="videomme:/x", frames=0)
    with pytest.raises(ValueError, match="frames must be at least 0"):
        EvalConfig(frames=-1)


def test_mcnemar_exact_p_values():
    assert er.mcnemar_p(0, 0) == 1.0
    assert er.mcnemar_p(0, 5) == pytest.approx(2 / 32)  # 2 * P(X <= 0), X ~ Bin(5, 1/2)
    assert er.mcnemar_p(1, 9) == pytest.approx(2 * 11 / 1024)
    assert er.mcnemar_p(5, 5) == 1.0 and er.mcnemar_p(3, 4) == er.mcnemar_p(4, 3)


def test_diff_two_evaluations_question_by_question(store, tmp_path, needle_items):
    """Base vs. tuned on the same questions: per-class change, the flips, McNemar."""
    cache, items = needle_items
    wrong = [next(x for x in i.letters if x != i.answer) for i in items]
    # first model: right on items 0, 1; second: right on 1, 2, 3
    (first,), _, _ = scripted_eval(store, tmp_path, cache,
                                   [items[0].answer, items[1].answer, wrong[2], wrong[3]])
    (second,), _, _ = scripted_eval(store, tmp_path, cache,
                                    [wrong[0], items[1].answer, items[2].answer, items[3].answer])
    d = er.diff(store, first, second)
    assert (d["n"], d["unmatched"]) == (4, 0)
    assert d["overall"] == [{"group": "all", "n": 4, "first %": 50.0, "second %": 75.0,
                             "change": 25.0}]
    assert d["by_duration"] == [
        {"group": "10 s", "n": 2, "first %": 100.0, "second %": 50.0, "change": -50.0},
        {"group": "20 s", "n": 2, "first %": 0.0, "second %": 100.0, "change": 100.0}]
    assert d["only_first"] == [items[0].item_id]
    assert d["only_second"] == [items[2].item_id, items[3].item_id]
    assert d["p_value"] == pytest.approx(er.mcnemar_p(1, 2)) == 1.0
    with pytest.raises(StoreError):
        er.diff(store, first, 99)


def test_diff_refuses_evaluations_of_different_suites(store, tmp_path, needle_items):
    cache, items = needle_items
    (needle_eval,), _, _ = scripted_eval(store, tmp_path, cache, [i.answer for i in items])
    with store.transaction() as db:
        other = db["evals"].insert({"suite": "videomme", "suite_path": "/x", "model": "m",
                                    "created_at": "2026-01-01T00:00:00+00:00"}).last_pk
    with pytest.raises(ValueError, match="not of the same suite"):
        er.diff(store, needle_eval, other)
