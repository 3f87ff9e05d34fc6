"""lmms-eval-comparable evaluation (tpo.evaluation.protocols, ``--protocol lmms-eval``): its
prompts, answer parsers, frame sampling and MLVU M-avg; the layouts lmms-eval reads (fixture
files in tests/fixtures/lmms_eval/ with real videos put beside them); the protocol stored with
each evaluation and shown in the results table; ``tpo eval --protocol lmms-eval`` end to end."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlite_utils
from click.testing import CliRunner
from media import make_video, read_index

from tpo.cli import cli
from tpo.configs import ConfigError
from tpo.evaluation import eval_results as er
from tpo.evaluation import evaluate as ev
from tpo.evaluation import protocols as P
from tpo.evaluation.benchmarks import BenchmarkError, load_suite
from tpo.evaluation.evaluate import EvalConfig
from tpo.evaluation.mcq import LETTERS, MCQItem, parse_choice
from tpo.models.modelref import ModelRef
from tpo.models.prompts import Reply
from tpo.store import Store, now
from tpo.store.schema import STEPS

FIXTURES = Path(__file__).parent / "fixtures"
LMMS = FIXTURES / "lmms_eval"


def item(suite="videomme", options=("4.", "9.", "5.", "13."), answer="B", **kw) -> MCQItem:
    return MCQItem(suite=suite, item_id=kw.pop("item_id", "q1"), video="/v.mp4",
                   question=kw.pop("question", "How many jars?"), options=options,
                   answer=answer, **kw)


# --- lmms-eval's parsers, reproduced ----------------------------------------------------------


@pytest.mark.parametrize("reply, expected", [
    ("B", "B"), (" (C) ", "C"), ("The best answer is D.", "D"), ("The answer is: A", "A"),
    ("c", ""),  # only capitals count
    ("Based on the video, C.", "B"),  # the first capital A-D anywhere: "Based"
    # "Best answer:" is never removed (a missing comma in lmms-eval's list), so "Best" is B
    ("Best answer: C", "B"),
    ("There is nothing in the video that answers this question at all, sorry.", ""),
    ("", ""),
])
def test_videomme_parser_is_lmms_evals(reply, expected):
    assert P.videomme_extract(reply) == expected


@pytest.mark.parametrize("reply, expected", [
    ("B) a key", "B"), ("(A) blue", "A"), ("C", "C"), ("C.", "C."), ("c) x", "c"),
    (") odd", ""), ("no bracket here", "no bracket here"),
])
def test_mlvu_parser_is_lmms_evals(reply, expected):
    assert P.mlvu_extract(reply) == expected


def test_longvideobench_parser_reads_or_guesses_reproducibly():
    letters = "ABCDE"
    assert P.longvideobench_extract("The best option is E", letters, "x") == P.Reading("E")
    assert P.longvideobench_extract("Best option: B", letters, "x") == P.Reading("B")
    guess = P.longvideobench_extract("no idea", letters, "lvb-1")
    assert guess.guessed and guess.letter in letters
    assert P.longvideobench_extract("no idea", letters, "lvb-1") == guess  # seeded by the id
    seen = {P.longvideobench_extract("no idea", "ABCD", f"q{k}").letter for k in range(40)}
    assert seen == set("ABCD")  # a uniform draw over the item's own options


def test_read_keeps_only_the_items_letters():
    four = item()
    assert P.read("lmms-eval", four, "The answer is B") == P.Reading("B")
    assert P.read("lmms-eval", four, "I would not know") == P.Reading(None)
    mlvu = item("mlvu")
    assert P.read("lmms-eval", mlvu, "B) 9.") == P.Reading("B")
    assert P.read("lmms-eval", mlvu, "b) 9.") == P.Reading(None)  # not a letter of the item
    lvb = item("longvideobench")
    assert P.read("lmms-eval", lvb, "E") == P.Reading(None)  # E of 4 options: never right
    assert P.read("lmms-eval", lvb, "hmm").guessed
    # ours reads the same reply stricter: "Based" is not a letter
    assert P.read("tpo", four, "Based on the video, C.") == P.Reading("C")
    assert P.read("lmms-eval", four, "Based on the video, C.") == P.Reading("B")


def test_realistic_replies_each_parser():
    """45 replies as video-LMs write them, each with the letter a person reads in it (None:
    no choice). Ours reads 43; lmms-eval's Video-MME parser 29, its LongVideoBench parser 30
    (the rest random guesses), its MLVU parser 13 (it expects the "B) ..." that its prompt's
    closing "(" invites)."""
    rows = json.loads((FIXTURES / "realistic_replies.json").read_text(encoding="utf-8"))
    assert len(rows) == 45
    right = {"tpo": 0, "videomme": 0, "mlvu": 0, "longvideobench": 0}
    for k, row in enumerate(rows):
        letters = LETTERS[:len(row["options"])]
        mlvu = P.mlvu_extract(row["reply"])
        lvb = P.longvideobench_extract(row["reply"], letters, f"reply-{k}")
        read = {"tpo": parse_choice(row["reply"], row["options"]),
                "videomme": P.videomme_extract(row["reply"]) or None,
                "mlvu": mlvu if mlvu in tuple(letters) else None,
                "longvideobench": None if lvb.guessed else lvb.letter}
        for name, letter in read.items():
            right[name] += letter == row["right"]
    assert right == {"tpo": 43, "videomme": 29, "mlvu": 13, "longvideobench": 30}


# --- prompts, frames, M-avg -------------------------------------------------------------------


def test_prompts_are_lmms_evals():
    assert P.prompt("lmms-eval", item()) == (
        "Select the best answer to the following multiple-choice question based on the video "
        "and the subtitles. Respond with only the letter (A, B, C, or D) of the correct option."
        "\nHow many jars?\nA. 4.\nB. 9.\nC. 5.\nD. 13.\n"
        "\nAnswer with the option's letter from the given choices directly.")
    built = item("mlvu", options=("Blue", "White"), answer="A", question="Shirt colour?")
    assert P.prompt("lmms-eval", built) == ("Shirt colour?\n(A) Blue\n(B) White"
                                            "\nOnly give the best option.\nBest option: (")
    given = item("mlvu", options=("Blue", "White"), answer="A", question="Shirt colour?",
                 meta={"question_with_options": "Shirt colour?\n(A) Blue\n(B)  White"})
    assert P.prompt("lmms-eval", given).startswith("Shirt colour?\n(A) Blue\n(B)  White\n")
    lvb = item("longvideobench", options=("x", "y", "z", "w", "v"), answer="E", question="Q?")
    assert P.prompt("lmms-eval", lvb) == (
        "Q?\nA. x\nB. y\nC. z\nD. w\nE. v\n"
        "Answer with the option's letter from the given choices directly.\n")
    assert P.prompt("tpo", item()) == item().prompt()


def test_frame_indices_are_linspace_from_first_to_last():
    assert P.lmms_eval_frame_indices(10, 4) == [0, 3, 6, 9]
    assert P.lmms_eval_frame_indices(100, 1) == [0]
    assert P.lmms_eval_frame_indices(3, 5) == [0, 0, 1, 1, 2]  # repeats, as np.linspace gives
    assert P.lmms_eval_frame_indices(901, 32) == np.linspace(0, 900, 32, dtype=int).tolist()
    with pytest.raises(ValueError):
        P.lmms_eval_frame_indices(0, 4)


def test_m_avg_is_the_mean_of_the_task_accuracies():
    by_task = {"plotQA": {"n": 3, "correct": 3, "accuracy": 1.0},
               "count": {"n": 1, "correct": 0, "accuracy": 0.0}}
    assert P.m_avg(by_task) == 0.5  # plain accuracy would be 3/4
    assert P.m_avg({}) is None


def test_config_checks_the_protocol():
    assert EvalConfig().protocol == "tpo"
    assert EvalConfig(suite="mlvu:/x", protocol="lmms-eval").protocol == "lmms-eval"
    for suite in ("needle", "synthetic:/x"):
        with pytest.raises(ConfigError, match="protocol lmms-eval covers videomme, mlvu"):
            EvalConfig(suite=suite, protocol="lmms-eval")
    with pytest.raises(ConfigError, match="answers letter"):
        EvalConfig(suite="videomme:/x", protocol="lmms-eval", answers="open")
    with pytest.raises(ConfigError, match="protocol"):
        EvalConfig(suite="videomme:/x", protocol="vlmevalkit")


# --- the layouts lmms-eval reads, from the fixture files ------------------------------------


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """2 s at 10 fps; frame k shows k (tests/media.py), so the frames asked can be read back."""
    return make_video(tmp_path_factory.mktemp("clip") / "clip.mp4", duration_s=2, fps=10)


def _put(clip: Path, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(clip, path)


@pytest.fixture
def mlvu_dev(tmp_path, clip) -> Path:
    """lmms-eval's mlvu cache folder: the MLVU_dev annotations and the videos by video_name."""
    root = (tmp_path / "mlvu").resolve()
    root.mkdir()
    shutil.copyfile(LMMS / "mlvu_dev" / "mlvu_dev.json", root / "mlvu_dev.json")
    for row in json.loads((root / "mlvu_dev.json").read_text()):
        _put(clip, root / row["video_name"] if "." in row["video_name"]
             else root / f"{row['video_name']}.mp4")
    return root


@pytest.fixture
def videomme(tmp_path, clip) -> Path:
    """The HF Video-MME release as lmms-eval caches it: videomme/*.parquet, data/<videoID>.mp4."""
    root = (tmp_path / "videomme").resolve()
    shutil.copytree(LMMS / "videomme", root)
    for video in pd.read_parquet(root / "videomme" / "test-00000-of-00001.parquet")["videoID"]:
        _put(clip, root / "data" / f"{video}.mp4")
    return root


@pytest.fixture
def longvideobench(tmp_path, clip) -> Path:
    root = (tmp_path / "longvideobench").resolve()
    shutil.copytree(LMMS / "longvideobench", root)
    for row in json.loads((root / "lvb_val.json").read_text()):
        _put(clip, root / "videos" / row["video_path"])
    return root


def test_mlvu_dev_layout(mlvu_dev):
    load = load_suite(f"mlvu:{mlvu_dev}")
    assert [i.item_id for i in load.items] == ["plotQA_0", "plotQA_1", "plotQA_2", "count_0",
                                               "needle_0", "needle_1"]
    first = load.items[0]
    assert first.question == "What color is the main male character's shirt in the video?"
    assert first.options == ("Blue", "White", "Black", "Green") and first.answer == "C"
    assert (first.task, first.duration_class) == ("plotQA", "3-10 min")
    assert first.video == str(mlvu_dev / "movie101_66.mp4")
    assert first.meta["question_with_options"].endswith("\n(C) Black\n(D) Green")
    assert load.items[-1].video == str(mlvu_dev / "needle_7.mp4")  # no extension in the file
    assert load.items[-1].duration_class == ">30 min"
    # the annotation file itself works too, and the rows as parquet
    assert len(load_suite(f"mlvu:{mlvu_dev / 'mlvu_dev.json'}").items) == 6
    rows = json.loads((mlvu_dev / "mlvu_dev.json").read_text())
    (mlvu_dev / "mlvu_dev.json").unlink()
    (mlvu_dev / "mlvu").mkdir()
    pd.DataFrame(rows).to_parquet(mlvu_dev / "mlvu" / "test-00000-of-00001.parquet")
    from_parquet = load_suite(f"mlvu:{mlvu_dev}")
    assert [i.answer for i in from_parquet.items] == ["C", "B", "A", "D", "B", "C"]


def test_mlvu_dev_answers_as_text_videos_in_task_folders_and_missing(tmp_path, clip):
    root = (tmp_path / "MLVU").resolve()
    rows = json.loads((LMMS / "mlvu_dev" / "mlvu_dev.json").read_text())[:2]
    rows[0]["answer"] = "Black"  # a candidate's text, as MLVU's own json has it
    (root).mkdir()
    (root / "dev.json").write_text(json.dumps(rows))
    _put(clip, root / "video" / "1_plotQA" / "movie101_66.mp4")  # MLVU's own folders
    load = load_suite(f"mlvu:{root}")
    assert [i.answer for i in load.items] == ["C"]
    assert load.items[0].video == str(root / "video" / "1_plotQA" / "movie101_66.mp4")
    assert [m[0] for m in load.missing] == ["plotQA_1"]
    rows[1]["answer"] = "F"
    (root / "dev.json").write_text(json.dumps(rows))
    with pytest.raises(BenchmarkError, match="answer 'F' but only 4 candidates"):
        load_suite(f"mlvu:{root}")


def test_videomme_and_longvideobench_layouts(videomme, longvideobench, tmp_path):
    vm = load_suite(f"videomme:{videomme}")
    assert [i.item_id for i in vm.items] == ["001-1", "001-2", "301-1", "601-1"]
    assert vm.items[0].video == str(videomme / "data" / "fFjv93ACGo8.mp4")
    lvb = load_suite(f"longvideobench:{longvideobench}")
    assert [(i.answer, len(i.options), i.duration_class) for i in lvb.items] == [
        ("A", 5, "3-10 min"), ("C", 4, "8-15 s"), ("B", 4, "15-60 min")]
    # the HF release lmms-eval reads: validation-*.parquet with option0..option4
    rows = json.loads((longvideobench / "lvb_val.json").read_text())
    (longvideobench / "lvb_val.json").unlink()
    flat = [{**{k: v for k, v in r.items() if k != "candidates"},
             **{f"option{i}": (r["candidates"][i] if i < len(r["candidates"]) else "N/A")
                for i in range(5)}} for r in rows]
    pd.DataFrame(flat).to_parquet(longvideobench / "validation-00000-of-00001.parquet")
    hf = load_suite(f"longvideobench:{longvideobench}")
    assert [i.options for i in hf.items] == [i.options for i in lvb.items]
    assert hf.items[0].video == lvb.items[0].video


# --- evaluation under the protocol, scripted replies ----------------------------------------


class Scripted:
    """A loaded 'model' answering the given texts in order; it keeps what it was asked."""

    def __init__(self, texts):
        self.texts, self.asked = list(texts), []

    def replies(self, questions, *, max_new_tokens=None):
        self.asked += list(questions)
        return [Reply(self.texts.pop(0), truncated=False) for _ in questions]

    def close(self):
        pass


def run_scripted(store, tmp_path, config, texts):
    double = Scripted(texts)
    (eval_id,) = ev.evaluate(store, [ModelRef("scripted", "scripted")], config,
                             cache_dir=tmp_path / "cache", out_dir=tmp_path / "out",
                             load=lambda ref, cfg: double)
    return er.get_eval(store, eval_id), double


def test_mlvu_under_lmms_eval_scores_m_avg(store, tmp_path, mlvu_dev):
    # right: plotQA 3/3, count 0/1, needle 1/2 -> accuracy 4/6, M-avg (1 + 0 + 0.5) / 3
    texts = ["C) Black", "B) A key", "A", "A) 2", "B) A phone", "The answer is C"]
    config = EvalConfig(suite=f"mlvu:{mlvu_dev}", protocol="lmms-eval", frames=5)
    row, double = run_scripted(store, tmp_path, config, texts)
    load = load_suite(f"mlvu:{mlvu_dev}")
    assert [q.question for q in double.asked] == [P.mlvu_prompt(i) for i in load.items]
    assert double.asked[0].question.endswith("(D) Green\nOnly give the best option.\n"
                                             "Best option: (")
    # lmms-eval's frames: first to last of the 20, np.linspace rounding down
    frames = double.asked[0].frames
    assert frames.indices == [0, 4, 9, 14, 19]
    assert [read_index(image) for image in frames.images] == [0, 4, 9, 14, 19]
    assert row["protocol"] == "lmms-eval" and row["config"]["protocol"] == "lmms-eval"
    assert (row["n_correct"], row["n_items"], row["n_unparsed"]) == (4, 6, 1)
    assert row["accuracy"] == pytest.approx(4 / 6)
    assert row["summary"]["m_avg"] == pytest.approx(0.5)
    table = er.results_table([row])
    assert table.loc[0, "protocol"] == "lmms-eval"
    assert (table.loc[0, "accuracy %"], table.loc[0, "M-avg %"]) == (66.7, 50.0)
    # the same replies, our protocol: our prompt, frames at time-bin centres, our reader
    ours, double = run_scripted(store, tmp_path, EvalConfig(suite=f"mlvu:{mlvu_dev}", frames=5),
                                texts)
    assert double.asked[0].question == load.items[0].prompt()
    assert double.asked[0].frames.indices == [2, 6, 10, 14, 18]
    assert ours["protocol"] == "tpo" and ours["n_correct"] == 5  # "The answer is C" read
    both = er.results_table([ours, row])
    assert list(both["protocol"]) == ["tpo", "lmms-eval"]
    assert list(both["M-avg %"]) == [pytest.approx(100 * (1 + 0 + 1) / 3, abs=0.05), 50.0]
    assert [e["id"] for e in er.list_evals(store, protocol="lmms-eval")] == [row["id"]]


def test_longvideobench_guesses_are_scored_and_counted_unparsed(store, tmp_path,
                                                                  longvideobench):
    config = EvalConfig(suite=f"longvideobench:{longvideobench}", protocol="lmms-eval",
                        frames=2)
    row, double = run_scripted(store, tmp_path, config, ["A", "I am not sure.", "B"])
    assert double.asked[0].question.endswith("E. we are the champions\nAnswer with the "
                                             "option's letter from the given choices "
                                             "directly.\n")
    items = er.eval_items(store, row["id"])
    assert items[1]["meta"]["guessed"] is True and items[1]["prediction"] in "ABCD"
    assert row["n_unparsed"] == 1
    assert row["n_correct"] == 2 + items[1]["correct"]


def test_videomme_under_lmms_eval(store, tmp_path, videomme):
    config = EvalConfig(suite=f"videomme:{videomme}", protocol="lmms-eval", frames=3)
    texts = ["B", "Based on the video, C.", "A.", "The best answer is D"]
    row, double = run_scripted(store, tmp_path, config, texts)
    assert double.asked[0].question.startswith(P.VIDEOMME_OPTION_PROMPT + "\nHow many")
    assert "\nA. 4.\nB. 9.\nC. 5.\nD. 13.\n" in double.asked[0].question
    # lmms-eval reads "Based on the video, C." as B: 3 of 4
    assert [i["prediction"] for i in er.eval_items(store, row["id"])] == ["B", "B", "A", "D"]
    assert row["n_correct"] == 3 and "m_avg" not in row["summary"]
    assert "M-avg %" not in er.results_table([row]).columns


# --- the protocol column, for databases made before it --------------------------------------


def test_evaluations_stored_before_the_protocol_read_as_tpo(tmp_path):
    path = tmp_path / "old.db"
    db = sqlite_utils.Database(path)
    before = STEPS[:[step.__name__ for step in STEPS].index("eval_protocol")]
    for step in before:
        step(db)
    db.execute(f"PRAGMA user_version = {len(before)}")
    db["evals"].insert({"suite": "mlvu", "model": "m", "frames": 8, "n_items": 2,
                        "n_correct": 1, "n_unparsed": 0, "accuracy": 0.5, "created_at": now(),
                        "summary": json.dumps({"by_task": {
                            "a": {"n": 1, "correct": 1, "accuracy": 1.0},
                            "b": {"n": 1, "correct": 0, "accuracy": 0.0}}})})
    db.conn.commit()
    db.close()
    store = Store(path)
    (row,) = er.list_evals(store)
    assert row["protocol"] == "tpo"
    table = er.results_table([row])
    assert table.loc[0, "protocol"] == "tpo" and table.loc[0, "M-avg %"] == 50.0


# --- `tpo eval --protocol lmms-eval` on the three layouts, tiny real model -------------------


def test_cli_eval_protocol_lmms_eval_on_the_fixture_layouts(tmp_path, monkeypatch, mlvu_dev,
                                                            videomme, longvideobench,
                                                            tiny_smolvlm_dir):
    monkeypatch.setenv("TPO_DATA_DIR", str(tmp_path / "data"))
    db = tmp_path / "cli.db"

    def run(*args):
        return CliRunner().invoke(cli, ["--db", str(db), *map(str, args)],
                                  catch_exceptions=False)

    ids = []
    for spec in (f"videomme:{videomme}", f"mlvu:{mlvu_dev}",
                 f"longvideobench:{longvideobench}"):
        result = run("eval", "--model", tiny_smolvlm_dir, "--suite", spec, "--protocol",
                     "lmms-eval", "--frames", "2", "--max-new-tokens", "2", "--json")
        assert result.exit_code == 0, result.output
        (stored,) = json.loads(result.stdout)
        assert stored["protocol"] == "lmms-eval" and stored["n_items"] > 0
        ids.append(stored["id"])
    assert json.loads(run("evals", ids[1], "--json").stdout)["summary"]["m_avg"] is not None
    listed = run("evals", "--protocol", "lmms-eval")
    assert listed.exit_code == 0 and "lmms-eval" in listed.stdout and "M-avg %" in listed.stdout
    assert run("evals", "--protocol", "tpo").stdout.startswith("no evaluations yet")
    one = run("evals", ids[1])
    assert "M-avg" in one.stdout.splitlines()[0] and "(protocol lmms-eval)" in one.stdout
    refused = run("eval", "--model", tiny_smolvlm_dir, "--suite", "needle", "--protocol",
                  "lmms-eval")
    assert refused.exit_code != 0 and "protocol lmms-eval covers" in refused.output
    assert "Traceback" not in refused.output
