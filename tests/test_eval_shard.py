"""Evaluation sharded over two processes under ``accelerate launch`` (gloo on the CPU): the
questions are asked in the same batches as one process asks them, so the stored result is the
single-process result; each answered shard is written to the store as it finishes and kept
until every one is in, so a rerun after a crash asks only the rest; the CLI takes
``--num-processes``; a model that cannot load is one clear message."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner
from media import make_video

from tpo.cli import cli
from tpo.evaluation import eval_results as er
from tpo.evaluation import evaluate as ev
from tpo.evaluation.evaluate import EvalConfig
from tpo.evaluation.shard import (ShardError, answered_positions, evaluate_sharded, run_key,
                                  shards)
from tpo.models.modelref import ModelRef

ANSWERS = "ABCDABC"


def row(video: str, n: int, answer: str) -> dict:
    return {"video_id": f"v{video}", "duration": "short", "domain": "Knowledge",
            "sub_category": "Science", "url": f"https://www.youtube.com/watch?v={video}",
            "videoID": video, "question_id": f"{video}-{n}", "task_type": f"task {n % 2}",
            "question": f"Question {n} about {video}?",
            "options": [f"A. red {n}", f"B. green {n}", f"C. blue {n}", f"D. yellow {n}"],
            "answer": answer}


@pytest.fixture
def suite(tmp_path):
    """A local Video-MME layout: 7 questions on three real clips and one broken file, so
    batches of 2 make 4 shards (the last one short) and one answer is a decode error."""
    root = tmp_path / "Video-MME"
    (root / "videomme").mkdir(parents=True)
    (root / "data").mkdir()
    for k, name in enumerate(("clipA", "clipB", "clipC")):
        make_video(root / "data" / f"{name}.mp4", duration_s=2 + k, fps=4, size=(64, 48))
    (root / "data" / "broken.mp4").write_text("not a video at all\n" * 20)
    videos = ["clipA", "clipA", "clipB", "broken", "clipC", "clipB", "clipC"]
    rows = [row(v, n, a) for n, (v, a) in enumerate(zip(videos, ANSWERS))]
    pd.DataFrame(rows).to_parquet(root / "videomme" / "test-00000-of-00001.parquet")
    return EvalConfig(suite=f"videomme:{root}", frames=4, max_new_tokens=4, batch_size=2)


def answers(store, eval_id):
    return [(r["item_id"], r["response"], r["prediction"], r["correct"], r["meta"].get("error"))
            for r in er.eval_items(store, eval_id)]


def test_shards_are_the_batches_of_one_process():
    assert shards(7, 2) == [[0, 1], [2, 3], [4, 5], [6]]
    assert shards(3, 4) == [[0, 1, 2]]


def test_run_key_follows_model_settings_and_questions(tmp_path, suite):
    items = ev.load_suite(suite, tmp_path).items
    key = run_key(ModelRef("m", "m"), suite, items)
    assert key == run_key(ModelRef("m", "m"), suite, items)
    assert key != run_key(ModelRef("other", "other"), suite, items)
    assert key != run_key(ModelRef("m", "m"), suite.model_copy(update={"frames": 8}), items)
    assert key != run_key(ModelRef("m", "m"), suite, items[:-1])


def test_two_processes_store_the_single_process_result(store, tmp_path, suite,
                                                       tiny_smolvlm_dir):
    ref = ModelRef("tiny", str(tiny_smolvlm_dir))
    (single,) = ev.evaluate(store, [ref], suite, cache_dir=tmp_path / "c", out_dir=tmp_path / "o")
    result = CliRunner().invoke(cli, [
        "--db", str(store.path), "eval", "--model", str(tiny_smolvlm_dir),
        "--suite", suite.suite, "--frames", "4", "--max-new-tokens", "4",
        "--num-processes", "2", "--json"])
    assert result.exit_code == 0, result.output
    (stored,) = json.loads(result.stdout)
    first, second = er.get_eval(store, single), er.get_eval(store, stored["id"])
    for key in ("n_items", "n_correct", "n_unparsed", "accuracy"):
        assert first[key] == second[key], key
    assert first["summary"] == second["summary"]
    assert answers(store, single) == answers(store, stored["id"])  # same order, same replies
    assert [a[0] for a in answers(store, single)] == [f"{v}-{n}" for n, v in enumerate(
        ["clipA", "clipA", "clipB", "broken", "clipC", "clipB", "clipC"])]
    assert first["n_items"] == 6 and "broken.mp4" in first["summary"]["errors"][0]["error"]
    assert store.eval_shard_runs() == {}  # stored: the shards are removed
    assert not (store.path.parent / "evals" / "shards").exists()  # and no shard files at all


def test_a_rerun_asks_only_the_shards_not_answered(store, tmp_path, suite, tiny_smolvlm_dir):
    """A crash left shards 0 and 2 answered: the rerun keeps them as they are (their marked
    replies are stored) and asks the model only shards 1 and 3."""
    ref = ModelRef("tiny", str(tiny_smolvlm_dir))
    items = ev.load_suite(suite, tmp_path / "c").items
    key = run_key(ref, suite, items)
    batches = shards(len(items), suite.batch_size)
    for b in (0, 2):
        store.save_eval_shard(key, b, [_marked(items[p]) for p in batches[b]])
    other = run_key(ref, suite.model_copy(update={"frames": 8}), items)
    store.save_eval_shard(other, 0, [_marked(items[p]) for p in batches[0]])  # another run
    (eval_id,) = evaluate_sharded(store, [ref], suite, 2, cache_dir=tmp_path / "c",
                                  out_dir=tmp_path / "o")
    got = er.eval_items(store, eval_id)
    assert [r["item_id"] for r in got] == [i.item_id for i in items]
    marked = {p for b in (0, 2) for p in batches[b]}
    for position, r in enumerate(got):
        if position in marked:
            assert r["response"] == "A (answered before the crash)" and r["prediction"] == "A"
        elif r["item_id"] != "broken-3":
            assert r["response"] != "A (answered before the crash)"
    # everything stored: this run's shards are gone, another run's stay
    assert store.eval_shard_runs() == {other: 1}


def _marked(item):
    """A record as a rank writes it, with a reply no model here gives."""
    return {"item_id": item.item_id, "video": item.video, "question": item.question,
            "options": list(item.options), "answer": item.answer,
            "response": "A (answered before the crash)", "prediction": "A",
            "correct": item.answer == "A", "duration_class": item.duration_class,
            "task": item.task, "meta": item.meta, "error": None}


def test_every_shard_answered_stores_without_starting_a_process(store, tmp_path, suite):
    """The crash came after the last shard: the rerun stores the result and loads no model
    (this one does not even exist)."""
    ref = ModelRef("gone", str(tmp_path / "no-model"))
    items = ev.load_suite(suite, tmp_path / "c").items
    key = run_key(ref, suite, items)
    batches = shards(len(items), suite.batch_size)
    for b, positions in enumerate(batches):
        store.save_eval_shard(key, b, [_marked(items[p]) for p in positions])
    assert sorted(answered_positions(store, key, batches)) == list(range(len(items)))
    (eval_id,) = evaluate_sharded(store, [ref], suite, 2, cache_dir=tmp_path / "c",
                                  out_dir=tmp_path / "o")
    stored = er.get_eval(store, eval_id)
    assert stored["n_items"] == len(items)
    assert stored["n_correct"] == sum(i.answer == "A" for i in items)
    assert store.eval_shard_indexes(key) == []


def test_a_model_that_cannot_load_is_one_clear_error(store, tmp_path, suite):
    ref = ModelRef("gone", str(tmp_path / "no-model"))
    with pytest.raises(ShardError, match="Cannot load model") as err:
        evaluate_sharded(store, [ref], suite, 2, cache_dir=tmp_path / "c",
                         out_dir=tmp_path / "o")
    assert "\n" not in str(err.value)
    assert er.list_evals(store) == [] and store.eval_shard_runs() == {}
