"""The Library and Train tabs' event handlers (:mod:`ui.library`, :mod:`ui.train`), called as
Gradio calls them: one dict of input values keyed by component in, a dict of updates keyed by
component out; the signed-in user filled in by Gradio's own argument filling."""

from __future__ import annotations

import gradio as gr
import pytest
from media import make_video
from ui_tabs import build_tab, call_as_gradio, wired

from tpo import jobs
from tpo.curation.review import review
from tpo.media.library import ingest
from ui import library, train


def select(table: gr.Dataframe, row: int) -> gr.SelectData:
    """A click on the first cell of ``row`` of a Dataframe."""
    return gr.SelectData(table, {"index": [row, 0], "value": None, "selected": True})


@pytest.fixture
def filtered_pair(store, tmp_path):
    """A ready video in the library with one pair the filters dropped."""
    clip = make_video(tmp_path / "clip.mp4", duration_s=1, fps=4)
    video_id = ingest(store, [clip], user="ana").added[0]
    pair_id, = store.save_generation(video_id, "k", [{
        "kind": "localized", "strategy": "irrelevant", "question": "Q?", "chosen": "c",
        "rejected": "r", "segment_start": 0.0, "segment_end": 1.0, "chosen_timestamps": [0.1],
        "rejected_timestamps": [0.9], "status": "filtered", "filter_verdict": "dropped",
        "filter_reason": "too <b>short</b>"}], params={}, seconds=0)
    return video_id, pair_id


def test_library_filter_select_and_restore_return_updates_by_component(
        store, settings, filtered_pair):
    video_id, pair_id = filtered_pair
    demo, tab = build_tab(store, settings, library)
    view = tab.view
    # Filters: the table for the search typed, nothing else.
    found = library.filtered_table(store, view, {view.search: "clip", view.status: "ready"})
    assert list(found) == [view.table] and list(found[view.table]["ID"]) == [video_id]
    assert found[view.table]["Pairs pend/acc/rej/filt"][0] == "0 / 0 / 0 / 1"
    none = library.filtered_table(store, view, {view.search: "nothing", view.status: "all"})
    assert none[view.table].empty
    # Selecting the video (through the wired handler and Gradio's event filling).
    on_select = wired(demo, "library-table", "select")
    shown = call_as_gradio(on_select, {view.table: found[view.table]}, None,
                           select(view.table, 0))
    assert set(shown) == set(view.video_outputs)
    assert shown[view.selected] == video_id and shown[view.details].startswith("#### clip\\.mp4")
    assert shown[view.video_pairs]["visible"] and not shown[view.pairs_note]["visible"]
    pairs = shown[view.video_pairs]["value"]
    # Selecting the pair names it and why it was dropped (escaped: it came from a model).
    picked = call_as_gradio(wired(demo, "video-pairs", "select"), {view.video_pairs: pairs},
                            None, select(view.video_pairs, 0))
    assert picked[view.selected_pair] == pair_id
    assert picked[view.pair_note] == (f"Pair **#{pair_id}** · filtered: "
                                      "too &lt;b&gt;short&lt;/b&gt;")
    # Restoring: nothing selected is a clear error; then the pair, table and header follow.
    restore = wired(demo, "pair-restore")
    values = {view.selected_pair: None, view.selected: video_id, view.search: "",
              view.status: "all"}
    with pytest.raises(gr.Error, match="Select a pair in the table first"):
        call_as_gradio(restore, values, None)
    out = call_as_gradio(restore, {**values, view.selected_pair: pair_id}, "bo")
    assert set(out) == {view.pair_note, view.video_pairs, view.pairs_note, view.table,
                        view.header}
    assert out[view.pair_note] == f"Pair **#{pair_id}** restored to pending."
    assert out[view.table]["Pairs pend/acc/rej/filt"][0] == "1 / 0 / 0 / 0"
    assert out[view.video_pairs]["value"]["Status"][0] == "pending"
    assert [(r["user"], r["action"]) for r in store.reviews(pair_id)] == [("bo", "restore")]
    with pytest.raises(gr.Error, match="is pending, not filtered"):  # twice: said, not a crash
        call_as_gradio(restore, {**values, view.selected_pair: pair_id}, "bo")


def test_adding_by_path_is_recorded_under_the_user_gradio_signs_in(store, settings, tmp_path):
    root = tmp_path / "library"
    root.mkdir()
    make_video(root / "one.mp4", duration_s=1, fps=4)
    shared = settings.with_(auth="ana:pw1,bo:pw2", admins="ana", library_roots=str(root))
    demo, tab = build_tab(store, shared, library)
    view = tab.view
    add = wired(demo, "library-add")
    values = {view.add_path: str(root / "one.mp4"), view.search: "", view.status: "all"}
    # bo is no admin: refused before anything is read. (Bound with a plain partial, the
    # handler would get no request and act as the default user, not as the one signed in.)
    with pytest.raises(gr.Error, match="TPO_ADMINS"):
        call_as_gradio(add, values, "bo")
    assert store.counts()["videos"] == 0
    out = call_as_gradio(add, values, "ana")
    assert set(out) == set(view.ingest_outputs)
    assert "added 1" in out[view.add_result] and len(out[view.table]) == 1
    assert out[view.empty_hint] == ""  # the library is no longer empty
    assert [v["added_by"] for v in store.list_videos()] == ["ana"]
    # The path box is shown to the admin only, per browser.
    (show,) = [f.fn for f in demo.fns.values()
               if getattr(f.fn, "__name__", "") == "show_add_path"]
    assert call_as_gradio(show, None, "bo") == {view.add_path_box: gr.update(visible=False)}
    assert call_as_gradio(show, None, "ana") == {view.add_path_box: gr.update(visible=True)}
    # An upload event without files changes nothing.
    upload = wired(demo, "library-upload", "upload")
    assert call_as_gradio(upload, {view.upload: None, view.search: "", view.status: "all"},
                          "bo") == {}


def test_train_form_presets_and_start_errors(store, settings):
    _demo, form = build_tab(store, settings, train)
    name = list(train.PRESETS)[-1]
    filled = train.preset_fields(form, {form.preset: name})
    assert filled == {form.beta: train.PRESETS[name]["beta"],
                      form.alpha: train.PRESETS[name]["alpha"],
                      form.lr: train.PRESETS[name]["learning_rate"]}
    with pytest.raises(gr.Error, match="No training run yet"):
        train.resume_last_run(store, settings, None)
    job_id = store.add_job("train", {"config": {"output_dir": "/runs/r1"}})
    store.transition_job(job_id, jobs.ACTIVE_STATUSES, status="succeeded")
    with pytest.raises(gr.Error, match="nothing to resume"):
        train.resume_last_run(store, settings, None)


def form_values(form: train.TrainForm, settings, **changes) -> dict:
    typed = dict(model=str(settings.data_dir), data_choice=train.DATA_CHOICES[0], data_dir="",
                 preset=next(iter(train.PRESETS)), beta=0.25, alpha=0.5, lr=1e-3, epochs=1,
                 max_steps=2, lora=True, lora_r=8, max_frames=4,
                 output_dir=str(settings.data_dir / "runs" / "r1"), save_steps=7, resume=False)
    typed.update(changes)
    return {getattr(form, name): value for name, value in typed.items()}


@pytest.mark.usefixtures("stop_workers")
def test_start_training_checks_the_form_for_the_signed_in_user_then_queues_the_job(
        store, settings, tmp_path):
    root = tmp_path / "library"  # admins may also write below a library root
    root.mkdir()
    shared = settings.with_(auth="ana:pw1,bo:pw2", admins="ana", library_roots=str(root))
    demo, form = build_tab(store, shared, train)
    start = wired(demo, "train-start")
    in_root = form_values(form, shared, output_dir=str(root / "run"))
    with pytest.raises(gr.Error, match="No accepted pairs"):
        call_as_gradio(start, in_root, "ana")
    video_id = store.add_video({"path": "/v/a.mp4", "name": "a.mp4", "sha256": "a" * 64,
                                "status": "ready", "duration_s": 60.0})
    pair_id, = store.save_generation(video_id, "k", [{
        "kind": "localized", "strategy": "irrelevant", "question": "Q?", "chosen": "c",
        "rejected": "r", "segment_start": 1.0, "segment_end": 5.0, "chosen_timestamps": [1.0],
        "rejected_timestamps": [9.0], "status": "pending", "filter_verdict": "kept",
        "filter_reason": None}], params={}, seconds=0)
    review(store, pair_id, "accept", user="ana")
    # bo is no admin: his output folder must stay under the app's own runs folder.
    with pytest.raises(gr.Error, match="output folder must be below"):
        call_as_gradio(start, in_root, "bo")
    assert jobs.list_jobs(store, kind="train") == []
    out = call_as_gradio(start, in_root, "ana")
    (row,) = jobs.list_jobs(store, kind="train")
    status, timer = sorted(out, key=lambda c: isinstance(c, gr.Timer))
    assert status.elem_id == "train-job" and f'data-job-id="{row["id"]}"' in out[status]
    assert out[timer].value == train.BUSY_POLL_S  # the panel polls fast at once
    config = row["params"]["config"]
    assert (config["beta"], config["save_steps"], config["resume"]) == (0.25, 7, False)
    assert config["output_dir"] == str((root / "run").resolve())
