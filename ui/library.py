"""The Library tab: the video table, search and status filter, a player with the sampled
frame strip, and adding videos by upload or by server path.

Uploads are open to everyone; in a shared app (log-ins) adding by server path is for admins
and only below the library roots (:mod:`tpo.access`). Every action is recorded under the
logged-in user (:func:`ui.identity.current_user`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import gradio as gr
import pandas as pd

from tpo import access
from tpo.media import library, video
from tpo.curation.review import review
from tpo.config import Settings
from tpo.store import Store, StoreError
from tpo.media.thumbs import format_time, frame_strip
from ui import generate, html
from ui.header import header_markdown
from ui.html import escape_html, escape_md
from ui.identity import bind, current_user
from ui.tables import noted_table, table_or_note

COLUMNS = ["ID", "Name", "Duration", "Status", "Pairs pend/acc/rej/filt", "Error"]
STATUS_CHOICES = ["all", "ready", "error"]
# The page's load and every search, status change and refresh share one queue (one at a
# time, in the order sent), so an earlier request never overwrites a later one's table.
TABLE_QUEUE = "library-table"
PAIR_COLUMNS = ["ID", "Kind", "Strategy", "Segment", "Question", "Status", "Filter reason"]
SELECT_FOR_PAIRS = "Select a video in the table to see its pairs."
NO_PAIRS = "This video has no pairs yet: generate some under Generate pairs."


@dataclass
class LibraryTab:
    """Components other tabs or the header may wire to."""

    table: gr.Dataframe
    selected: gr.State  # id of the selected video, or None
    filters: list  # the search box and the status dropdown, the inputs of `show`
    show: Callable[[str, str], pd.DataFrame]  # the table for (search, status)
    view: LibraryView  # every component the tab's handlers read and set


def video_table(store: Store, search: str = "", status: str = "all") -> pd.DataFrame:
    rows = store.list_videos(search=search.strip(), status=None if status == "all" else status)
    return pd.DataFrame(
        [[r["id"], r["name"],
          format_time(r["duration_s"]) if r["duration_s"] is not None else "—",
          r["status"],
          f"{r['pairs_pending']} / {r['pairs_accepted']} / {r['pairs_rejected']} / {r['pairs_filtered']}",
          r["error"] or ""] for r in rows],
        columns=COLUMNS,
    )


def selected_row(evt: gr.SelectData, shown: pd.DataFrame) -> pd.Series:
    """The table row a Dataframe select event points at (its index is [row, col])."""
    return shown.iloc[evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index]


def empty_note(store: Store) -> str:
    if store.counts()["videos"]:
        return ""
    return html.note("The library is empty: upload videos or add a folder below (or run `tpo demo`).")


def video_details(row: dict) -> str:
    """Markdown facts about one library video."""
    size_mb = (row.get("size_bytes") or 0) / 1e6
    # Name, path, error, codec, user and event labels come from files and people: escaped.
    lines = [f"#### {escape_md(row['name'])}", f"<code>{escape_md(row['path'])}</code>", ""]
    if row["status"] != "ready":
        return "\n".join(lines + [f"**Unreadable:** {escape_md(row['error'])}"])
    lines += [
        f"- duration **{format_time(row['duration_s'])}** ({row['duration_s']:.2f} s), "
        f"{row['fps']:.2f} fps, {row['n_frames']} frames",
        f"- {row['width']}×{row['height']} px, {escape_md(row['codec'])}"
        + (f", rotated {row['rotation']}°" if row.get("rotation") else "")
        + f", {size_mb:.1f} MB (read with {escape_md(row['backend'])})",
        f"- added {escape_md(row['added_at'])}"
        + (f" by {escape_md(row['added_by'])}" if row.get("added_by") else ""),
    ]
    gt = row.get("ground_truth")
    if gt:
        events = ", ".join(f"{escape_md(e['label'])} at {format_time(e['start_s'])}"
                           for e in gt["events"])
        lines.append(f"- synthetic, known events: {events}")
    return "\n".join(lines)


@dataclass(frozen=True)
class LibraryView:
    """The tab's components (and the page header) its handlers read and set; a handler gets
    its inputs' values as one dict keyed by them and returns updates keyed by them."""

    search: gr.Textbox
    status: gr.Dropdown
    table: gr.Dataframe
    header: gr.Markdown
    empty_hint: gr.HTML
    selected: gr.State  # id of the selected video, or None
    player: gr.HTML
    details: gr.Markdown
    strip: gr.HTML
    video_pairs: gr.Dataframe
    pairs_note: gr.HTML
    selected_pair: gr.State  # id of the pair selected in the video's pairs, or None
    pair_note: gr.Markdown
    upload: gr.File
    add_path_box: gr.Column
    add_path: gr.Textbox
    add_result: gr.Markdown

    @property
    def filters(self) -> list:
        """The search box and the status dropdown: what the table shows depends on them."""
        return [self.search, self.status]

    @property
    def video_outputs(self) -> list:
        """What selecting a video sets."""
        return [self.selected, self.player, self.details, self.strip, self.video_pairs,
                self.pairs_note]

    @property
    def ingest_outputs(self) -> list:
        """What adding videos (by path or upload) sets."""
        return [self.add_result, self.table, self.header, self.empty_hint]

    def shown_table(self, store: Store, values: dict) -> pd.DataFrame:
        """The video table for the filters' values in ``values``."""
        return video_table(store, values[self.search], values[self.status])

    def pairs_updates(self, frame: pd.DataFrame) -> dict:
        """The video's pairs table, or the note when it has none."""
        return dict(zip((self.video_pairs, self.pairs_note), table_or_note(frame, NO_PAIRS)))


def build(store: Store, settings: Settings, header: gr.Markdown, picker) -> LibraryTab:
    """Lay out the tab inside the current ``gr.Blocks`` and wire its events; ``picker``: the
    app-wide :class:`ui.models.ModelPicker` (Generate's model follows it)."""
    selected = gr.State(None)
    with gr.Row():
        search = gr.Textbox(placeholder="search name or path", show_label=False, scale=4,
                            elem_id="library-search")
        status = gr.Dropdown(STATUS_CHOICES, value="all", show_label=False, scale=1,
                             elem_id="library-status")
        refresh = gr.Button("Refresh", scale=0)
    # Filled by the page's load event (ui/app.py wires LibraryTab.show), not at build time:
    # a build-time value would be shown first and then overwritten by that load event, which
    # on a busy server could arrive after the user's first search.
    table = gr.Dataframe(headers=COLUMNS, interactive=False, wrap=True,
                         max_height=360, elem_id="library-table", label="Videos")
    empty_hint = gr.HTML(bind(empty_note, store))
    with gr.Row():
        with gr.Column(scale=3):
            player = gr.HTML(html.note("Select a video in the table to play it."),
                             elem_id="library-player")
        with gr.Column(scale=2):
            details = gr.Markdown(elem_id="video-details")
    strip = gr.HTML(elem_id="frame-strip", label="Sampled frames")
    video_pairs, pairs_note = noted_table(SELECT_FOR_PAIRS, headers=PAIR_COLUMNS, wrap=True,
                                          max_height=300, label="Pairs of this video",
                                          elem_id="video-pairs")
    with gr.Row():
        selected_pair = gr.State(None)
        pair_note = gr.Markdown(elem_id="pair-selected")
        restore = gr.Button("Restore selected filtered pair to pending", size="sm",
                            elem_id="pair-restore")
    with gr.Accordion("Add videos", open=False):
        with gr.Row():
            upload = gr.File(label="Upload video files", file_count="multiple", type="filepath",
                             elem_id="library-upload")
            # In a shared app hidden until the page load shows it to an admin (below).
            with gr.Column(visible=not settings.multi_user) as add_path_box:
                add_path = gr.Textbox(label="…or a file or folder on the server",
                                      placeholder="/path/to/videos", elem_id="library-add-path")
                add_button = gr.Button("Add", elem_id="library-add")
        add_result = gr.Markdown(elem_id="library-add-result")
    view = LibraryView(search=search, status=status, table=table, header=header,
                       empty_hint=empty_hint, selected=selected, player=player, details=details,
                       strip=strip, video_pairs=video_pairs, pairs_note=pairs_note,
                       selected_pair=selected_pair, pair_note=pair_note, upload=upload,
                       add_path_box=add_path_box, add_path=add_path, add_result=add_result)
    show = bind(video_table, store)
    generate.build(store, settings, selected, table, header, show, view.filters, picker)

    # Filter as the user types (the change event carries the box's value, so a search never
    # runs on a stale one; Enter adds nothing to it, so it triggers no second query);
    # "always_last" drops keystrokes a newer one replaced.
    for event in (search.change, status.change, refresh.click):
        event(bind(filtered_table, store, view), set(view.filters), table,
              trigger_mode="always_last", concurrency_id=TABLE_QUEUE)
    table.select(bind(video_selected, store, settings, view), {table}, view.video_outputs)
    video_pairs.select(bind(pair_selected, view), {video_pairs}, [selected_pair, pair_note])
    restore.click(bind(restore_pair, store, settings, view),
                  {selected_pair, selected, *view.filters},
                  [pair_note, video_pairs, pairs_note, table, header])
    add_button.click(bind(add_by_path, store, settings, view), {add_path, *view.filters},
                     view.ingest_outputs)
    upload.upload(bind(upload_videos, store, settings, view), {upload, *view.filters},
                  view.ingest_outputs)
    if settings.multi_user:
        # Per browser: only an admin sees the server-path box (the handler checks anyway).
        gr.on(None, bind(show_add_path, settings, view), None, add_path_box,
              show_progress="hidden")
    return LibraryTab(table=table, selected=selected, filters=view.filters, show=show,
                      view=view)


def who(settings: Settings, request: gr.Request | None, profile: gr.OAuthProfile | None) -> str:
    """The name an action in this tab is recorded under."""
    return current_user(settings, None, request, profile)


def filtered_table(store: Store, view: LibraryView, values: dict) -> dict:
    """A search, status change or refresh: the table for the filters' values."""
    return {view.table: view.shown_table(store, values)}


def video_selected(store: Store, settings: Settings, view: LibraryView, values: dict,
                   evt: gr.SelectData) -> dict:
    """A video picked in the table: its id, player, details, frame strip and pairs."""
    video_id = int(selected_row(evt, values[view.table])["ID"])
    player, details, strip, pairs = show_video(store, settings, video_id)
    return {view.selected: video_id, view.player: player, view.details: details,
            view.strip: strip, **view.pairs_updates(pairs)}


def pair_selected(view: LibraryView, values: dict, evt: gr.SelectData) -> dict:
    """A pair picked in the video's pairs: its id, and a line naming it (and why it was
    filtered out)."""
    row = selected_row(evt, values[view.video_pairs])
    reason = f": {escape_md(row['Filter reason'])}" if row["Filter reason"] else ""
    return {view.selected_pair: int(row["ID"]),
            view.pair_note: f"Pair **#{int(row['ID'])}** · {escape_md(row['Status'])}{reason}"}


def restore_pair(store: Store, settings: Settings, view: LibraryView, values: dict,
                 request: gr.Request, profile: gr.OAuthProfile | None = None) -> dict:
    """Restore the selected filtered pair to pending, as the signed-in user; redraws the
    video's pairs, the library table (its pair counts) and the header."""
    pair_id, video_id = values[view.selected_pair], values[view.selected]
    if pair_id is None:
        raise gr.Error("Select a pair in the table first.")
    try:
        review(store, pair_id, "restore", user=who(settings, request, profile))
    except StoreError as err:
        raise gr.Error(escape_html(err))
    return {view.pair_note: f"Pair **#{pair_id}** restored to pending.",
            **view.pairs_updates(pairs_table(store, video_id)),
            view.table: view.shown_table(store, values),
            view.header: header_markdown(store, settings)}


# Typed parameters (gr.Request, gr.OAuthProfile): Gradio fills in the log-in.
def add_by_path(store: Store, settings: Settings, view: LibraryView, values: dict,
                request: gr.Request, profile: gr.OAuthProfile | None = None,
                progress=gr.Progress()) -> dict:
    """Add the files and folders typed in the path box (:func:`add_server_paths`)."""
    report = add_server_paths(store, settings, who(settings, request, profile),
                              values[view.add_path],
                              progress=_gradio_progress(progress, "ingesting"))
    return after_ingest(store, settings, view, report, values)


def upload_videos(store: Store, settings: Settings, view: LibraryView, values: dict,
                  request: gr.Request, profile: gr.OAuthProfile | None = None,
                  progress=gr.Progress()) -> dict:
    """Add the uploaded files (open to every user); nothing changes when none came."""
    files = values[view.upload]
    if not files:
        return {}
    report = library.add_uploads(store, files, settings.upload_dir,
                                 user=who(settings, request, profile),
                                 progress=_gradio_progress(progress, "adding"))
    return after_ingest(store, settings, view, report, values)


def after_ingest(store: Store, settings: Settings, view: LibraryView,
                 report: library.IngestReport, values: dict) -> dict:
    """What adding videos changes: the report, the table (for the filters in ``values``),
    the header's counts and the empty-library hint."""
    return {view.add_result: _report_markdown(report), view.table: view.shown_table(store, values),
            view.header: header_markdown(store, settings), view.empty_hint: empty_note(store)}


def show_add_path(settings: Settings, view: LibraryView, request: gr.Request,
                  profile: gr.OAuthProfile | None = None) -> dict:
    """On page load in a shared app: the server-path box, shown to an admin only."""
    return {view.add_path_box: gr.update(visible=_may_add_by_path(settings, request, profile))}


def _may_add_by_path(settings: Settings, request: gr.Request | None,
                     profile: gr.OAuthProfile | None) -> bool:
    try:
        return access.can_add_by_path(settings, current_user(settings, None, request, profile))
    except gr.Error:  # not signed in yet
        return False


def add_server_paths(store: Store, settings: Settings, user: str, text: str,
                     progress=None) -> library.IngestReport:
    """Ingest the files and folders typed one per line, as ``user``; refuses (``gr.Error``)
    what :func:`tpo.access.check_server_paths` does not allow, before reading anything."""
    paths = [p.strip() for p in (text or "").splitlines() if p.strip()]
    if not paths:
        raise gr.Error("Type a file or folder path on the server first.")
    try:
        allowed = access.check_server_paths(settings, user, paths)
    except access.AccessError as err:
        raise gr.Error(escape_html(err))
    return library.ingest(store, allowed, user=user, progress=progress)


def pairs_table(store: Store, video_id: int) -> pd.DataFrame:
    rows = store.list_pairs(video_id=video_id)
    return pd.DataFrame(
        [[p["id"], p["kind"], p["strategy"],
          (f"{format_time(p['segment_start'])}–{format_time(p['segment_end'])}"
           if p["segment_start"] is not None else "whole video"),
          p["question"], p["status"], p["filter_reason"] or ""] for p in rows],
        columns=PAIR_COLUMNS)


def show_video(store: Store, settings: Settings, video_id: int) -> tuple[str, str, str, pd.DataFrame]:
    """(player html, details markdown, frame strip html, pairs table) for one video."""
    try:
        row = store.get_video(video_id)
    except StoreError as err:
        raise gr.Error(escape_html(err))
    pairs = pairs_table(store, video_id)
    if row["status"] != "ready":
        return html.note("This file cannot be played."), video_details(row), "", pairs
    if not Path(row["path"]).is_file():
        return (html.note("The file is no longer on disk."),
                video_details(row) + f"\n\n**Missing file:** <code>{escape_md(row['path'])}</code>",
                "", pairs)
    try:
        entries = frame_strip(row["path"], row["sha256"], settings.thumb_dir,
                              n=settings.strip_frames, max_side=settings.thumb_size)
    except video.VideoError as err:
        strip = html.note(f"Cannot sample frames: {err.reason}")
    else:
        strip = html.frame_strip(entries, settings.thumb_dir)
    return html.player(video_id), video_details(row), strip, pairs


def _report_markdown(report: library.IngestReport) -> str:
    lines = [f"**{escape_md(report.summary())}**"]
    lines += [f"- failed: <code>{escape_md(Path(p).name)}</code>: {escape_md(why)}"
              for p, why in report.failed]
    lines += [f"- skipped: <code>{escape_md(Path(p).name)}</code>: {escape_md(why)}"
              for p, why in report.skipped]
    return "\n".join(lines)


def _gradio_progress(progress: gr.Progress, what: str):
    def update(done: int, total: int, label: str) -> None:
        progress((done, total), desc=f"{what} {Path(label).name}" if label else what, unit="files")
    return update
