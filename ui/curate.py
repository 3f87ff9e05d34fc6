"""The Curate tab: review preference pairs against the video evidence, at keyboard speed.

A queue of pairs (filters, search, sort) and the current pair: its question, a timeline with
the segment and the frames each side saw, the player, both answers side by side with their
frame strips, and the actions (accept, reject, swap, edit, note, next, previous, bulk).
Every action goes through :func:`tpo.curation.review.review` with the version the reviewer saw, so a
concurrent change by someone else is refused and shown rather than overwritten; bulk actions
carry the versions of the queue as loaded and skip (and list) pairs changed since.
Texts from files, models and people are escaped before they go into HTML or Markdown.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

import shutil
import time
from pathlib import Path

import gradio as gr

from tpo import access, jobs
from tpo.curation import review as reviews
from tpo.media import video
from tpo.config import Settings
from tpo.store import PAIR_STATUSES, ConflictError, Pair, Store, StoreError
from tpo.media.thumbs import format_time, frames_at
from ui import html
from ui.header import header_markdown
from ui.html import escape_html, escape_md
from ui.identity import current_user
from ui.jobs import JobPanel
from ui.timeline import timeline_svg

ANY = "any"
SORTS = {"pending first": "pending-first", "oldest": "id", "newest": "newest"}
STRIP_MAX = 16  # thumbnails per side; dense sides (64 frames) show an even subset


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
                "video_id": video_id, "reason": self.reason.strip(), "search": self.search.strip(),
                "order": SORTS.get(self.sort, "pending-first")}


def counters_html(store: Store) -> str:
    c = store.pair_counts()
    total = c["all"]
    line = " · ".join(f'<b data-count="{s}">{total[s]}</b> {s}' for s in PAIR_STATUSES)
    kinds = " &nbsp; ".join(
        f"{escape(kind)}: " + " / ".join(str(c[kind][s]) for s in PAIR_STATUSES)
        for kind in sorted(k for k in c if k != "all"))
    return (f'<div class="tpo-counters" id="curate-counters">{line}'
            f'<div style="opacity:.75;font-size:12px">{kinds}'
            + (" (pending / accepted / rejected / filtered)" if kinds else "") + "</div></div>")


def _sample(times: list[float], n: int) -> list[float]:
    if len(times) <= n:
        return list(times)
    step = len(times) / n
    return [times[int(i * step + step / 2)] for i in range(n)]


def _side_strip(row: dict, times: list[float], settings: Settings, side: str) -> str:
    try:
        entries = frames_at(row["path"], row["sha256"], _sample(times, STRIP_MAX), settings.thumb_dir)
    except (video.VideoError, OSError) as err:
        return html.note(f"Cannot show frames: {err}")
    return html.frame_strip(entries, settings.thumb_dir, player_id=html.CURATE_PLAYER_ID,
                            strip_id=f"curate-{side}-strip")


def _saw(pair: Pair, side: str, times: list[float]) -> str:
    if pair["kind"] == "localized" and pair["segment_start"] is not None:
        seg = f"{format_time(pair['segment_start'])}–{format_time(pair['segment_end'])}"
        if pair.generated_side(side) == "chosen":
            where = f"the segment {seg}"
        elif pair["strategy"] == "incomplete":
            where = f"a sparse part of {seg}"
        else:
            where = f"the video without {seg}"
    else:
        where = "the whole video"
    return f"{side.upper()} · saw {escape_md(where)} ({len(times)} frames)"


class View:
    """Everything the tab shows for one pair, in the order of ``shown`` in :func:`build`."""

    @staticmethod
    def empty(message: str) -> tuple:
        return (None, None, html.note(message), *[""] * 11)

    @staticmethod
    def of(store: Store, settings: Settings, pair_id: int, position: str) -> tuple:
        pair = store.get_pair(pair_id)
        row = store.get_video(pair["video_id"])
        view = pair.effective()
        segment = ((pair["segment_start"], pair["segment_end"])
                   if pair["segment_start"] is not None else None)
        events = (row.get("ground_truth") or {}).get("events")
        meta = (f"**Pair #{pair['id']}** · {position} · {escape_md(pair['kind'])} · "
                f"{escape_md(pair['strategy'])} · video #{row['id']} {escape_md(row['name'])} · "
                f"**{escape_md(pair['status'])}** · version {pair['version']}"
                + (f" · last change by {escape_md(pair['last_user'])}"
                   if pair.get("last_user") else "")
                + (f"\n\nFilter: *{escape_md(pair['filter_reason'])}*"
                   if pair["filter_reason"] else ""))
        original = _originals(pair)
        playable = row["status"] == "ready"
        return (
            pair["id"], pair["version"],
            f'<div id="curate-question" data-pair-id="{pair["id"]}">{escape(view["question"])}</div>',
            meta,
            timeline_svg(row["duration_s"] or 0.0, segment=segment, chosen=view["chosen_timestamps"],
                         rejected=view["rejected_timestamps"], player=html.CURATE_PLAYER_ID,
                         events=events),
            html.player(row["id"], html.CURATE_PLAYER_ID) if playable else html.note("Video unreadable."),
            _saw(pair, "chosen", view["chosen_timestamps"]),
            view["chosen"],
            _side_strip(row, view["chosen_timestamps"], settings, "chosen") if playable else "",
            view["rejected"],
            _saw(pair, "rejected", view["rejected_timestamps"]),
            _side_strip(row, view["rejected_timestamps"], settings, "rejected") if playable else "",
            original,
            view["question"],
        )


def _originals(pair: dict) -> str:
    lines = []
    for label, column in (("question", "question"), ("chosen", "chosen"), ("rejected", "rejected")):
        if pair.get(f"edited_{column}"):
            lines.append(f"- generated {label}: {escape_md(pair[column])}")
    if pair.get("swapped"):
        lines.append("- chosen and rejected were swapped by a reviewer")
    if not lines:
        return "No edits: the texts are as generated."
    return "\n".join(lines)


def build(store: Store, settings: Settings, header: gr.Markdown) -> None:
    """Lay out the tab inside the current Blocks and wire its events."""
    logins = settings.logins()
    queue = gr.State([])
    position = gr.State(0)
    pair_id = gr.State(None)
    version = gr.State(None)
    pending_bulk = gr.State(None)  # "accept"/"reject" awaiting confirmation
    # {pair id: version} as the queue was loaded (then as this reviewer changed them): what a
    # bulk action may change; pairs someone else changed since are skipped.
    seen = gr.State({})

    with gr.Row():
        user = gr.Textbox(settings.user, label="Your name (recorded on every action)", scale=1,
                          visible=not (logins or settings.hf_oauth), elem_id="curate-user")
        if settings.hf_oauth:
            gr.LoginButton(scale=0)
        counters = gr.HTML(lambda: counters_html(store), elem_id="curate-counters-box")
    with gr.Row():
        f_status = gr.Dropdown([ANY, *PAIR_STATUSES], value="pending", label="Status", min_width=100)
        f_kind = gr.Dropdown([ANY, "localized", "comprehensive"], value=ANY, label="Kind", min_width=100)
        f_strategy = gr.Dropdown([ANY, "irrelevant", "incomplete", "dense-sparse"], value=ANY,
                                 label="Strategy", min_width=100)
        f_video = gr.Dropdown([ANY], value=ANY, label="Video", min_width=140, allow_custom_value=True)
        f_reason = gr.Textbox(label="Filter reason contains", min_width=120)
        f_search = gr.Textbox(label="Search text", min_width=120, elem_id="curate-search")
        f_sort = gr.Dropdown(list(SORTS), value="pending first", label="Sort", min_width=100)
        load = gr.Button("Load queue", elem_id="curate-load", scale=0)
    message = gr.Markdown(elem_id="curate-message")
    question = gr.HTML(html.note("Load the queue to start reviewing."))
    meta = gr.Markdown(elem_id="curate-meta")
    timeline = gr.HTML(elem_id="curate-timeline")
    player = gr.HTML()
    with gr.Row(equal_height=False):
        with gr.Column():
            chosen_title = gr.Markdown(elem_classes=["tpo-side-title"], elem_id="curate-chosen-title")
            chosen = gr.Textbox(label="Chosen answer (editable)", lines=4, elem_id="curate-chosen")
            chosen_strip = gr.HTML()
        with gr.Column():
            rejected_title = gr.Markdown(elem_classes=["tpo-side-title"], elem_id="curate-rejected-title")
            rejected = gr.Textbox(label="Rejected answer (editable)", lines=4, elem_id="curate-rejected")
            rejected_strip = gr.HTML()
    with gr.Row():
        edit_question = gr.Textbox(label="Question (editable)", scale=3, elem_id="curate-question-edit")
        note = gr.Textbox(label="Note", scale=2, elem_id="curate-note")
    with gr.Row():
        accept = gr.Button("Accept [A]", variant="primary", elem_id="curate-accept")
        reject = gr.Button("Reject [R]", variant="stop", elem_id="curate-reject")
        swap = gr.Button("Swap [S]", elem_id="curate-swap")
        save = gr.Button("Save edits [E to edit]", elem_id="curate-save")
        prev = gr.Button("◀ Prev [P]", elem_id="curate-prev")
        nxt = gr.Button("Next [N] ▶", elem_id="curate-next")
    with gr.Accordion("Original (generated) texts", open=False):
        originals = gr.Markdown(elem_id="curate-originals")
    with gr.Row():
        bulk_accept = gr.Button("Accept all in this queue…", size="sm", elem_id="curate-bulk-accept")
        bulk_reject = gr.Button("Reject all in this queue…", size="sm", elem_id="curate-bulk-reject")
    with gr.Row(visible=False) as confirm_row:
        confirm_text = gr.Markdown(elem_id="curate-bulk-question")
        confirm = gr.Button("Confirm", variant="primary", size="sm", elem_id="curate-bulk-confirm")
        cancel = gr.Button("Cancel", size="sm", elem_id="curate-bulk-cancel")

    export_panel(store, settings)

    filters = [f_status, f_kind, f_strategy, f_video, f_reason, f_search, f_sort]
    shown = [pair_id, version, question, meta, timeline, player, chosen_title, chosen, chosen_strip,
             rejected, rejected_title, rejected_strip, originals, edit_question]

    def who(typed: str, request: gr.Request | None, profile: gr.OAuthProfile | None) -> str:
        return current_user(settings, typed, request, profile)

    def render(ids: list[int], pos: int) -> tuple:
        if not ids:
            return View.empty("No pairs match these filters.")
        pos = max(0, min(pos, len(ids) - 1))
        try:
            return View.of(store, settings, ids[pos], f"{pos + 1} of {len(ids)}")
        except StoreError as err:
            return View.empty(str(err))

    def on_load(*values):
        pairs = store.list_pairs(**Filters(*values).query())
        ids = [p["id"] for p in pairs]
        videos = [ANY] + [f"#{v['id']} {v['name']}" for v in store.list_videos() if v["status"] == "ready"]
        return (ids, 0, *render(ids, 0), "", counters_html(store), gr.update(choices=videos),
                header_markdown(store, settings), {p["id"]: p["version"] for p in pairs})

    def on_move(ids, pos, step):
        pos = max(0, min(pos + step, len(ids) - 1)) if ids else 0
        return (pos, *render(ids, pos), "")

    def on_action(action, ids, pos, current, seen_version, typed, q, c, r, note_text, versions,
                  request, profile):
        if current is None:
            raise gr.Error("No pair loaded: press Load queue.")
        kwargs = {}
        if action == "edit":
            kwargs = {"question": q, "chosen": c, "rejected": r}
        try:
            pair = reviews.review(store, current, action, user=who(typed, request, profile),
                                  expected_version=seen_version, note=note_text or None, **kwargs)
        except ConflictError as err:
            # Show the newer version in place of the reviewer's stale view.
            return (pos, *render(ids, pos), f"⚠️ **Not saved.** {escape_md(err)}",
                    counters_html(store), header_markdown(store, settings), versions)
        except (StoreError, ValueError) as err:
            raise gr.Error(escape_html(err))
        done = f"Pair #{current}: {action} → {pair['status']} (version {pair['version']})."
        if action in ("accept", "reject") and pos < len(ids) - 1:
            pos += 1  # on to the next pair, as a reviewer going through a queue expects
        # The reviewer's own change is not "changed since": a later bulk action may follow it.
        versions = {**(versions or {}), current: pair["version"]}
        return (pos, *render(ids, pos), done, counters_html(store),
                header_markdown(store, settings), versions)

    def on_bulk_ask(action, ids):
        if not ids:
            raise gr.Error("The queue is empty: load it first.")
        verb = "Accept" if action == "accept" else "Reject"
        return action, gr.update(visible=True), f"**{verb} all {len(ids)} pairs in this queue?**"

    def on_bulk_confirm(action, ids, pos, typed, versions, request: gr.Request,
                        profile: gr.OAuthProfile | None):
        if not action:
            return (gr.update(visible=False), None, pos, *render(ids, pos), "", counters_html(store),
                    header_markdown(store, settings), versions)
        text, versions = bulk_confirm(store, action, ids, versions, who(typed, request, profile))
        return (gr.update(visible=False), None, pos, *render(ids, pos), text, counters_html(store),
                header_markdown(store, settings), versions)

    after = [position, *shown]
    load.click(on_load, filters, [queue, *after, message, counters, f_video, header, seen])
    for box in (f_search, f_reason):
        box.submit(on_load, filters, [queue, *after, message, counters, f_video, header, seen])
    prev.click(lambda ids, pos: on_move(ids, pos, -1), [queue, position], [*after, message])
    nxt.click(lambda ids, pos: on_move(ids, pos, +1), [queue, position], [*after, message])
    action_inputs = [queue, position, pair_id, version, user, edit_question, chosen, rejected, note,
                     seen]
    action_outputs = [*after, message, counters, header, seen]
    def handler(action: str):
        # Typed parameters, so Gradio fills in the request (log-in) and the HF profile.
        def act(ids, pos, current, seen_version, typed, q, c, r, note_text, versions,
                request: gr.Request, profile: gr.OAuthProfile | None):
            return on_action(action, ids, pos, current, seen_version, typed, q, c, r, note_text,
                             versions, request, profile)
        return act

    for button, action in ((accept, "accept"), (reject, "reject"), (swap, "swap"), (save, "edit")):
        button.click(handler(action), action_inputs, action_outputs)
    bulk_accept.click(lambda ids: on_bulk_ask("accept", ids), queue, [pending_bulk, confirm_row, confirm_text])
    bulk_reject.click(lambda ids: on_bulk_ask("reject", ids), queue, [pending_bulk, confirm_row, confirm_text])
    confirm.click(on_bulk_confirm, [pending_bulk, queue, position, user, seen],
                  [confirm_row, pending_bulk, *after, message, counters, header, seen])
    cancel.click(lambda: (gr.update(visible=False), None), None, [confirm_row, pending_bulk])


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
