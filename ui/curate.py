"""The Curate tab: review preference pairs against the video evidence, at keyboard speed.

A queue of pairs (filters, search, sort) and the current pair: its question, a timeline with
the segment and the frames each side saw, both answers side by side with their frame strips,
the actions, and beside them the player, the question, a note and the generated texts.
Keys and the instant swap to the next pair live in the browser (:mod:`ui.curate_keys`); what
one pair shows is :mod:`ui.curate_view`. An action does one read and one write of the pair,
then answers with the new pair's view, the views either side of it (prefetched for the
next key press) and the counters; the page header refreshes on its own timer.

Every action goes through :func:`tpo.curation.review.review` with the version the reviewer saw, so a
concurrent change by someone else is refused and shown rather than overwritten; bulk actions
carry the versions of the queue as loaded and skip (and list) pairs changed since. **U** undoes
the reviewer's last action (:func:`tpo.curation.review.undo`, itself audited). Accept warns
once before accepting a pair whose chosen answer is empty or cut off. An empty pending queue
with filtered pairs says how many per reason, and shows or restores them.
Texts from files, models and people are escaped before they go into HTML or Markdown.
"""

from __future__ import annotations

from dataclasses import dataclass

import shutil
import time
from pathlib import Path

import gradio as gr

from tpo import access, jobs
from tpo.curation import review as reviews
from tpo.config import Settings
from tpo.errors import TPOError
from tpo.store import PAIR_STATUSES, ConflictError, Store, StoreError
from ui import curate_keys, html
from ui.curate_view import (PARTS, View, counters_html, guide_html, position_text,
                            prefetch_html)
from ui.html import escape_html, escape_md
from ui.identity import current_user
from ui.jobs import JobPanel
from ui.team import guidelines_markdown

__all__ = ["ANY", "Filters", "View", "build", "bulk_confirm", "counters_html", "export_panel",
           "export_params", "last_export"]

ANY = "any"
ALL_REASONS = ""  # the guide's reason choice meaning every filtered pair
SORTS = {"pending first": "pending-first", "oldest": "id", "newest": "newest"}
ALL_PAIRS, MY_SHARE = "all pairs", "my share"  # the "Pairs" filter: everyone's or my assignment


@dataclass
class Filters:
    status: str
    kind: str
    strategy: str
    video: str
    reason: str
    search: str
    sort: str

    def query(self) -> dict:
        pick = lambda v: None if v in (ANY, "", None) else v  # noqa: E731
        video_id = None if self.video in (ANY, "", None) else int(str(self.video).split(" ")[0].lstrip("#"))
        return {"status": pick(self.status), "kind": pick(self.kind), "strategy": pick(self.strategy),
                "video_id": video_id, "reason": (self.reason or "").strip(),
                "search": (self.search or "").strip(),
                "order": SORTS.get(self.sort, "pending-first")}


def build(store: Store, settings: Settings) -> None:
    """Lay out the tab inside the current Blocks and wire its events."""
    logins = settings.logins()
    queue = gr.State([])
    position = gr.State(0)
    pair_id = gr.State(None)
    version = gr.State(None)
    # [pair id, version, warning] while Accept must warn before accepting the pair shown
    caution = gr.State(None)
    pending_bulk = gr.State(None)  # "accept"/"reject" awaiting confirmation
    # {pair id: version} as the queue was loaded (then as this reviewer changed them): what a
    # bulk action may change; pairs someone else changed since are skipped.
    seen = gr.State({})
    # {part: value} this browser was last sent, so an answer sends only what changed
    sent_state = gr.State(None)

    bare = {"apply_default_css": False, "js_on_load": None}  # gr.HTML without prose styles
    with gr.Row(equal_height=True, elem_id="curate-filters"):
        user = gr.Textbox(settings.user, label="Your name", min_width=110,
                          visible=not (logins or settings.hf_oauth), elem_id="curate-user")
        if settings.hf_oauth:
            gr.LoginButton(scale=0)
        f_status = gr.Dropdown([ANY, *PAIR_STATUSES], value="pending", label="Status", min_width=100)
        f_kind = gr.Dropdown([ANY, "localized", "comprehensive"], value=ANY, label="Kind", min_width=100)
        f_strategy = gr.Dropdown([ANY, "irrelevant", "incomplete", "dense-sparse"], value=ANY,
                                 label="Strategy", min_width=100)
        f_video = gr.Dropdown([ANY], value=ANY, label="Video", min_width=120,
                              allow_custom_value=True)
        f_reason = gr.Textbox(label="Filter reason", min_width=100, max_lines=1,
                              elem_id="curate-reason")
        f_search = gr.Textbox(label="Search text", min_width=110, max_lines=1,
                              elem_id="curate-search")
        f_sort = gr.Dropdown(list(SORTS), value="pending first", label="Sort", min_width=100)
        # "my share": the pairs assigned to this reviewer that they have not decided yet
        f_share = gr.Dropdown([ALL_PAIRS, MY_SHARE], value=ALL_PAIRS, label="Pairs",
                              min_width=100, elem_id="curate-share")
        load = gr.Button("Load queue", elem_id="curate-load", scale=0, min_width=90)
    with gr.Row(equal_height=True):
        counters = gr.HTML(lambda: counters_html(store), elem_id="curate-counters-box", scale=3,
                           **bare)
        message = gr.Markdown(elem_id="curate-message", scale=4)
    with gr.Group(visible=False, elem_id="curate-guide") as guide_box:
        guide = gr.HTML(elem_id="curate-guide-box", **bare)
        with gr.Row(equal_height=True):
            guide_reason = gr.Dropdown([("all reasons", ALL_REASONS)], value=ALL_REASONS,
                                       label="Filtered for", elem_id="curate-guide-reason", scale=2)
            show_filtered = gr.Button("Show them", elem_id="curate-guide-show", scale=1)
            restore_filtered = gr.Button("Restore all to pending", variant="primary",
                                         elem_id="curate-guide-restore", scale=1)
    question = gr.HTML(html.note("Load the queue to start reviewing."),
                       elem_id="curate-question-box", **bare)
    meta = gr.HTML(elem_id="curate-meta", **bare)
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=480):
            timeline = gr.HTML(elem_id="curate-timeline", **bare)
            with gr.Row(equal_height=False):
                with gr.Column(min_width=220):
                    chosen_title = gr.HTML(elem_id="curate-chosen-title", **bare)
                    chosen = gr.Textbox(show_label=False, lines=3, max_lines=8,
                                        placeholder="Chosen answer (editable)",
                                        elem_id="curate-chosen")
                    chosen_strip = gr.HTML(elem_id="curate-chosen-strip-box", **bare)
                with gr.Column(min_width=220):
                    rejected_title = gr.HTML(elem_id="curate-rejected-title", **bare)
                    rejected = gr.Textbox(show_label=False, lines=3, max_lines=8,
                                          placeholder="Rejected answer (editable)",
                                          elem_id="curate-rejected")
                    rejected_strip = gr.HTML(elem_id="curate-rejected-strip-box", **bare)
            warning = gr.HTML(elem_id="curate-warning-box", **bare)
            with gr.Row(elem_id="curate-actions"):
                accept = gr.Button("Accept [A]", size="sm", variant="primary",
                                   elem_id="curate-accept")
                reject = gr.Button("Reject [R]", size="sm", variant="stop", elem_id="curate-reject")
                swap = gr.Button("Swap [S]", size="sm", elem_id="curate-swap")
                save = gr.Button("Save [Ctrl+Enter]", size="sm", elem_id="curate-save")
                undo = gr.Button("Undo [U]", size="sm", elem_id="curate-undo")
                prev = gr.Button("◀ Prev [P]", size="sm", elem_id="curate-prev")
                nxt = gr.Button("Next [N] ▶", size="sm", elem_id="curate-next")
        with gr.Column(scale=2, min_width=320):
            player = gr.HTML(elem_id="curate-player-box", **bare)
            edit_question = gr.Textbox(label="Question (editable) · E edits the chosen answer, "
                                       "Esc leaves a box", lines=1, max_lines=4,
                                       elem_id="curate-question-edit")
            note = gr.Textbox(label="Note (saved with the next action)", elem_id="curate-note")
            with gr.Accordion("Original (generated) texts", open=False):
                originals = gr.Markdown(elem_id="curate-originals")
            # The team's review guidelines (set in the Team tab, versioned), read at page load.
            with gr.Accordion("Guidelines", open=True, elem_id="curate-guidelines-box"):
                gr.Markdown(lambda: guidelines_markdown(store) or
                            "*No guidelines yet (the Team tab sets them).*",
                            elem_id="curate-guidelines")
    # The views either side of the current pair, for the browser to show at once (hidden).
    prefetch = gr.HTML(elem_id=curate_keys.PREFETCH_ID, head=curate_keys.head(), **bare)
    with gr.Row():
        bulk_accept = gr.Button("Accept all in this queue…", size="sm", elem_id="curate-bulk-accept")
        bulk_reject = gr.Button("Reject all in this queue…", size="sm", elem_id="curate-bulk-reject")
    with gr.Row(visible=False) as confirm_row:
        confirm_text = gr.Markdown(elem_id="curate-bulk-question")
        confirm = gr.Button("Confirm", variant="primary", size="sm", elem_id="curate-bulk-confirm")
        cancel = gr.Button("Cancel", size="sm", elem_id="curate-bulk-cancel")

    export_panel(store, settings)

    filters = [f_status, f_kind, f_strategy, f_video, f_reason, f_search, f_sort]
    # In the order of curate_view.PARTS
    shown = [pair_id, version, question, meta, timeline, player, chosen_title, chosen, chosen_strip,
             rejected, rejected_title, rejected_strip, originals, edit_question, warning, note,
             caution]
    assert len(shown) == len(PARTS)

    def who(typed: str, request: gr.Request | None, profile: gr.OAuthProfile | None) -> str:
        return current_user(settings, typed, request, profile)

    def render(ids: list[int], pos: int, confirmed: bool = False) -> tuple:
        if not ids:
            return View.empty("No pairs match these filters.")
        pos = max(0, min(pos, len(ids) - 1))
        try:
            return View.of(store, settings, ids[pos], position_text(pos, len(ids)), confirmed)
        except StoreError as err:
            return View.empty(str(err))

    def ahead(ids: list[int], pos: int) -> str:
        return prefetch_html(store, settings, ids, pos) if ids else ""

    def answer(ids, pos, text, versions, sent, confirmed=False) -> tuple:
        """``(position, *view, message, counters, prefetch, sent, versions)`` for the pair at
        ``pos``; what this browser already shows (``sent``: what it was sent last) is left
        as it is (``gr.skip()``), so only the parts that change travel and re-render."""
        values = dict(zip(PARTS, render(ids, pos, confirmed)))
        values.update(counters=counters_html(store), prefetch=ahead(ids, pos))
        fresh, sent = only_new(values, sent)
        return (pos, *(fresh[name] for name in PARTS), text, fresh["counters"],
                fresh["prefetch"], sent, versions)

    def guided(query: dict, ids: list[int]) -> tuple:
        """The guide's box, text and reasons: shown when nothing is pending but the
        generation's filters set pairs aside."""
        reasons = store.filtered_reasons() if not ids and query["status"] == "pending" else {}
        if not reasons:
            return gr.update(visible=False), "", gr.update()
        total = sum(reasons.values())
        choices = [(f"all reasons ({total})", ALL_REASONS),
                   *[(f"{reason} ({n})", reason) for reason, n in reasons.items()]]
        return (gr.update(visible=True), guide_html(reasons),
                gr.update(choices=choices, value=ALL_REASONS))

    def on_load(*values, note_text: str = "", reviewer: str | None = None):
        query = Filters(*values).query()
        try:  # ids and versions only, in SQL: nothing is decoded that is not shown
            rows = store.queue_versions(**query, reviewer=reviewer)
        except StoreError as err:
            raise gr.Error(escape_html(err))
        ids = [pair_id for pair_id, _ in rows]
        videos = [ANY] + [f"#{v['id']} {v['name']}" for v in store.list_videos() if v["status"] == "ready"]
        shown_now = answer(ids, 0, note_text, dict(rows), None)
        *view, text, counted, ahead_html, sent, versions = shown_now
        return (ids, *view, text, counted, gr.update(choices=videos), *guided(query, ids),
                ahead_html, sent, versions)

    def on_move(ids, pos, step, sent=None):
        pos = max(0, min(pos + step, len(ids) - 1)) if ids else 0
        return answer(ids, pos, "", gr.skip(), sent)

    def on_action(action, ids, pos, current, seen_version, typed, q, c, r, note_text, versions,
                  request, profile, warn=None, sent=None):
        if current is None:
            raise gr.Error("No pair loaded: press Load queue.")
        if action == "accept" and warn and warn[:2] == [current, seen_version]:
            # Warned once (the view now says so); the next Accept accepts.
            text = (f"⚠️ **Pair #{current} not accepted yet:** {escape_md(warn[2])}. Press "
                    "Accept [A] again to accept it anyway, or edit the answer first.")
            return answer(ids, pos, text, versions, sent, confirmed=True)
        kwargs = {}
        if action == "edit":
            kwargs = {"question": q, "chosen": c, "rejected": r}
        try:
            pair = reviews.review(store, current, action, user=who(typed, request, profile),
                                  expected_version=seen_version, note=note_text or None, **kwargs)
        except ConflictError as err:
            # Show the newer version in place of the reviewer's stale view.
            return answer(ids, pos, f"⚠️ **Not saved.** {escape_md(err)}", versions, sent)
        except (StoreError, ValueError) as err:
            raise gr.Error(escape_html(err))
        done = f"Pair #{current}: {action} → {pair['status']} (version {pair['version']})."
        if action in ("accept", "reject") and pos < len(ids) - 1:
            pos += 1  # on to the next pair, as a reviewer going through a queue expects
        # The reviewer's own change is not "changed since": a later bulk action may follow it.
        versions = {**(versions or {}), current: pair["version"]}
        return answer(ids, pos, done, versions, sent)

    def on_undo(ids, pos, typed, versions, request: gr.Request,
                profile: gr.OAuthProfile | None = None, sent=None):
        name = who(typed, request, profile)
        target = store.last_undoable_pair(name)
        if target is None:
            raise gr.Error(f"Nothing of {escape_html(name)}'s to undo.")
        try:
            pair = reviews.undo(store, target, user=name)
        except (TPOError, ValueError) as err:
            raise gr.Error(escape_html(err))
        if target in (ids or []):
            pos = ids.index(target)  # back to the pair, to redo it
        versions = {**(versions or {}), target: pair["version"]}
        text = (f"Undone: pair #{target} is {pair['status']} again (version {pair['version']}; "
                "the undo is recorded as an action of its own).")
        return answer(ids, pos, text, versions, sent)

    def on_bulk_ask(action, ids):
        if not ids:
            raise gr.Error("The queue is empty: load it first.")
        verb = "Accept" if action == "accept" else "Reject"
        return action, gr.update(visible=True), f"**{verb} all {len(ids)} pairs in this queue?**"

    def on_bulk_confirm(action, ids, pos, typed, versions, request: gr.Request,
                        profile: gr.OAuthProfile | None, sent=None):
        text = ""
        if action:
            text, versions = bulk_confirm(store, action, ids, versions,
                                          who(typed, request, profile))
        return (gr.update(visible=False), None, *answer(ids, pos, text, versions, sent))

    def on_restore(reason, typed, status, kind, strategy, video, reason_filter, search, sort,
                   request: gr.Request, profile: gr.OAuthProfile | None = None):
        values = (status, kind, strategy, video, reason_filter, search, sort)
        try:
            n = reviews.restore_all(store, user=who(typed, request, profile),
                                    reason=reason or None)
        except (StoreError, ValueError) as err:
            raise gr.Error(escape_html(err))
        why = f" filtered for {escape_md(reason)}" if reason else " that were filtered"
        return on_load(*values, note_text=f"Restored {n} pairs{why} to pending (each restore "
                                          "is recorded under your name).")

    after = [position, *shown]
    # What every answer with a pair's view sets, after the view: see answer()
    answered = [message, counters, prefetch, sent_state, seen]
    load_outputs = [queue, *after, message, counters, f_video, guide_box, guide, guide_reason,
                    prefetch, sent_state, seen]
    def load_queue(status, kind, strategy, video, reason, search, sort, typed, share,
                   request: gr.Request, profile: gr.OAuthProfile | None = None):
        """Load queue: with "my share", the pairs assigned to this reviewer (tpo assign, the
        Team tab) that they have not decided yet."""
        reviewer = who(typed, request, profile) if share == MY_SHARE else None
        return on_load(status, kind, strategy, video, reason, search, sort, reviewer=reviewer)

    load.click(load_queue, [*filters, user, f_share], load_outputs)
    for box in (f_search, f_reason):
        box.submit(load_queue, [*filters, user, f_share], load_outputs)
    show_filtered.click(lambda reason: ("filtered", reason or ""), guide_reason,
                        [f_status, f_reason]).then(on_load, filters, load_outputs)
    restore_filtered.click(on_restore, [guide_reason, user, *filters], load_outputs)

    # Every button the keys press ends its round trip in the browser's script, which shows
    # the next pair before the answer and puts back what the answer did not confirm.
    def keyed(event) -> None:
        event.then(None, None, None, js=curate_keys.DONE_JS)
        event.failure(None, None, None, js=curate_keys.FAILED_JS)

    quiet = {"show_progress": "hidden"}
    for button, step in ((prev, -1), (nxt, +1)):
        keyed(button.click(lambda ids, pos, sent, step=step: on_move(ids, pos, step, sent),
                           [queue, position, sent_state], [*after, *answered], **quiet))
    action_inputs = [queue, position, pair_id, version, user, edit_question, chosen, rejected, note,
                     seen, caution, sent_state]

    def handler(action: str):
        # Typed parameters, so Gradio fills in the request (log-in) and the HF profile.
        def act(ids, pos, current, seen_version, typed, q, c, r, note_text, versions,
                request: gr.Request, profile: gr.OAuthProfile | None, warn=None, sent=None):
            return on_action(action, ids, pos, current, seen_version, typed, q, c, r, note_text,
                             versions, request, profile, warn, sent)
        return act

    for button, action in ((accept, "accept"), (reject, "reject"), (swap, "swap"), (save, "edit")):
        keyed(button.click(handler(action), action_inputs, [*after, *answered], **quiet))
    keyed(undo.click(on_undo, [queue, position, user, seen, sent_state], [*after, *answered],
                     **quiet))
    bulk_accept.click(lambda ids: on_bulk_ask("accept", ids), queue, [pending_bulk, confirm_row, confirm_text])
    bulk_reject.click(lambda ids: on_bulk_ask("reject", ids), queue, [pending_bulk, confirm_row, confirm_text])
    confirm.click(on_bulk_confirm, [pending_bulk, queue, position, user, seen, sent_state],
                  [confirm_row, pending_bulk, *after, *answered])
    cancel.click(lambda: (gr.update(visible=False), None), None, [confirm_row, pending_bulk])


# View parts a browser may change itself (typing, a swapped-in view): always sent, so
# Gradio compares them with what the browser holds now, not with what it was sent.
ALWAYS_SENT = ("chosen", "rejected", "edit_question", "note")


def only_new(values: dict, sent: dict | None) -> tuple[dict, dict]:
    """``values`` with ``gr.skip()`` for each equal to what the browser was last sent
    (``sent``, None: nothing yet), and the new record of what it was sent."""
    sent = dict(sent or {})
    fresh = {}
    for name, value in values.items():
        if name not in ALWAYS_SENT and name in sent and sent[name] == value:
            fresh[name] = gr.skip()
        else:
            fresh[name] = sent[name] = value
    return fresh, sent


def bulk_confirm(store: Store, action: str, ids: list[int], versions: dict[int, int] | None,
                 user: str) -> tuple[str, dict[int, int]]:
    """Accept or reject the queue's pairs as ``user``, each only if still at the version the
    reviewer loaded (``versions``); returns the Markdown message and the updated versions."""
    versions = dict(versions or {})
    # A pair missing from the versions was never shown: version 0 never matches, so skipped.
    try:
        result = reviews.bulk_review(store, {i: versions.get(i, 0) for i in ids}, action,
                                     user=user)
    except (StoreError, ValueError) as err:
        raise gr.Error(escape_html(err))
    for pair_id in result.changed:
        versions[pair_id] += 1  # bulk_review bumped exactly the version this reviewer had
    verb = "Accepted" if action == "accept" else "Rejected"
    text = f"{verb} {len(result.changed)} pairs ({len(result.unchanged)} already were)."
    if result.skipped:
        text += (f"\n\n⚠️ **Skipped {len(result.skipped)} pairs changed since you loaded the "
                 f"queue:** {escape_md(result.skipped_text())}. Load the queue again to review "
                 "them.")
    return text, versions


def export_params(store: Store, settings: Settings, user: str, folder: str | None, fmt: str,
                  frames_from: str, frames: int | None) -> dict:
    """The export job's parameters for the form (``gr.Error`` for one that cannot run). In a
    shared app the folder must be one ``user`` may write (:func:`tpo.access.check_folder`);
    the job records who asked, so only they download it (:func:`last_export`)."""
    if not store.pair_counts()["all"]["accepted"]:
        raise gr.Error("No accepted pairs yet: accept some in the queue above first.")
    if frames is None or int(frames) < 1:
        raise gr.Error("Frames per record must be at least 1.")
    home = settings.data_dir / "exports"
    target = Path(folder.strip()) if folder and folder.strip() else (
        home / time.strftime("pairs-%Y%m%d-%H%M%S"))
    try:
        target = access.check_folder(settings, user, target, home, "the export folder")
    except access.AccessError as err:
        raise gr.Error(escape_html(err))
    return {"out_dir": str(target), "user": user,
            "config": {"format": fmt, "frames_from": frames_from, "frames": int(frames)}}


def last_export(store: Store, settings: Settings, user: str) -> dict:
    """The newest finished export this user may download: in a shared app their own (an
    export holds every accepted pair's texts and frames), else anyone's."""
    for row in jobs.list_jobs(store, kind="export", status="succeeded"):
        if not settings.multi_user or row["params"].get("user") == user:
            return row
    raise gr.Error("No finished export of yours yet." if settings.multi_user
                   else "No finished export yet.")


def export_panel(store: Store, settings: Settings) -> None:
    """Export accepted pairs as a TRL dataset (a background job), then download it as a zip."""
    with gr.Accordion("Export accepted pairs for training", open=False, elem_id="export-panel"):
        with gr.Row():
            out_dir = gr.Textbox(label="Output folder (on the server; empty: a new one under data/exports)",
                                 scale=3, elem_id="export-dir")
            fmt = gr.Dropdown(["jsonl", "parquet", "tpo-json"], value="jsonl", label="Format")
            frames_from = gr.Dropdown(
                [("whole video (the paper)", "whole"), ("chosen side's frames", "chosen"),
                 ("rejected side's frames", "rejected"), ("both sides' frames", "union")],
                value="whole", label="Frames of a record",
                info="whole: uniform over the whole video, the same for both answers")
            frames = gr.Number(64, precision=0, minimum=1, label="Frames per record",
                               info="whole: at most 1 per second of video")
        start = gr.Button("Export", variant="primary", elem_id="export-start")
        # Polled once a second while an export runs (no cancel: an export is short).
        panel = JobPanel(store, "export", what="export", empty="No export yet.", busy_s=1.0,
                         elem_prefix="export")
        panel.status_html()
        with gr.Row():
            zip_button = gr.Button("Download the last export as .zip", size="sm", elem_id="export-zip")
            download = gr.File(label="Download", interactive=False, elem_id="export-file")
    panel.wire()

    def on_start(folder, fmt_value, source, n, request: gr.Request,
                 profile: gr.OAuthProfile | None = None):
        user = current_user(settings, None, request, profile)
        params = export_params(store, settings, user, folder, fmt_value, source, n)
        return panel.submitted(jobs.submit(store, "export", params, log_dir=settings.log_dir))

    def on_zip(request: gr.Request, profile: gr.OAuthProfile | None = None):
        row = last_export(store, settings, current_user(settings, None, request, profile))
        out = Path(row["output"]["out_dir"])
        return shutil.make_archive(str(out), "zip", root_dir=out)

    start.click(on_start, [out_dir, fmt, frames_from, frames], panel.started)
    zip_button.click(on_zip, None, download)
