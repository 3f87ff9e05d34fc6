"""The Team tab's handlers (:mod:`ui.team`) over a real store: assigning two reviewers with
overlap, their progress, the agreement table after both decide the shared pairs (percent,
Cohen's and Fleiss' kappa against hand-computed values), the adjudication queue, versioned
guidelines, and who may assign or edit in a shared app."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import gradio as gr
import pytest
from ui_tabs import call_as_gradio, wired

from tpo.config import Settings
from tpo.curation.review import review
from tpo.store import Store
from ui import team
from ui.app import build_app


def make_pairs(store: Store, n: int, *, name: str = "a.mp4") -> list[int]:
    video_id = store.add_video({"path": f"/v/{name}", "name": name, "sha256": name * 8,
                                "status": "ready", "duration_s": 60.0})
    rows = [{"kind": "localized", "strategy": "irrelevant", "question": f"What moves in {i}?",
             "chosen": f"Yes {i}.", "rejected": f"No {i}.", "chosen_timestamps": [1.0],
             "rejected_timestamps": [2.0], "status": "pending", "filter_verdict": "kept"}
            for i in range(n)]
    return store.save_generation(video_id, f"k{name}", rows, params={}, seconds=0)


def decide(store: Store, user: str, pair_ids: list[int], actions: str) -> None:
    """``actions``: one letter per pair, a(ccept) or r(eject)."""
    for pair_id, letter in zip(pair_ids, actions):
        review(store, pair_id, {"a": "accept", "r": "reject"}[letter], user=user)


def overlapped(store: Store, ids: list[int]) -> list[int]:
    return [i for i in ids if len(store.assignees(i)) == 2]


def test_assign_with_overlap_then_progress_then_agreement_table(store, settings):
    ids = make_pairs(store, 10)
    said = team.assign_pairs(store, settings, "lead", "ana, bo", "count", 2, 40, "pending", 0)
    assert "Assigned **10** pairs by count (ana: 7, bo: 7)" in said
    assert "**4** of them to 2 reviewers each" in said
    shared = overlapped(store, ids)
    assert len(shared) == 4
    # No pair outside the overlap went to two reviewers.
    assert all(len(store.assignees(i)) == 1 for i in ids if i not in shared)

    start = team.progress_frame(store)
    assert start.to_dict("records") == [
        {"reviewer": r, "assigned": 7, "done": 0, "left": 7, "actions": 0, "actions/hour": "",
         "last hour": 0, "last action (UTC)": ""} for r in ("ana", "bo")]
    summary, table, queue = team.agreement_view(store)
    assert summary == "" and table.empty and queue.empty  # nobody decided a shared pair yet

    # Both decide the 4 shared pairs: agree on 3 (a a r r against a r r r).
    decide(store, "ana", shared, "aarr")
    decide(store, "bo", shared, "arrr")
    ana_only = [i for i in ids if store.assignees(i) == ["ana"]]
    decide(store, "ana", ana_only[:2], "aa")  # her own share: no second rater, no agreement

    later = datetime.now(timezone.utc) + timedelta(seconds=1)
    rows = {r["reviewer"]: r for r in team.progress_frame(store, now=later).to_dict("records")}
    assert (rows["ana"]["done"], rows["ana"]["left"], rows["ana"]["actions"]) == (6, 1, 6)
    assert (rows["bo"]["done"], rows["bo"]["left"], rows["bo"]["actions"]) == (4, 3, 4)
    assert rows["ana"]["last hour"] == 6 and rows["ana"]["actions/hour"] > 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", rows["ana"]["last action (UTC)"])

    summary, table, queue = team.agreement_view(store)
    # Cohen: p_o 3/4, p_e = .5*.25 + .5*.75 = .5 -> 0.5. Fleiss: P-bar = 3/4, pooled
    # accept 3/8, reject 5/8 -> P_e = 34/64 -> (0.75 - 0.53125) / 0.46875 = 0.467.
    assert table.to_dict("records") == [
        {"reviewer A": "ana", "reviewer B": "bo", "pairs": 4, "agreement %": 75.0,
         "kappa": "0.500", "kappa is": "Cohen's"},
        {"reviewer A": "all", "reviewer B": "", "pairs": 4, "agreement %": 75.0,
         "kappa": "0.467", "kappa is": "Fleiss'"}]
    assert "**4** pairs decided by two or more reviewers" in summary
    assert "Fleiss' kappa **0.467**" in summary and "**1 open**" in summary
    assert queue.to_dict("records") == [
        {"pair": shared[1], "question": f"What moves in {ids.index(shared[1])}?",
         "decisions": "ana: accepted, bo: rejected", "status": "rejected"}]

    # An adjudicator (assigned none of it) settles the disagreement: the queue empties.
    review(store, shared[1], "accept", user="cy")
    summary, table, queue = team.agreement_view(store)
    assert queue.empty and "1 adjudicated and **0 open**" in summary


def test_assign_by_video_and_take_back_undecided(store, settings):
    first = make_pairs(store, 3, name="a.mp4")
    second = make_pairs(store, 2, name="b.mp4")
    said = team.assign_pairs(store, settings, "lead", "ana\nbo", "video", 1, 10, "any")
    assert "(ana: 3, bo: 2)" in said and "reviewers each" not in said
    assert {tuple(store.assignees(i)) for i in first} == {("ana",)}
    assert {tuple(store.assignees(i)) for i in second} == {("bo",)}
    review(store, first[0], "accept", user="ana")
    assert team.take_back(store, settings, "lead", "ana") == \
        "Took back **2** undecided assignments (ana)."
    assert store.assignees(first[0]) == ["ana"] and store.assignees(first[1]) == []
    assert "(everyone)" in team.take_back(store, settings, "lead", "")
    assert store.assignees(second[0]) == []


@pytest.mark.parametrize("names, k, percent, message", [
    ("", 1, 0, "Name the reviewers"),
    (" , ;", 1, 0, "Name the reviewers"),
    ("ana", 2, 10, "overlap 2 needs at least 2 reviewers"),
    ("ana, bo", 2, 0, "say which share of the pairs gets it"),
    ("ana, bo", 1.5, 10, "whole number of reviewers"),
    ("ana, bo", 2, 150, "0 to 100, not 150"),
])
def test_assign_refuses_bad_input_with_a_message(store, settings, names, k, percent, message):
    make_pairs(store, 4)
    with pytest.raises(gr.Error, match=message):
        team.assign_pairs(store, settings, "lead", names, "count", k, percent, "pending")
    assert not store.has_assignments()


def test_assign_with_nothing_to_assign_says_so(store, settings):
    with pytest.raises(gr.Error, match="no unassigned pending pairs"):
        team.assign_pairs(store, settings, "lead", "ana", "count", 1, 0, "pending")


def test_reviewer_names_are_split_on_commas_and_lines_and_escaped_in_the_report(store, settings):
    assert team.parse_reviewers("ana,  bo  smith;ana\n cy ,") == ["ana", "bo smith", "cy"]
    make_pairs(store, 2)
    said = team.assign_pairs(store, settings, "lead", "*ana*, <b>bo</b>", "count", 1, 0,
                             "pending")
    assert "\\*ana\\*: 1" in said and "&lt;b&gt;bo&lt;/b&gt;: 1" in said and "<b>" not in said


def test_guidelines_are_saved_as_versions_and_shown_for_the_pair(store, settings):
    assert team.guidelines_markdown(store) == "" and team.current_text(store) == ""
    assert team.guidelines_status(store) == team.NO_GUIDELINES
    with pytest.raises(gr.Error, match="empty"):
        team.save_guidelines(store, settings, "ana", "  \n")
    rules = "# Rules\n\nAccept only *grounded* answers."
    said = team.save_guidelines(store, settings, "ana", rules)
    assert said.startswith("Saved as **version 1**.")
    assert team.save_guidelines(store, settings, "bo", rules + "\n").startswith(
        "Unchanged: still version 1")
    said = team.save_guidelines(store, settings, "b_o", "# Rules v2\n\nReject refusals.")
    assert "version 2, saved by b\\_o" in said
    shown = team.guidelines_markdown(store)
    assert shown.startswith("**Review guidelines** (version 2, saved by b\\_o at ")
    assert shown.endswith("# Rules v2\n\nReject refusals.\n")
    assert team.current_text(store) == "# Rules v2\n\nReject refusals.\n"
    assert team.guidelines_history(store)["version"].tolist() == [2, 1]
    assert store.guidelines(1)["text"].startswith("# Rules\n")  # the old version is kept


def test_in_a_shared_app_only_admins_assign_and_edit_guidelines(tmp_path):
    settings = Settings(data_dir=tmp_path / "data", auth="ana:pw1,bo:pw2", admins="ana")
    store = Store(settings.db_path)
    try:
        make_pairs(store, 4)
        assert team.may_lead(settings, "ana") and not team.may_lead(settings, "bo")
        with pytest.raises(gr.Error, match="bo may not assign pairs.*TPO_ADMINS"):
            team.assign_pairs(store, settings, "bo", "ana, bo", "count", 1, 0, "pending")
        with pytest.raises(gr.Error, match="bo may not take back"):
            team.take_back(store, settings, "bo", "")
        with pytest.raises(gr.Error, match="bo may not edit the guidelines"):
            team.save_guidelines(store, settings, "bo", "Be kind.")
        assert not store.has_assignments() and store.guidelines() is None
        assert "(ana: 2, bo: 2)" in team.assign_pairs(store, settings, "ana", "ana, bo",
                                                       "count", 1, 0, "pending")
        assert "version 1" in team.save_guidelines(store, settings, "ana", "Be kind.")
    finally:
        store.close()


def test_the_app_has_a_team_tab_after_curate(store, settings):
    demo = build_app(store, settings, hub_check=lambda: None)
    ids = [block.elem_id for block in demo.blocks.values()]
    assert ids.index("tab-curate") < ids.index("tab-team") < ids.index("tab-train")
    for elem_id in ("team-assign", "team-progress", "team-agreement", "team-disagreements",
                    "team-guidelines-text", "team-guidelines-save"):
        assert elem_id in ids


def test_the_wired_handlers_act_as_the_signed_in_admin_and_hide_leading_from_others(tmp_path):
    """The handlers as Gradio calls them: one dict of inputs, the log-in filled in by type
    hint (what a plain functools.partial would lose), updates keyed by component."""
    settings = Settings(data_dir=tmp_path / "data", auth="ana:pw1,bo:pw2", admins="ana")
    store = Store(settings.db_path)
    try:
        make_pairs(store, 4)
        with gr.Blocks() as demo:
            tab = team.build(store, settings)

        form = {tab.user: "", tab.reviewers: "ana, bo", tab.by: "count", tab.overlap: 1,
                tab.overlap_percent: 0, tab.status: "pending", tab.seed: 0}
        with pytest.raises(gr.Error, match="bo may not assign"):
            call_as_gradio(wired(demo, "team-assign"), form, "bo")
        out = call_as_gradio(wired(demo, "team-assign"), form, "ana")
        assert "(ana: 2, bo: 2)" in out[tab.assign_result]
        progress = out[tab.progress_table]  # the progress table now has the two reviewers
        assert progress["visible"] and sorted(progress["value"]["reviewer"]) == ["ana", "bo"]
        saved = call_as_gradio(wired(demo, "team-guidelines-save"),
                               {tab.user: "", tab.editor: "Be kind."}, "ana")
        assert "version 1" in saved[tab.guide_status]
        assert store.guidelines()["user"] == "ana"

        lead = next(fn.fn for fn in demo.fns.values()
                    if getattr(fn.fn, "__name__", "") == "show_lead")
        hidden = call_as_gradio(lead, None, "bo")
        assert hidden[tab.assign]["visible"] is False and "TPO_ADMINS" in hidden[tab.lead_note]
        assert call_as_gradio(lead, None, "ana")[tab.lead_note] == ""
    finally:
        store.close()
