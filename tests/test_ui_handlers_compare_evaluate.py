"""The Compare and Evaluate tabs' handlers (:mod:`ui.compare`, :mod:`ui.evaluate`), called
directly over a real store, as Gradio calls them: input values as one dict keyed by component,
updates back keyed by component. Also: a wired handler gets the signed-in user from Gradio."""

from __future__ import annotations

import random

import gradio as gr
import pytest
from gradio.helpers import special_args
from media import make_video

from tpo import jobs
from tpo.evaluation import compare as comparisons
from tpo.media.library import ingest
from tpo.models.modelref import ModelRef
from ui import compare, evaluate
from ui.evaluate import EvalForm, EvalView
from ui.jobs import JobPanel
from ui.models import ModelPicker


@pytest.fixture
def video_id(store, tmp_path):
    """One ingested, readable 4 s clip."""
    (vid,) = ingest(store, [make_video(tmp_path / "clip.mp4", duration_s=4, fps=4,
                                       size=(64, 48))]).added
    return vid


@pytest.fixture
def built(store, settings) -> tuple[gr.Blocks, compare.CompareTab]:
    """The Compare tab as the app lays it out, its handlers wired, in its Blocks."""
    with gr.Blocks() as demo:
        picker = ModelPicker.build(store, settings, "no Hub in tests")
        tab = compare.build(store, settings, picker)
    return demo, tab


@pytest.fixture
def tab(built) -> compare.CompareTab:
    return built[1]


def asked(store, video_id: int, *, blind: bool = True, question: str = "What moves?") -> int:
    """A comparison of base/model with tuned/model, still being answered."""
    return comparisons.create(store, video_id, question, ModelRef("base", "base/model"),
                              ModelRef("tuned", "tuned/model"), user="ana", blind=blind,
                              rng=random.Random(0))


def answered(store, comparison_id: int) -> None:
    store.update_comparison(comparison_id, {"status": "done", "answer_a": "A red ball.",
                                            "answer_b": "A blue cube."})


def test_poll_streams_then_stops_and_a_vote_reveals_the_names(store, settings, tab, video_id):
    cid = asked(store, video_id)
    values = {tab.comparison: cid, tab.queue: [cid], tab.seen: None, tab.user: "ana"}
    first = compare.poll(store, settings, tab, values, None)
    assert 'data-status="answering"' in first[tab.answer_a]
    assert "revealed after your vote" in first[tab.reveal]
    assert first[tab.seen] == [cid, "answering", 0, 0, 0] and first[tab.timer].active
    # Nothing changed since: only the timer comes back, still polling.
    again = compare.poll(store, settings, tab, {**values, tab.seen: first[tab.seen]}, None)
    assert set(again) == {tab.timer} and again[tab.timer].active

    answered(store, cid)
    done = compare.poll(store, settings, tab, {**values, tab.seen: first[tab.seen]}, None)
    assert "A red ball." in done[tab.answer_a] and "A blue cube." in done[tab.answer_b]
    assert not done[tab.timer].active  # the answers are drawn: polling stops
    for side in (tab.answer_a, tab.answer_b):  # blind: no names before the vote
        assert "base" not in done[side] and "tuned" not in done[side]

    voted = compare.cast_vote(store, settings, tab, "b", values, None)
    row = comparisons.get(store, cid)
    assert f"A was <b>{row['model_a']}</b>" in voted[tab.reveal]
    assert "your vote: <b>B is better</b>" in voted[tab.reveal]
    assert row["model_b"] in voted[tab.answer_b]
    assert voted[tab.board]["visible"] and not voted[tab.board_note]["visible"]
    board = voted[tab.board]["value"]  # one pair of models, one vote
    assert {*board["model"], *board["opponent"]} == {"base", "tuned"}
    assert list(board["votes"]) == [1]
    with pytest.raises(gr.Error, match="has already voted"):
        compare.cast_vote(store, settings, tab, "a", values, None)
    with pytest.raises(gr.Error, match="Ask both models a question first"):
        compare.cast_vote(store, settings, tab, "a", {**values, tab.comparison: None}, None)
    assert [v["vote"] for v in comparisons.get(store, cid)["votes"]] == ["b"]


def test_previous_and_next_go_through_the_questions_asked_together(store, settings, tab,
                                                                   video_id):
    ids = [asked(store, video_id, question=f"Question {i}?") for i in range(3)]
    values = {tab.queue: ids, tab.comparison: ids[0], tab.user: "ana"}
    nxt = compare.step(store, settings, tab, +1, values, None)
    assert nxt[tab.comparison] == ids[1] and nxt[tab.seen] is None
    assert nxt[tab.position] == "Comparison **2 of 3**: Question 1?"
    assert compare.step(store, settings, tab, -1, values, None)[tab.comparison] == ids[0]
    last = compare.step(store, settings, tab, +1, {**values, tab.comparison: ids[2]}, None)
    assert last[tab.comparison] == ids[2]  # the last stays the last
    with pytest.raises(gr.Error, match="Ask a question first"):
        compare.step(store, settings, tab, +1, {**values, tab.queue: []}, None)


@pytest.mark.usefixtures("stop_workers")
def test_ask_creates_the_comparison_and_starts_its_job(store, settings, tab, video_id):
    choice = compare.video_choices(store)[0]
    shown = compare.show_video(store, tab, {tab.video: choice})
    assert shown[tab.suggested]["choices"] == []  # a clip with no ground truth nor pairs
    assert compare.PLAYER_ID in shown[tab.player]

    values = {tab.model_a: "org/first", tab.model_b: "org/second", tab.video: choice,
              tab.question: "What moves?", tab.frames: 4, tab.tokens: 8, tab.blind: False,
              tab.user: " ana "}
    with pytest.raises(gr.Error, match="Choose a video first"):
        compare.ask(store, settings, tab, {**values, tab.video: None}, None)
    with pytest.raises(gr.Error, match="no ground-truth or pair questions"):
        compare.ask_all(store, settings, tab, values, None)
    assert comparisons.list_comparisons(store) == []

    out = compare.ask(store, settings, tab, values, None)
    row = comparisons.get(store, out[tab.comparison])
    assert out[tab.queue] == [row["id"]] and out[tab.position] == ""  # one question: no "1 of 1"
    assert (row["model_a"], row["model_b"], row["user"]) == ("org/first", "org/second", "ana")
    assert (row["n_frames"], row["max_new_tokens"]) == (4, 8)
    assert jobs.get(store, row["job_id"])["kind"] == "compare"
    assert out[tab.timer].active and out[tab.seen] is None
    assert "Model A: org/first" in out[tab.answer_a]  # not blind: named at once


def test_a_wired_vote_is_recorded_for_the_signed_in_user(store, built, video_id):
    """Gradio gives the handler the log-in (found by type hint through the binding): the
    vote is the signed-in user's, not the name typed in the hidden box."""
    demo, tab = built
    cid = asked(store, video_id)
    answered(store, cid)
    vote_b = next(fn for fn in demo.fns.values()
                  if any(getattr(demo.blocks.get(target), "elem_id", None) == "compare-vote-b"
                         for target, _event in fn.targets))
    assert vote_b.inputs_as_dict
    args, *_ = special_args(vote_b.fn, [{tab.comparison: cid, tab.user: "typed"}],
                            request=gr.Request(username="signed-in"))
    out = vote_b.fn(*args)
    assert "your vote: <b>B is better</b>" in out[tab.reveal]
    assert [(v["user"], v["vote"]) for v in comparisons.get(store, cid)["votes"]] == [
        ("signed-in", "b")]


# -- Evaluate ------------------------------------------------------------------------------


def add_eval(store, model: str, correct: list[bool], *, suite: str = "needle") -> int:
    """A stored evaluation with one item per entry of ``correct`` (item ids q0, q1, ...)."""
    n = sum(correct)
    return store.add_evaluation(
        {"suite": suite, "model": model, "frames": 8, "n_items": len(correct), "n_correct": n,
         "n_unparsed": 0, "accuracy": n / len(correct), "summary": {},
         "created_at": "2026-01-01T00:00:00+00:00"},
        [{"item_id": f"q{i}", "video": "v.mp4", "question": f"Question {i}?",
          "options": ["yes", "no"], "answer": "A", "response": "A" if ok else "B",
          "prediction": "A" if ok else "B", "correct": ok, "duration_class": "short",
          "task": "count"} for i, ok in enumerate(correct)])


@pytest.fixture
def view() -> EvalView:
    with gr.Blocks():
        return EvalView(results=gr.Dataframe(), answers_note=gr.Markdown(),
                        answers=gr.Dataframe(), first=gr.Number(), second=gr.Number(),
                        diff_summary=gr.Markdown(), diff_table=gr.Dataframe())


def select(store, view: EvalView, eval_id: int, second) -> dict:
    """Select the results table's row of ``eval_id`` with ``second`` in "with evaluation #"."""
    shown = evaluate.results_frame(store)
    row = int(shown.index[shown["eval"] == eval_id][0])
    evt = gr.SelectData(None, {"index": [row, 1], "value": shown.iloc[row]["model"]})
    return evaluate.select_evaluation(store, view, {view.results: shown, view.second: second},
                                      evt)


def test_selecting_two_evaluations_then_comparing_them(store, view):
    base = add_eval(store, "base", [True, False, False, False])
    tuned = add_eval(store, "tuned", [True, True, True, False])
    picked = select(store, view, base, None)
    assert picked[view.answers_note].startswith(f"**Eval #{base}**: base on needle")
    assert "1 of 4 correct" in picked[view.answers_note]
    assert picked[view.answers]["visible"] and len(picked[view.answers]["value"]) == 4
    assert (picked[view.first], picked[view.second]) == (None, base)
    # The next selection moves the first one to "Compare evaluation #".
    picked = select(store, view, tuned, base)
    assert (picked[view.first], picked[view.second]) == (base, tuned)

    diff = evaluate.compare_evaluations(store, view, {view.first: base, view.second: tuned})
    summary = diff[view.diff_summary]
    assert summary.startswith(f"**#{tuned} tuned** vs **#{base} base**: 75.0% vs 25.0% on 4 "
                              "shared questions (**+50.0 points**); only the second right on 2")
    table = diff[view.diff_table]
    assert table["visible"] and list(table["value"]["by"]) == ["overall", "duration", "task"]
    with pytest.raises(gr.Error, match="Give two evaluation numbers"):
        evaluate.compare_evaluations(store, view, {view.first: None, view.second: tuned})
    other = add_eval(store, "base", [True], suite="videomme")
    with pytest.raises(gr.Error, match="not of the same suite"):
        evaluate.compare_evaluations(store, view, {view.first: base, view.second: other})
    with pytest.raises(gr.Error, match="no evaluation 999"):
        evaluate.compare_evaluations(store, view, {view.first: base, view.second: 999})


@pytest.mark.usefixtures("stop_workers")
def test_run_evaluation_checks_the_form_then_queues_the_job(store, settings):
    with gr.Blocks():
        form = EvalForm(models=gr.Textbox(), suite=gr.Dropdown(), path=gr.Textbox(),
                        protocol=gr.Dropdown(), frames=gr.Number(), limit=gr.Number(),
                        lengths=gr.Textbox(), depths=gr.Textbox())
        panel = JobPanel(store, "eval", what="evaluation", empty="No evaluation yet.",
                         busy_s=evaluate.BUSY_POLL_S, elem_prefix="eval")
        panel.status_html()
        panel.wire()
    values = {form.models: "\n org/model \n\n", form.suite: "needle", form.path: "",
              form.protocol: None, form.frames: 4, form.limit: 0, form.lengths: "10; 20",
              form.depths: "0, 1"}
    for changes, message in (({form.models: " \n "}, "Name at least one model"),
                             ({form.lengths: "ten"}, "Haystack lengths: numbers separated"),
                             ({form.depths: "0, x"}, "Depths: numbers separated")):
        with pytest.raises(gr.Error, match=message):
            evaluate.start_evaluation(store, settings, form, panel, {**values, **changes})
    assert jobs.list_jobs(store) == []

    out = evaluate.start_evaluation(store, settings, form, panel, values)
    (job,) = jobs.list_jobs(store, kind="eval")
    assert f'data-job-id="{job["id"]}"' in out[panel.status]
    assert out[panel.timer].value == evaluate.BUSY_POLL_S  # the panel polls fast at once
    config = job["params"]["config"]
    assert [m["model"] for m in job["params"]["models"]] == ["org/model"]
    assert (config["suite"], config["frames"], config["limit"]) == ("needle", 4, None)
    assert (list(config["needle_lengths"]), list(config["needle_depths"])) == ([10, 20], [0, 1])
