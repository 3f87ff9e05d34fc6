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

:func:`build` only lays the tab out and wires it. The handlers are the module's functions
(``on_load``, ``on_action``, …): each gets the values of its inputs as one dict keyed by
component (the components bundled in :class:`CurateTab`) and returns ``{component: value}``
for what changes; a component left out stays as the browser has it.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, fields
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
from ui.identity import bind, current_user
from ui.jobs import JobPanel
from ui.team import guidelines_markdown

__all__ = ["ANY", "CurateTab", "ExportForm", "FilterBoxes", "Filters", "View", "ViewParts",
           "build", "bulk_confirm", "counters_html", "export_panel", "export_params",
           "last_export", "load_queue", "on_action", "on_bulk_ask", "on_bulk_confirm",
           "on_export", "on_export_zip", "on_load", "on_move", "on_restore", "on_undo",
           "seen_versions"]

ANY = "any"
ALL_REASONS = ""  # the guide's reason choice meaning every filtered pair
SORTS = {"pending first": "pending-first", "oldest": "id", "newest": "newest"}
ALL_PAIRS, MY_SHARE = "all pairs", "my share"  # the "Pairs" filter: everyone's or my assignment
ACTIONS = ("accept", "reject", "swap", "edit")  # what the action buttons ask review() to do


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


@dataclass(frozen=True)
class FilterBoxes:
    """The queue's filter components, one per field of :class:`Filters` (same names)."""

    status: gr.Dropdown
    kind: gr.Dropdown
    strategy: gr.Dropdown
    video: gr.Dropdown  # "#id name"; its choices follow the library at every load
    reason: gr.Textbox
    search: gr.Textbox
    sort: gr.Dropdown

    def inputs(self) -> set:
        return {getattr(self, f.name) for f in fields(self)}

    def read(self, values: dict) -> Filters:
        """The filters' values in a handler's input dict."""
        return Filters(**{f.name: values[getattr(self, f.name)] for f in fields(self)})


@dataclass(frozen=True)
class ViewParts:
    """The components showing one pair, one per name of :data:`ui.curate_view.PARTS` (same
    names, same order): what :class:`View` gives values for."""

    pair_id: gr.State
    version: gr.State  # the pair's version as shown: an action must find it unchanged
    question: gr.HTML
    meta: gr.HTML
    timeline: gr.HTML
    player: gr.HTML
    chosen_title: gr.HTML
    chosen: gr.Textbox
    chosen_strip: gr.HTML
    rejected: gr.Textbox
    rejected_title: gr.HTML
    rejected_strip: gr.HTML
    originals: gr.Markdown
    edit_question: gr.Textbox
    warning: gr.HTML
    note: gr.Textbox
    # [pair id, version, warning] while Accept must warn before accepting the pair shown
    caution: gr.State

    def outputs(self) -> list:
        return [getattr(self, name) for name in PARTS]

    def by_name(self) -> dict:
        return {name: getattr(self, name) for name in PARTS}


@dataclass(frozen=True)
class CurateTab:
    """The tab's components its handlers read and set."""

    filters: FilterBoxes
    view: ViewParts
    user: gr.Textbox  # the name typed (hidden under log-ins or Hugging Face sign-in)
    share: gr.Dropdown  # ALL_PAIRS or MY_SHARE
    queue: gr.State  # the loaded queue's pair ids, in order
    position: gr.State  # index in the queue of the pair shown
    # {pair id: version} as the queue was loaded (then as this reviewer changed them): what a
    # bulk action may change; pairs someone else changed since are skipped.
    seen: gr.State
    sent: gr.State  # {part: value} this browser was last sent, so an answer sends only changes
    message: gr.Markdown
    counters: gr.HTML
    prefetch: gr.HTML  # the views either side of the pair shown, for the browser (hidden)
    guide_box: gr.Group  # the guided empty queue: filtered pairs per reason
    guide: gr.HTML
    guide_reason: gr.Dropdown
    bulk: gr.State  # "accept"/"reject" awaiting confirmation
    confirm_row: gr.Row
    confirm_text: gr.Markdown

    def answered(self) -> list:
        """What an answer with a pair's view may set (:func:`answer`)."""
        return [self.position, *self.view.outputs(), self.message, self.counters,
                self.prefetch, self.sent, self.seen]

    def load_inputs(self) -> set:
        return {*self.filters.inputs(), self.user, self.share}

    def load_outputs(self) -> list:
        return [self.queue, *self.answered(), self.filters.video, self.guide_box, self.guide,
                self.guide_reason]

    def action_inputs(self) -> set:
        v = self.view
        return {self.queue, self.position, v.pair_id, v.version, self.user, v.edit_question,
                v.chosen, v.rejected, v.note, self.seen, v.caution, self.sent}


def build(store: Store, settings: Settings) -> CurateTab:
    """Lay out the tab inside the current Blocks and wire its events; returns its components."""
    logins = settings.logins()
    queue = gr.State([])
    position = gr.State(0)
    pair_id = gr.State(None)
    version = gr.State(None)
    caution = gr.State(None)
    pending_bulk = gr.State(None)
    seen = gr.State({})
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
        counters = gr.HTML(bind(counters_html, store), elem_id="curate-counters-box", scale=3,
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
                gr.Markdown(bind(guidelines_text, store), elem_id="curate-guidelines")
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

    filters = FilterBoxes(status=f_status, kind=f_kind, strategy=f_strategy, video=f_video,
                          reason=f_reason, search=f_search, sort=f_sort)
    view = ViewParts(pair_id=pair_id, version=version, question=question, meta=meta,
                     timeline=timeline, player=player, chosen_title=chosen_title, chosen=chosen,
                     chosen_strip=chosen_strip, rejected=rejected, rejected_title=rejected_title,
                     rejected_strip=rejected_strip, originals=originals,
                     edit_question=edit_question, warning=warning, note=note, caution=caution)
    tab = CurateTab(filters=filters, view=view, user=user, share=f_share, queue=queue,
                    position=position, seen=seen, sent=sent_state, message=message,
                    counters=counters, prefetch=prefetch, guide_box=guide_box, guide=guide,
                    guide_reason=guide_reason, bulk=pending_bulk, confirm_row=confirm_row,
                    confirm_text=confirm_text)

    # bind, not partial: Gradio finds the gr.Request / gr.OAuthProfile parameters by their
    # type hints, which it cannot read through a partial (see ui.identity.bind).
    for event in (load.click, f_search.submit, f_reason.submit):
        event(bind(load_queue, store, settings, tab), tab.load_inputs(), tab.load_outputs())
    show_filtered.click(lambda reason: ("filtered", reason or ""), guide_reason,
                        [f_status, f_reason]).then(
        bind(on_load, store, settings, tab), filters.inputs(), tab.load_outputs())
    restore_filtered.click(bind(on_restore, store, settings, tab),
                           {guide_reason, user, *filters.inputs()}, tab.load_outputs())

    # Every button the keys press ends its round trip in the browser's script, which shows
    # the next pair before the answer and puts back what the answer did not confirm.
    def keyed(event) -> None:
        event.then(None, None, None, js=curate_keys.DONE_JS)
        event.failure(None, None, None, js=curate_keys.FAILED_JS)

    quiet = {"show_progress": "hidden"}
    for button, step in ((prev, -1), (nxt, +1)):
        keyed(button.click(bind(on_move, store, settings, tab, step),
                           {queue, position, sent_state}, tab.answered(), **quiet))
    for button, action in zip((accept, reject, swap, save), ACTIONS):
        keyed(button.click(bind(on_action, store, settings, tab, action), tab.action_inputs(),
                           tab.answered(), **quiet))
    keyed(undo.click(bind(on_undo, store, settings, tab), {queue, position, user, seen, sent_state},
                     tab.answered(), **quiet))
    for button, action in ((bulk_accept, "accept"), (bulk_reject, "reject")):
        button.click(bind(on_bulk_ask, tab, action), {queue},
                     [pending_bulk, confirm_row, confirm_text])
    confirm.click(bind(on_bulk_confirm, store, settings, tab),
                  {pending_bulk, queue, position, user, seen, sent_state},
                  [confirm_row, pending_bulk, *tab.answered()])
    cancel.click(lambda: (gr.update(visible=False), None), None, [confirm_row, pending_bulk])
    return tab


def guidelines_text(store: Store) -> str:
    """The Guidelines box: the team's current guidelines (Markdown), or how to set some."""
    return guidelines_markdown(store) or "*No guidelines yet (the Team tab sets them).*"


def render(store: Store, settings: Settings, ids: list[int], pos: int,
           confirmed: bool = False) -> tuple:
    """The view (:data:`PARTS` order) of the pair at ``pos`` of the queue ``ids`` (clamped),
    or an empty view saying why there is none."""
    if not ids:
        return View.empty("No pairs match these filters.")
    pos = max(0, min(pos, len(ids) - 1))
    try:
        return View.of(store, settings, ids[pos], position_text(pos, len(ids)), confirmed)
    except StoreError as err:
        return View.empty(str(err))


def answer(store: Store, settings: Settings, tab: CurateTab, ids: list[int], pos: int,
           text: str, sent: dict | None, confirmed: bool = False) -> dict:
    """The updates showing the pair at ``pos``: the position, ``text`` as the message, and of
    the view, counters and prefetched neighbours only what differs from what this browser was
    sent last (``sent``; None: nothing yet), with the new record of what it was sent. (The
    caller adds the versions when they change.)"""
    values = dict(zip(PARTS, render(store, settings, ids, pos, confirmed)))
    values.update(counters=counters_html(store),
                  prefetch=prefetch_html(store, settings, ids, pos) if ids else "")
    fresh, sent = only_new(values, sent)
    parts = {**tab.view.by_name(), "counters": tab.counters, "prefetch": tab.prefetch}
    return {tab.position: pos, tab.message: text, tab.sent: sent,
            **{parts[name]: value for name, value in fresh.items()}}


def guided(store: Store, tab: CurateTab, query: dict, ids: list[int]) -> dict:
    """The guide's box, text and reasons: shown when nothing is pending but the
    generation's filters set pairs aside."""
    reasons = store.filtered_reasons() if not ids and query["status"] == "pending" else {}
    if not reasons:
        return {tab.guide_box: gr.update(visible=False), tab.guide: ""}
    total = sum(reasons.values())
    choices = [(f"all reasons ({total})", ALL_REASONS),
               *[(f"{reason} ({n})", reason) for reason, n in reasons.items()]]
    return {tab.guide_box: gr.update(visible=True), tab.guide: guide_html(reasons),
            tab.guide_reason: gr.update(choices=choices, value=ALL_REASONS)}


def on_load(store: Store, settings: Settings, tab: CurateTab, values: dict, *,
            note_text: str = "", reviewer: str | None = None) -> dict:
    """The queue for the filters in ``values`` (of ``reviewer``'s assignment when given), its
    first pair, the library's videos as the video filter's choices, and the guide when
    nothing is pending but pairs were filtered. ``note_text``: the message to show."""
    query = tab.filters.read(values).query()
    try:  # ids and versions only, in SQL: nothing is decoded that is not shown
        rows = store.queue_versions(**query, reviewer=reviewer)
    except StoreError as err:
        raise gr.Error(escape_html(err))
    ids = [pair_id for pair_id, _ in rows]
    videos = [ANY] + [f"#{v['id']} {v['name']}" for v in store.list_videos()
                      if v["status"] == "ready"]
    return {**answer(store, settings, tab, ids, 0, note_text, None),
            tab.queue: ids, tab.seen: dict(rows), tab.filters.video: gr.update(choices=videos),
            **guided(store, tab, query, ids)}


def load_queue(store: Store, settings: Settings, tab: CurateTab, values: dict,
               request: gr.Request, profile: gr.OAuthProfile | None = None) -> dict:
    """Load queue (:func:`on_load`): with "my share", the pairs assigned to this reviewer
    (tpo assign, the Team tab) that they have not decided yet."""
    reviewer = (current_user(settings, values[tab.user], request, profile)
                if values[tab.share] == MY_SHARE else None)
    return on_load(store, settings, tab, values, reviewer=reviewer)


def on_move(store: Store, settings: Settings, tab: CurateTab, step: int, values: dict) -> dict:
    """Prev (``step`` -1) / Next (+1): the pair that far along the queue, within its ends."""
    ids, pos = values[tab.queue], values[tab.position]
    pos = max(0, min(pos + step, len(ids) - 1)) if ids else 0
    return answer(store, settings, tab, ids, pos, "", values[tab.sent])


def on_action(store: Store, settings: Settings, tab: CurateTab, action: str, values: dict,
              request: gr.Request, profile: gr.OAuthProfile | None = None) -> dict:
    """Accept, reject, swap or edit (``action``) the pair shown, at the version shown, as
    the reviewer: then the next pair (accept, reject) or the same one. A concurrent change
    shows the newer version instead; Accept of a pair with a warning warns once first."""
    v = tab.view
    ids, pos, sent = values[tab.queue], values[tab.position], values[tab.sent]
    current, seen_version, warn = values[v.pair_id], values[v.version], values[v.caution]
    if current is None:
        raise gr.Error("No pair loaded: press Load queue.")
    if action == "accept" and warn and warn[:2] == [current, seen_version]:
        # Warned once (the view now says so); the next Accept accepts.
        text = (f"⚠️ **Pair #{current} not accepted yet:** {escape_md(warn[2])}. Press "
                "Accept [A] again to accept it anyway, or edit the answer first.")
        return answer(store, settings, tab, ids, pos, text, sent, confirmed=True)
    kwargs = {}
    if action == "edit":
        kwargs = {"question": values[v.edit_question], "chosen": values[v.chosen],
                  "rejected": values[v.rejected]}
    try:
        pair = reviews.review(store, current, action,
                              user=current_user(settings, values[tab.user], request, profile),
                              expected_version=seen_version, note=values[v.note] or None,
                              **kwargs)
    except ConflictError as err:
        # Show the newer version in place of the reviewer's stale view.
        return answer(store, settings, tab, ids, pos, f"⚠️ **Not saved.** {escape_md(err)}",
                      sent)
    except (StoreError, ValueError) as err:
        raise gr.Error(escape_html(err))
    done = f"Pair #{current}: {action} → {pair['status']} (version {pair['version']})."
    if action in ("accept", "reject") and pos < len(ids) - 1:
        pos += 1  # on to the next pair, as a reviewer going through a queue expects
    # The reviewer's own change is not "changed since": a later bulk action may follow it.
    versions = seen_versions(values[tab.seen], {current: pair["version"]})
    return {**answer(store, settings, tab, ids, pos, done, sent), tab.seen: versions}


def on_undo(store: Store, settings: Settings, tab: CurateTab, values: dict,
            request: gr.Request, profile: gr.OAuthProfile | None = None) -> dict:
    """Undo [U]: the reviewer's last action undone (an audited action of its own), and back
    to that pair when it is in the queue."""
    ids, pos = values[tab.queue], values[tab.position]
    name = current_user(settings, values[tab.user], request, profile)
    target = store.last_undoable_pair(name)
    if target is None:
        raise gr.Error(f"Nothing of {escape_html(name)}'s to undo.")
    try:
        pair = reviews.undo(store, target, user=name)
    except (TPOError, ValueError) as err:
        raise gr.Error(escape_html(err))
    if target in (ids or []):
        pos = ids.index(target)  # back to the pair, to redo it
    versions = seen_versions(values[tab.seen], {target: pair["version"]})
    text = (f"Undone: pair #{target} is {pair['status']} again (version {pair['version']}; "
            "the undo is recorded as an action of its own).")
    return {**answer(store, settings, tab, ids, pos, text, values[tab.sent]), tab.seen: versions}


def on_bulk_ask(tab: CurateTab, action: str, values: dict) -> dict:
    """Accept/Reject all in this queue…: ask to confirm, naming how many pairs."""
    ids = values[tab.queue]
    if not ids:
        raise gr.Error("The queue is empty: load it first.")
    verb = "Accept" if action == "accept" else "Reject"
    return {tab.bulk: action, tab.confirm_row: gr.update(visible=True),
            tab.confirm_text: f"**{verb} all {len(ids)} pairs in this queue?**"}


def on_bulk_confirm(store: Store, settings: Settings, tab: CurateTab, values: dict,
                    request: gr.Request, profile: gr.OAuthProfile | None = None) -> dict:
    """Confirm: the bulk action asked for (:func:`bulk_confirm`), then the pair shown again."""
    action, versions, text = values[tab.bulk], values[tab.seen], ""
    if action:
        text, versions = bulk_confirm(store, action, values[tab.queue], versions,
                                      current_user(settings, values[tab.user], request, profile))
    return {**answer(store, settings, tab, values[tab.queue], values[tab.position], text,
                     values[tab.sent]),
            tab.confirm_row: gr.update(visible=False), tab.bulk: None, tab.seen: versions}


def on_restore(store: Store, settings: Settings, tab: CurateTab, values: dict,
               request: gr.Request, profile: gr.OAuthProfile | None = None) -> dict:
    """Restore all to pending: the filtered pairs (for the guide's reason, or all) back to
    pending as the reviewer, then the queue loaded again for the filters shown."""
    reason = values[tab.guide_reason]
    try:
        n = reviews.restore_all(store, user=current_user(settings, values[tab.user], request,
                                                         profile),
                                reason=reason or None)
    except (StoreError, ValueError) as err:
        raise gr.Error(escape_html(err))
    why = f" filtered for {escape_md(reason)}" if reason else " that were filtered"
    return on_load(store, settings, tab, values,
                   note_text=f"Restored {n} pairs{why} to pending (each restore is recorded "
                             "under your name).")


# View parts a browser may change itself (typing, a swapped-in view): always sent, so
# Gradio compares them with what the browser holds now, not with what it was sent.
ALWAYS_SENT = ("chosen", "rejected", "edit_question", "note")


def only_new(values: dict, sent: dict | None) -> tuple[dict, dict]:
    """The entries of ``values`` that differ from what the browser was last sent (``sent``,
    None: nothing yet), plus the :data:`ALWAYS_SENT` ones, and the new record of what it
    was sent. What is left out does not travel: the browser keeps what it shows."""
    sent = dict(sent or {})
    fresh = {}
    for name, value in values.items():
        if name in ALWAYS_SENT or name not in sent or sent[name] != value:
            fresh[name] = sent[name] = value
    return fresh, sent


def seen_versions(versions: dict[int, int] | None, changed: dict[int, int]) -> dict[int, int]:
    """The session's ``{pair id: version}`` (:attr:`CurateTab.seen`) with ``changed`` set, in
    place: a queue's versions hold up to one entry per pair (~77k pending at 100k pairs), too
    many to copy at every action. A new dict when the session has none yet."""
    if versions is None:
        versions = {}
    versions.update(changed)
    return versions


def bulk_confirm(store: Store, action: str, ids: list[int], versions: dict[int, int] | None,
                 user: str) -> tuple[str, dict[int, int]]:
    """Accept or reject the queue's pairs as ``user``, each only if still at the version the
    reviewer loaded (``versions``); returns the Markdown message and the updated versions
    (``versions`` itself, updated in place, when given)."""
    versions = seen_versions(versions, {})
    # A pair missing from the versions was never shown: version 0 never matches, so skipped.
    try:
        result = reviews.bulk_review(store, {i: versions.get(i, 0) for i in ids}, action,
                                     user=user)
    except (StoreError, ValueError) as err:
        raise gr.Error(escape_html(err))
    for pair_id in (*result.changed, *result.agreed):
        versions[pair_id] += 1  # bulk_review bumped exactly the version this reviewer had
    verb = "Accepted" if action == "accept" else "Rejected"
    already = len(result.agreed) + len(result.unchanged)
    text = f"{verb} {len(result.changed)} pairs ({already} already were"
    text += (f"; your decision is recorded on {len(result.agreed)} of them decided by "
             "others)." if result.agreed else ").")
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


@dataclass(frozen=True)
class ExportForm:
    """The export panel's form (its inputs) and the file it downloads."""

    out_dir: gr.Textbox
    fmt: gr.Dropdown
    frames_from: gr.Dropdown
    frames: gr.Number
    download: gr.File

    def inputs(self) -> set:
        return {self.out_dir, self.fmt, self.frames_from, self.frames}


def on_export(store: Store, settings: Settings, form: ExportForm, panel: JobPanel,
              values: dict, request: gr.Request,
              profile: gr.OAuthProfile | None = None) -> dict:
    """Export: the form as an export job for the user asking (:func:`export_params`); the
    panel shows it."""
    user = current_user(settings, None, request, profile)
    params = export_params(store, settings, user, values[form.out_dir], values[form.fmt],
                           values[form.frames_from], values[form.frames])
    return panel.submitted(jobs.submit(store, "export", params, log_dir=settings.log_dir))


def on_export_zip(store: Store, settings: Settings, form: ExportForm, request: gr.Request,
                  profile: gr.OAuthProfile | None = None) -> dict:
    """Download the last export as .zip: the user's newest finished export
    (:func:`last_export`), zipped next to its folder."""
    row = last_export(store, settings, current_user(settings, None, request, profile))
    out = Path(row["output"]["out_dir"])
    return {form.download: shutil.make_archive(str(out), "zip", root_dir=out)}


def export_panel(store: Store, settings: Settings) -> ExportForm:
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

    form = ExportForm(out_dir=out_dir, fmt=fmt, frames_from=frames_from, frames=frames,
                      download=download)
    start.click(bind(on_export, store, settings, form, panel), form.inputs(), panel.started)
    zip_button.click(bind(on_export_zip, store, settings, form), None, download)
    return form
