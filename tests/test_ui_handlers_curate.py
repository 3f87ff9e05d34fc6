"""The Curate tab's handlers (:mod:`ui.curate`), called as Gradio calls them: one dict of
input values keyed by component, a ``gr.Request`` carrying the log-in, and a dict of updates
back. A real store on a temporary SQLite file; the browser's side of the tab (keys, instant
swap) is in ``tests/e2e/test_curate_*.py``.

Protects: an answer sends only the view parts that changed since the last (plus the text
boxes the browser may have changed itself) and never a placeholder; accept moves on and
records the reviewer's own new version; Accept warns once; a stale version is refused and
the newer one shown; undo, bulk and restore act as the logged-in user; and the app's wiring
lets Gradio fill in the log-in (a handler bound with ``functools.partial`` would get None).
"""

from __future__ import annotations

from dataclasses import fields

import gradio as gr
import pytest
from gradio import helpers, utils

from ui_tabs import curate_tab, login, page_values, shown

from tpo.curation.review import review
from ui import curate
from ui.app import build_app
from ui.curate_view import PARTS

TWO_LOGINS = "ana:pw1,bo:pw2"


def make_pairs(store, n=3, name="a.mp4", **overrides) -> list[int]:
    video_id = store.add_video({"path": f"/v/{name}", "name": name, "sha256": "a" * 64,
                                "status": "ready", "duration_s": 60.0})
    rows = [{"kind": "localized", "strategy": "irrelevant", "question": f"Q{i}?",
             "chosen": f"chosen {i}.", "rejected": f"rejected {i}.", "segment_start": 1.0,
             "segment_end": 5.0, "chosen_timestamps": [1.0, 2.0], "rejected_timestamps": [9.0],
             "status": "pending", "filter_verdict": "kept", "filter_reason": None, **overrides}
            for i in range(n)]
    return store.save_generation(video_id, "k", rows, params={}, seconds=0)


def test_the_apps_handlers_take_dicts_and_get_the_login(store, settings):
    """Every Curate event passes its inputs as one dict, and Gradio finds the gr.Request
    parameter of those that act as someone (so a log-in is never the default user)."""
    assert tuple(f.name for f in fields(curate.ViewParts)) == PARTS
    assert [f.name for f in fields(curate.FilterBoxes)] == [
        f.name for f in fields(curate.Filters)]
    demo = build_app(store, settings.with_(auth=TWO_LOGINS))
    by_elem = {}
    for fn in demo.fns.values():
        for block_id, event in fn.targets:
            elem = getattr(demo.blocks.get(block_id), "elem_id", None) or ""
            if event in ("click", "submit") and elem.startswith(("curate-", "export-")):
                by_elem[elem] = fn
    acting = ["curate-load", "curate-search", "curate-reason", "curate-guide-restore",
              "curate-accept", "curate-reject", "curate-swap", "curate-save", "curate-undo",
              "curate-bulk-confirm", "export-start", "export-zip"]
    for elem in acting:
        fn = by_elem[elem].fn
        assert utils.get_type_hints(fn).get("request") is gr.Request, elem
        args = [] if elem == "export-zip" else [{}]
        filled, *_ = helpers.special_args(fn, args, request=login("ana"))
        assert filled[-2].username == "ana", elem
    for elem in ("curate-prev", "curate-next", "curate-bulk-accept", *acting[:-1]):
        assert by_elem[elem].inputs_as_dict, elem


def test_load_then_accept_sends_only_what_changed(store, settings):
    ids = make_pairs(store, 3)
    tab = curate_tab(store, settings)
    values = page_values(tab)
    out = curate.load_queue(store, settings, tab, values, login(None))
    assert out[tab.queue] == ids and out[tab.seen] == {i: 1 for i in ids}
    assert out[tab.position] == 0 and out[tab.message] == ""
    assert all(part in out for part in tab.view.outputs())  # the first answer: everything
    assert out[tab.view.pair_id] == ids[0] and "Q0?" in out[tab.view.question]
    assert out[tab.filters.video]["choices"] == ["any", f"#{store.list_videos()[0]['id']} a.mp4"]
    assert out[tab.guide_box]["visible"] is False
    assert f'data-pair="{ids[1]}"' in out[tab.prefetch]
    values = shown(values, out)

    seen = values[tab.seen]
    out = curate.on_action(store, settings, tab, "accept", values, login(None))
    # The session's versions are updated in place, not copied (one per pair of the queue).
    assert out[tab.seen] is seen and seen[ids[0]] == 2
    assert store.get_pair(ids[0])["status"] == "accepted"
    assert [r["user"] for r in store.reviews(ids[0])] == ["tester"]  # the name typed
    assert out[tab.message] == f"Pair #{ids[0]}: accept → accepted (version 2)."
    assert out[tab.position] == 1 and out[tab.view.pair_id] == ids[1]
    assert out[tab.seen] == {ids[0]: 2, ids[1]: 1, ids[2]: 1}
    assert 'data-count="accepted">1<' in out[tab.counters]
    # Same video, same frames: the player, timeline and strips do not travel again; the
    # text boxes always do (the browser may have changed them itself).
    for same in ("player", "timeline", "chosen_title", "chosen_strip", "warning", "caution"):
        assert getattr(tab.view, same) not in out, same
    for always in ("chosen", "rejected", "edit_question", "note"):
        assert getattr(tab.view, always) in out, always
    assert not any(isinstance(v, dict) and v == gr.skip() for v in out.values())
    values = shown(values, out)

    out = curate.on_move(store, settings, tab, -1, values)
    assert out[tab.position] == 0 and out[tab.message] == ""
    assert 'data-status="accepted"' in out[tab.view.meta] and tab.seen not in out
    values = shown(values, out)
    assert curate.on_move(store, settings, tab, -1, values)[tab.position] == 0  # at the start


def test_accept_warns_once_and_a_stale_version_is_not_saved(store, settings):
    empty, other = make_pairs(store, 2, chosen="")
    tab = curate_tab(store, settings)
    values = shown(page_values(tab), curate.load_queue(store, settings, tab, page_values(tab),
                                                       login(None)))
    assert values[tab.view.caution][:2] == [empty, 1]

    out = curate.on_action(store, settings, tab, "accept", values, login(None))
    assert "not accepted yet" in out[tab.message] and out[tab.position] == 0
    assert store.get_pair(empty)["status"] == "pending"
    assert "data-confirmed" in out[tab.view.warning] and out[tab.view.caution] is None
    values = shown(values, out)
    out = curate.on_action(store, settings, tab, "accept", values, login(None))
    assert store.get_pair(empty)["status"] == "accepted" and out[tab.position] == 1
    values = shown(values, out)

    review(store, other, "reject", user="bo", expected_version=1)  # in bo's browser
    out = curate.on_action(store, settings, tab, "swap", values, login(None))
    assert out[tab.message].startswith("⚠️ **Not saved.**")
    assert out[tab.view.version] == 2 and 'data-status="rejected"' in out[tab.view.meta]
    assert tab.seen not in out  # someone else's change stays "changed since" for bulk actions
    assert store.get_pair(other)["swapped"] in (0, False, None)

    with pytest.raises(gr.Error, match="No pair loaded"):
        curate.on_action(store, settings, tab, "accept", page_values(tab), login(None))


def test_undo_and_bulk_act_as_the_logged_in_reviewer(store, settings):
    shared = settings.with_(auth=TWO_LOGINS)
    ids = make_pairs(store, 3)
    tab = curate_tab(store, shared)
    values = shown(page_values(tab), curate.load_queue(store, shared, tab, page_values(tab),
                                                       login("ana")))
    values = shown(values, curate.on_action(store, shared, tab, "accept", values, login("ana")))
    assert [r["user"] for r in store.reviews(ids[0])] == ["ana"]

    with pytest.raises(gr.Error, match="Nothing of bo's to undo"):
        curate.on_undo(store, shared, tab, values, login("bo"))
    out = curate.on_undo(store, shared, tab, values, login("ana"))
    assert out[tab.seen] is values[tab.seen]  # updated in place
    assert out[tab.position] == 0 and out[tab.view.pair_id] == ids[0]
    assert out[tab.message].startswith(f"Undone: pair #{ids[0]} is pending again (version 3")
    assert out[tab.seen][ids[0]] == 3
    values = shown(values, out)

    with pytest.raises(gr.Error, match="queue is empty"):
        curate.on_bulk_ask(tab, "reject", {tab.queue: []})
    asked = curate.on_bulk_ask(tab, "reject", values)
    assert asked[tab.confirm_text] == "**Reject all 3 pairs in this queue?**"
    assert asked[tab.confirm_row]["visible"] is True
    values = shown(values, asked)
    review(store, ids[2], "accept", user="bo", expected_version=1)  # changed since loaded
    out = curate.on_bulk_confirm(store, shared, tab, values, login("ana"))
    assert out[tab.seen] is values[tab.seen]  # updated in place
    assert out[tab.message].startswith("Rejected 2 pairs (0 already were).")
    assert "Skipped 1 pairs changed since you loaded the queue" in out[tab.message]
    assert out[tab.bulk] is None and out[tab.confirm_row]["visible"] is False
    assert [store.get_pair(i)["status"] for i in ids] == ["rejected", "rejected", "accepted"]
    assert {r["user"] for i in ids[:2] for r in store.reviews(i)} == {"ana"}
    assert out[tab.seen] == {ids[0]: 4, ids[1]: 2, ids[2]: 1}


def test_empty_queue_guides_to_the_filtered_pairs_and_restores_them(store, settings):
    shared = settings.with_(auth=TWO_LOGINS)
    ids = make_pairs(store, 2, status="filtered", filter_verdict="dropped",
                     filter_reason="truncated: cut at the token limit")
    tab = curate_tab(store, shared)
    out = curate.load_queue(store, shared, tab, page_values(tab), login("bo"))
    assert out[tab.queue] == [] and out[tab.guide_box]["visible"] is True
    assert 'data-filtered="2"' in out[tab.guide]
    assert out[tab.guide_reason]["choices"] == [("all reasons (2)", ""), ("truncated (2)",
                                                                          "truncated")]
    assert "No pairs match these filters." in out[tab.view.question]
    values = shown(page_values(tab), out)

    values[tab.guide_reason] = "truncated"
    out = curate.on_restore(store, shared, tab, values, login("bo"))
    assert out[tab.message] == ("Restored 2 pairs filtered for truncated to pending (each "
                                "restore is recorded under your name).")
    assert out[tab.queue] == ids and out[tab.guide_box]["visible"] is False
    assert [(r["action"], r["user"]) for r in store.reviews(ids[0])] == [("bulk-restore", "bo")]


def test_export_needs_accepted_pairs_and_a_finished_export(store, settings):
    with gr.Blocks():
        form = curate.export_panel(store, settings)
    panel_values = {form.out_dir: "", form.fmt: "jsonl", form.frames_from: "whole",
                    form.frames: 4}
    with pytest.raises(gr.Error, match="No accepted pairs yet"):
        curate.on_export(store, settings, form, None, panel_values, login(None))
    with pytest.raises(gr.Error, match="No finished export yet"):
        curate.on_export_zip(store, settings, form, login(None))
