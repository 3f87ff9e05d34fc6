"""Access and safety of the app's review and library actions (issue 11 items 3, 4, 5, 7, 8).

Protects:
- bulk accept/reject never overwrites a decision made after the reviewer loaded the queue:
  such pairs are skipped and named (library and the Curate tab's confirm handler);
- adding videos by a server path in a shared app (log-ins): admins only, and only below the
  library roots, with symlinks and ``..`` resolved first; uploads stay open to everyone; a
  single local user keeps adding any path;
- file names, paths, texts, user names and errors are escaped wherever the app renders them
  as Markdown or HTML (a file named ``<img src=x onerror=alert(4)>.mp4`` stays text);
- ingest, upload and restore record the logged-in user, not the OS user;
- the Train tab submits "save a checkpoint every N steps" and "resume", and a resumed train
  job continues from the last checkpoint.

Handlers are the app's own: the tests build the real Blocks (``ui.app.build_app``) and call
the functions Gradio would call for a button, with a ``gr.Request`` carrying the log-in.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import gradio as gr
import pytest
from markdown_it import MarkdownIt
from media import make_video
from ui_tabs import build_tab, curate_tab, login, page_values, shown
from ui_tabs import wired as handler

from tpo import access, jobs
from tpo.config import Settings
from tpo.media.library import ingest
from tpo.curation.review import bulk_review, review
from tpo.store import ConflictError
from ui import curate, library, train
from ui.app import build_app
from ui.header import header_markdown, whoami
from ui.html import escape_md

EVIL = "<img src=x onerror=alert(4)>"


def make_pairs(store, n=3, name="a.mp4"):
    video_id = store.add_video({"path": f"/v/{name}", "name": name, "sha256": "a" * 64,
                                "status": "ready", "duration_s": 60.0})
    rows = [{"kind": "localized", "strategy": "irrelevant", "question": f"Q{i}?",
             "chosen": f"chosen {i}", "rejected": f"rejected {i}", "segment_start": 1.0,
             "segment_end": 5.0, "chosen_timestamps": [1.0, 2.0], "rejected_timestamps": [9.0],
             "status": "pending", "filter_verdict": "kept", "filter_reason": None}
            for i in range(n)]
    return store.save_generation(video_id, "k", rows, params={}, seconds=0)


def db_hash(settings) -> str:
    return hashlib.sha256(Path(settings.db_path).read_bytes()).hexdigest()


def rendered(markdown: str) -> str:
    """The HTML a CommonMark renderer makes of the app's Markdown (raw HTML passes through,
    as in Gradio's Markdown before its sanitizer)."""
    return MarkdownIt("commonmark").render(markdown)


@pytest.fixture
def shared(settings, tmp_path):
    """A shared app: two log-ins, ana is an admin, one library root."""
    root = tmp_path / "library"
    root.mkdir()
    return settings.with_(auth="ana:pw1,bo:pw2", admins="ana", library_roots=str(root)), root


# --------------------------------------------------------------------------------------------
# 3. Bulk actions carry the versions the reviewer saw


def test_bulk_accept_skips_and_names_pairs_changed_since_loading(store):
    ids = make_pairs(store, 3)
    seen = {p["id"]: p["version"] for p in store.list_pairs()}  # ana loads her queue
    review(store, ids[1], "reject", user="bo")  # then bo rejects pair 2
    result = bulk_review(store, seen, "accept", user="ana")
    assert result.changed == [ids[0], ids[2]]
    assert ([(s["id"], s["status"], s["user"]) for s in result.skipped]
            == [(ids[1], "rejected", "bo")])
    assert result.skipped_text() == f"#{ids[1]} (rejected by bo)"
    assert store.get_pair(ids[1])["status"] == "rejected"
    assert [r["user"] for r in store.reviews(ids[1])] == ["bo"]  # no row by ana


def test_bulk_with_current_versions_and_already_done_pairs(store):
    ids = make_pairs(store, 3)
    review(store, ids[0], "accept", user="ana")
    seen = {p["id"]: p["version"] for p in store.list_pairs()}
    result = bulk_review(store, seen, "accept", user="bo")
    # ana's accepted pair: bo's own decision is recorded beside hers (agreement counts it).
    assert (result.changed, result.agreed, result.unchanged, result.skipped) == (
        ids[1:], [ids[0]], [], [])
    # A deleted (unknown) pair is skipped, not an error that undoes the rest.
    result = bulk_review(store, {ids[0]: 3, 999: 1}, "reject", user="bo")
    assert result.changed == [ids[0]] and result.skipped[0]["id"] == 999
    assert "(deleted)" in result.skipped_text()
    with pytest.raises(ValueError, match="user"):
        bulk_review(store, ids, "accept", user=" ")


def test_curate_bulk_confirm_skips_what_another_reviewer_changed(store, settings):
    ids = make_pairs(store, 3)
    shared = settings.with_(auth="ana:pw1,bo:pw2")
    tab = curate_tab(store, shared)
    loaded = curate.load_queue(store, shared, tab, page_values(tab), login("ana"))
    queue, versions = loaded[tab.queue], loaded[tab.seen]
    assert queue == ids and versions == {i: 1 for i in ids}
    values = shown(page_values(tab), loaded)
    # ana accepts pair 1 herself (her own change does not make it "changed since")...
    out = curate.on_action(store, shared, tab, "accept", values, login("ana"))
    versions = out[tab.seen]
    assert versions[ids[0]] == 2
    # ...bo rejects pair 2 in his own browser, then ana bulk-rejects her stale queue.
    review(store, ids[1], "reject", user="bo", expected_version=1)
    values = shown(values, {**out, tab.bulk: "reject", tab.position: 0})
    out = curate.on_bulk_confirm(store, shared, tab, values, login("ana"))
    message = out[tab.message]
    assert "Skipped 1 pairs changed since you loaded the queue" in message
    assert f"\\#{ids[1]} \\(rejected by bo\\)" in message
    assert "Rejected 2 pairs" in message
    assert [store.get_pair(i)["status"] for i in ids] == ["rejected"] * 3
    assert [r["user"] for r in store.reviews(ids[1])] == ["bo"]
    assert [r["user"] for r in store.reviews(ids[0])] == ["ana", "ana"]
    assert out[tab.seen][ids[0]] == 3 and out[tab.seen][ids[2]] == 2  # a second bulk may follow


# --------------------------------------------------------------------------------------------
# 4. Adding by server path in a shared app


def test_settings_read_admins_and_roots_from_the_environment(tmp_path):
    env = {"TPO_DATA_DIR": str(tmp_path), "TPO_AUTH": "ana:pw", "TPO_ADMINS": "ana, bo",
           "TPO_LIBRARY_ROOTS": os.pathsep.join([str(tmp_path / "a"), str(tmp_path / "b" / "..")])}
    s = Settings.from_env(env)
    assert s.multi_user and s.admin_names() == {"ana", "bo"}
    assert s.library_root_paths() == [(tmp_path / "a").resolve(), tmp_path.resolve()]
    assert not Settings(data_dir=tmp_path).multi_user


def library_add(store, settings):
    """(demo, the Library tab's components, ``on_add(text, request)``: the Add button's
    handler with the path typed and the table's filters at their defaults)."""
    demo, tab = build_tab(store, settings, library)
    view, fn = tab.view, handler(demo, "library-add")

    def on_add(text: str, request: gr.Request) -> dict:
        return fn({view.add_path: text, view.search: "", view.status: "all"}, request, None)
    return demo, view, on_add


def test_non_admin_cannot_add_by_path_and_nothing_is_ingested(store, shared):
    settings, root = shared
    clip = make_video(root / "clip.mp4", duration_s=1, fps=4)
    demo, view, on_add = library_add(store, settings)
    before = db_hash(settings)
    with pytest.raises(gr.Error, match="TPO_ADMINS"):
        on_add(str(clip), login("bo"))
    assert store.counts()["videos"] == 0 and db_hash(settings) == before
    # The path box is hidden from bo and shown to ana when the page loads.
    show = next(f.fn for f in demo.fns.values()
                if getattr(f.fn, "__name__", "") == "show_add_path")
    assert show(login("bo"), None)[view.add_path_box]["visible"] is False
    assert show(login("ana"), None)[view.add_path_box]["visible"] is True
    assert access.can_add_by_path(settings, "ana") and not access.can_add_by_path(settings, "bo")


def test_admin_cannot_escape_the_library_roots(store, shared, tmp_path):
    settings, root = shared
    outside = tmp_path / "private"
    outside.mkdir()
    secret = make_video(outside / "secret.mp4", duration_s=1, fps=4)
    (root / "inner").mkdir()
    (root / "link.mp4").symlink_to(secret)                 # a file link out of the root
    (root / "linked-folder").symlink_to(outside)           # a folder link out of the root
    (root / "inner" / "sneaky.mp4").symlink_to(secret)     # a link inside a folder in the root
    _demo, _view, on_add = library_add(store, settings)
    before = db_hash(settings)
    for attempt in (str(secret), f"{root}/../private/secret.mp4", str(root / "link.mp4"),
                    str(root / "linked-folder"), str(root / "inner"), str(root),
                    f"{root / 'clip.mp4'}\n{secret}", "/etc/passwd", "/no/such/file.mp4"):
        with pytest.raises(gr.Error, match="outside the library folders"):
            on_add(attempt, login("ana"))
    assert store.counts()["videos"] == 0 and db_hash(settings) == before


def test_without_roots_adding_by_path_is_off_with_a_hint(store, shared):
    settings, root = shared
    clip = make_video(root / "clip.mp4", duration_s=1, fps=4)
    with pytest.raises(access.AccessError, match="TPO_LIBRARY_ROOTS"):
        access.check_server_paths(settings.with_(library_roots=""), "ana", [clip])
    _demo, _view, on_add = library_add(store, settings.with_(library_roots=""))
    with pytest.raises(gr.Error, match="TPO_LIBRARY_ROOTS"):
        on_add(str(clip), login("ana"))
    assert store.counts()["videos"] == 0


def test_admin_inside_a_root_adds_videos_recorded_under_her_name(store, shared):
    settings, root = shared
    (root / "sub").mkdir()
    make_video(root / "sub" / "one.mp4", duration_s=1, fps=4)
    make_video(root / "two.mp4", duration_s=1.5, fps=4)
    _demo, view, on_add = library_add(store, settings)
    result = on_add(f"{root}/sub/../sub\n{root / 'two.mp4'}\n{root / 'gone.mp4'}", login("ana"))
    assert "added 2" in result[view.add_result]
    videos = store.list_videos()
    assert sorted(v["name"] for v in videos) == ["one.mp4", "two.mp4"]
    assert {v["added_by"] for v in videos} == {"ana"}  # item 7: not the OS user "tester"
    assert "gone" in result[view.add_result]  # a missing path is reported, as before


def test_single_local_user_adds_any_path_as_before(store, settings, tmp_path):
    (tmp_path / "anywhere").mkdir()
    clip = make_video(tmp_path / "anywhere" / "clip.mp4", duration_s=1, fps=4)
    _demo, _view, on_add = library_add(store, settings)
    on_add(str(clip), login(None))
    (row,) = store.list_videos()
    assert row["path"] == str(clip.resolve()) and row["added_by"] == "tester"


# --------------------------------------------------------------------------------------------
# 7. Upload and restore record the logged-in user


def test_upload_and_restore_record_the_logged_in_user(store, shared, tmp_path):
    settings, _root = shared
    demo, tab = build_tab(store, settings, library)
    view, filters = tab.view, {tab.view.search: "", tab.view.status: "all"}
    upload = handler(demo, "library-upload", "upload")
    (tmp_path / "up").mkdir()
    clip = make_video(tmp_path / "up" / "clip.mp4", duration_s=1, fps=4)
    upload({view.upload: [str(clip)], **filters}, login("bo"), None)  # open to non-admins
    (row,) = store.list_videos()
    assert row["added_by"] == "bo"
    pair_id, = store.save_generation(row["id"], "k", [{
        "kind": "localized", "strategy": "irrelevant", "question": "Q?", "chosen": "c",
        "rejected": "r", "segment_start": 0.0, "segment_end": 1.0, "chosen_timestamps": [0.1],
        "rejected_timestamps": [0.9], "status": "filtered", "filter_verdict": "dropped",
        "filter_reason": "too short"}], params={}, seconds=0)
    restore = handler(demo, "pair-restore")
    restore({view.selected_pair: pair_id, view.selected: row["id"], **filters}, login("ana"),
            None)
    (audit,) = store.reviews(pair_id)
    assert (audit["user"], audit["action"]) == ("ana", "restore")


# --------------------------------------------------------------------------------------------
# 5. HTML injection through names and texts


def _no_tag(text: str) -> None:
    assert "<img" not in text and "<script" not in text
    assert "&lt;img" in text or "&lt;script" in text


def test_a_video_named_like_an_html_tag_renders_as_text(store, settings, tmp_path):
    clip = make_video(tmp_path / f"{EVIL}.mp4", duration_s=1, fps=4)
    ingest(store, [clip], user=EVIL)
    row = store.get_video(1)
    details = library.video_details(row)
    _no_tag(details)
    _no_tag(rendered(details))
    assert "alert(4)&gt;.mp4" in rendered(details)  # reads as the file's name
    _player, shown, _strip, _pairs = library.show_video(store, settings, 1)
    _no_tag(shown)
    Path(clip).unlink()  # the "missing file" line quotes the path too
    _no_tag(library.show_video(store, settings, 1)[1])
    report = ingest(store, [tmp_path / f"{EVIL}.mp4"])  # a failure names the file
    _no_tag(library._report_markdown(report))
    _no_tag(header_markdown(store, settings.with_(user=EVIL)))
    _no_tag(whoami(settings.with_(auth="x:y"), login(EVIL)))


def test_with_log_ins_the_header_names_no_os_user_and_each_browser_sees_its_own(store,
                                                                               settings):
    shared = settings.with_(auth="ana:pw,bo:pw", user="osuser")
    assert "osuser" not in header_markdown(store, shared)
    assert "osuser" in header_markdown(store, settings.with_(user="osuser"))  # single user
    assert "ana" in whoami(shared, login("ana")) and "bo" in whoami(shared, login("bo"))
    assert whoami(settings, login("ana")) == ""


def test_curate_meta_texts_and_errors_are_escaped(store, settings):
    (pair_id,) = make_pairs(store, 1, name=f"{EVIL}.mp4")
    review(store, pair_id, "edit", user=EVIL, question="<script>alert(1)</script>?",
           chosen="<img src=y onerror=alert(2)>")
    view = curate.View.of(store, settings, pair_id, "1 of 1")
    question, meta, originals = view[2], view[3], view[12]
    for text in (question, meta, rendered(meta), originals, rendered(originals)):
        assert "<img" not in text and "<script" not in text
    with pytest.raises(ConflictError) as conflict:
        review(store, pair_id, "accept", user="bo", expected_version=1)
    assert "<img" not in escape_md(conflict.value)
    tab = curate_tab(store, settings)
    values = {**page_values(tab), tab.queue: [pair_id], tab.view.pair_id: pair_id,
              tab.view.version: 1, tab.seen: {pair_id: 1}}
    message = curate.on_action(store, settings, tab, "accept", values, login("bo"))[tab.message]
    assert "Not saved" in message and "<img" not in message and "&lt;img" in message


def test_escape_md_keeps_markdown_literal():
    text = "a_b *c* [x](javascript:alert(1)) `code`\n# heading"
    html = rendered(escape_md(text))
    assert "<a" not in html and "<em>" not in html and "<code>" not in html
    assert "<h1>" not in html
    assert "[x](javascript:alert(1))" in html


def test_train_summary_escapes_paths_and_fences_the_command():
    row = {"status": "succeeded", "output": {
        "output_dir": f"/runs/{EVIL}", "global_step": 3, "command": "tpo train ```\n<b>x</b>"}}
    text = train.summary_markdown(row)
    html = rendered(text)
    assert "<img" not in html and "<b>" not in html
    assert "&lt;b&gt;x&lt;/b&gt;" in html


# --------------------------------------------------------------------------------------------
# 8. Train tab: checkpoints every N steps, resume


def _form(settings, **changes):
    values = dict(model_text=str(settings.data_dir), choice=train.DATA_CHOICES[0], folder="",
                  preset_name=next(iter(train.PRESETS)), beta=0.1, alpha=0.5, rate=1e-3,
                  n_epochs=1, steps=2, use_lora=True, rank=8, frames=4,
                  out=str(settings.data_dir / "runs" / "r1"), save_every=7, resume=False)
    values.update(changes)
    return values


def test_train_form_carries_save_steps_and_resume(store, settings):
    make_pairs(store, 1)
    review(store, 1, "accept", user="ana")
    params = train.train_params(store, settings, **_form(settings))
    assert params["config"]["save_steps"] == 7 and params["config"]["resume"] is False
    params = train.train_params(store, settings, **_form(settings, resume=True, save_every=1))
    assert params["config"]["save_steps"] == 1 and params["config"]["resume"] is True
    with pytest.raises(gr.Error, match="output folder"):
        train.train_params(store, settings, **_form(settings, resume=True, out=""))
    with pytest.raises(gr.Error, match="at least 1"):
        train.train_params(store, settings, **_form(settings, save_every=0))
    # The form's default is TPO's default for the run (100).
    demo = build_app(store, settings)
    box = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "train-save-steps")
    assert box.value == train.TRAINER_DEFAULTS["save_steps"] == 100


def test_resume_the_last_run_only_for_a_failed_or_cancelled_one():
    config = {"model": "m", "output_dir": "/runs/r1", "resume": False, "overwrite": True,
              "save_steps": 5}
    row = {"id": 3, "status": "cancelled", "params": {"config": config, "launcher": "python"}}
    params = train.resume_params(row)
    assert params["config"]["resume"] is True and params["config"]["overwrite"] is False
    assert params["config"]["output_dir"] == "/runs/r1" and params["config"]["save_steps"] == 5
    assert config["resume"] is False  # the stored row is not changed
    for status in ("running", "queued", "succeeded"):
        with pytest.raises(gr.Error):
            train.resume_params({**row, "status": status})
    with pytest.raises(gr.Error, match="No training run"):
        train.resume_params(None)


def test_a_train_job_submitted_with_resume_continues_from_the_last_checkpoint(
        tiny_smolvlm_dir, store, settings, tmp_path):
    clip = make_video(tmp_path / "clip.mp4", duration_s=4, fps=4)
    video_id = ingest(store, [clip], user="ana").added[0]
    ids = store.save_generation(video_id, "k", [{
        "kind": "comprehensive", "strategy": "dense-sparse", "question": f"What is shown {i}?",
        "chosen": "Bars that count up.", "rejected": "A dog.", "segment_start": None,
        "segment_end": None, "chosen_timestamps": [0.5, 1.5, 2.5], "rejected_timestamps": [0.5],
        "prompt": "q", "status": "pending", "generator": {"model": "tiny"},
        "filter_verdict": "kept"} for i in range(2)], params={}, seconds=0)
    bulk_review(store, ids, "accept", user="ana")
    out = tmp_path / "run"
    form = _form(settings, model_text=str(tiny_smolvlm_dir), out=str(out), save_every=1)
    first = jobs.submit(store, "train", train.train_params(store, settings, **form),
                        log_dir=settings.log_dir)
    row = jobs.wait(store, first, 240)
    assert row["status"] == "succeeded", jobs.log_tail(row)
    assert (out / "checkpoint-2").is_dir()
    resumed = jobs.submit(store, "train", train.train_params(
        store, settings, **{**form, "steps": 3, "resume": True}), log_dir=settings.log_dir)
    row = jobs.wait(store, resumed, 240)
    assert row["status"] == "succeeded", jobs.log_tail(row)
    assert row["output"]["global_step"] == 3
    assert row["output"]["resumed_from"] == str((out / "checkpoint-2").resolve())
    assert [m["step"] for m in jobs.metrics(store, resumed, "loss")] == [3]


# --------------------------------------------------------------------------------------------
# 1 and 4 (beside): folders typed into the page, and who downloads an export


def test_shared_app_keeps_typed_folders_inside_the_apps_own(store, shared, tmp_path):
    settings, root = shared
    make_pairs(store, 1)
    review(store, 1, "accept", user="ana")
    elsewhere = tmp_path / "elsewhere"
    for user in ("bo", "ana"):  # not even an admin writes outside data/ and the roots
        with pytest.raises(gr.Error, match="must be below"):
            curate.export_params(store, settings, user, str(elsewhere), "jsonl", "whole", 8)
        with pytest.raises(gr.Error, match="must be below"):
            train.train_params(store, settings, **_form(settings, out=str(elsewhere)), user=user)
        with pytest.raises(gr.Error, match="must be below"):  # reading a folder to train on
            train.train_params(store, settings, user=user, **_form(
                settings, choice=train.DATA_CHOICES[1], folder=str(elsewhere / ".." / "x")))
    inside = settings.data_dir / "exports" / "mine"
    params = curate.export_params(store, settings, "bo", str(inside), "jsonl", "whole", 8)
    assert (params["out_dir"], params["user"]) == (str(inside.resolve()), "bo")
    # An admin may also write below a library root; bo may not.
    assert curate.export_params(store, settings, "ana", str(root / "out"), "jsonl", "whole", 8)
    with pytest.raises(gr.Error, match="must be below"):
        curate.export_params(store, settings, "bo", str(root / "out"), "jsonl", "whole", 8)
    # A single local user names any folder, as on their own machine.
    local = settings.with_(auth="", admins="", library_roots="")
    assert curate.export_params(store, local, "me", str(elsewhere), "jsonl", "whole", 8)


def test_only_who_asked_for_an_export_downloads_it(store, shared, tmp_path):
    settings, _root = shared
    video_id = ingest(store, [make_video(tmp_path / "clip.mp4", duration_s=2, fps=4)]).added[0]
    store.save_generation(video_id, "k", [{
        "kind": "localized", "strategy": "irrelevant", "question": "Q?", "chosen": "c",
        "rejected": "r", "segment_start": 0.0, "segment_end": 1.0, "chosen_timestamps": [0.5],
        "rejected_timestamps": [1.5], "status": "pending", "filter_verdict": "kept",
        "filter_reason": None}], params={}, seconds=0)
    review(store, 1, "accept", user="ana")
    params = curate.export_params(store, settings, "ana", "", "jsonl", "whole", 4)
    job = jobs.submit(store, "export", params, log_dir=settings.log_dir)
    assert jobs.wait(store, job, 120)["status"] == "succeeded"
    assert curate.last_export(store, settings, "ana")["id"] == job
    with pytest.raises(gr.Error, match="No finished export of yours"):
        curate.last_export(store, settings, "bo")
    local = settings.with_(auth="", admins="", library_roots="")
    assert curate.last_export(store, local, "anyone")["id"] == job


def test_curate_my_share_loads_only_the_reviewers_own_undecided_pairs(store, settings):
    """Under log-ins, "my share" is the logged-in reviewer's assignment (tpo assign / the Team
    tab), never another reviewer's pairs, and a pair they decided leaves it."""
    from tpo.curation.teams import assign

    ids = make_pairs(store, 4)
    assign(store, ["ana", "bo"], by="count", user="ana")
    shared = settings.with_(auth="ana:pw1,bo:pw2")
    tab = curate_tab(store, shared)

    def on_load(share, request):
        values = page_values(tab, sort="oldest", user="", share=share)
        return curate.load_queue(store, shared, tab, values, request)[tab.queue]

    ana = on_load("my share", login("ana"))
    bo = on_load("my share", login("bo"))
    assert sorted(ana + bo) == ids and not set(ana) & set(bo) and ana and bo
    assert on_load("all pairs", login("bo")) == ids
    review(store, ana[0], "accept", user="ana")
    assert on_load("my share", login("ana")) == ana[1:]
