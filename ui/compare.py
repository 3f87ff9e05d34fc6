"""The Compare tab: two models answer the same question on the same frames, side by side,
streamed; a blind vote (A better / B better / tie / both bad) reveals the names; a
leaderboard of win rates. Benchmarks have their own tab (:mod:`ui.evaluate`).

Answers come from a ``compare`` job (:mod:`tpo.evaluation.compare`), which writes them into the store
as they are generated; this tab polls the comparison twice a second while it is answering
(and not at all otherwise).
Whether names are shown is decided here from the stored row (not blind, or this person has
voted), so a reload never reveals a blind comparison early.

:func:`build` lays the tab out and wires it; the handlers are the module's functions below it,
each given the values of its inputs as one dict keyed by component (:class:`CompareTab`) and
returning updates keyed by component.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from html import escape

import gradio as gr
import pandas as pd

from tpo import jobs
from tpo.evaluation import compare
from tpo.config import Settings
from tpo.media.library import add_uploads, file_sha256
from tpo.models.modelref import resolve
from tpo.store import Store, StoreError
from tpo.media.thumbs import at_paths
from ui import html
from ui.identity import bind, current_user
from ui.jobs import status_html
from ui.models import ModelPicker, model_choices, picked_model
from ui.tables import noted_table, table_or_note

PLAYER_ID = "tpo-compare-player"
STREAM_POLL_S = 0.5
NO_VOTES = "No votes yet: ask both models a question and vote; win rates appear here."
VOTE_BUTTONS = (("a", "A is better", "primary"), ("b", "B is better", "primary"),
                ("tie", "Tie", "secondary"), ("both_bad", "Both are bad", "stop"))


def video_choices(store: Store) -> list[str]:
    return [f"#{v['id']} {v['name']}" for v in store.list_videos(status="ready")]


def video_id_of(choice: str | None) -> int | None:
    if not choice:
        return None
    return int(choice.split(" ", 1)[0].lstrip("#"))


def pick_run(store: Store, choice: str | None) -> tuple:
    """(first, second) model fields for a picked fine-tuned run: its base against the run -
    the comparison a fine-tune is for."""
    row = picked_model(store, choice)
    if row is None:
        return gr.update(), gr.update()
    return row["base"], choice


def revealed(row: dict, user: str) -> bool:
    return not row["blind"] or any(v["user"] == user for v in row["votes"])


def side_html(row: dict | None, side: str, user: str) -> str:
    """One model's column: its title (name only when revealed) and its answer so far."""
    if row is None:
        return html.note(f"Model {side.upper()}'s answer appears here.")
    name = row[f"model_{side}"]
    title = f"Model {side.upper()}" + (f": {escape(name)}" if revealed(row, user) else "")
    text = row[f"answer_{side}"] or ""
    streaming = row["status"] == "answering"
    body = escape(text) if text else ("…" if streaming else "(no answer)")
    cursor = '<span class="tpo-cursor">▌</span>' if streaming and (text or side == "a") else ""
    return (f'<div class="tpo-answer" data-side="{side}" data-status="{row["status"]}">'
            f'<div class="tpo-side-title">{title}</div>'
            f'<div class="tpo-answer-text">{body}{cursor}</div></div>')


def reveal_html(row: dict | None, user: str) -> str:
    """After this person's vote (or in open mode): which model was A and B, and the votes."""
    if row is None:
        return ""
    if row["status"] == "failed":
        return f'<div class="tpo-job-error">The models could not answer: {escape(row["error"] or "")}</div>'
    mine = next((v for v in row["votes"] if v["user"] == user), None)
    if not revealed(row, user):
        return html.note("Blind comparison: the names are revealed after your vote.")
    parts = [f'<div class="tpo-reveal" data-testid="reveal">A was <b>{escape(row["model_a"])}</b>'
             f' · B was <b>{escape(row["model_b"])}</b>']
    if mine:
        parts.append(f" · your vote: <b>{escape(compare.VOTE_LABELS[mine['vote']])}</b>")
    if len(row["votes"]) > 1 or (row["votes"] and not mine):
        parts.append(f" · {len(row['votes'])} vote(s) in all")
    parts.append("</div>")
    return "".join(parts)


def position_text(store: Store, ids: list[int], comparison_id: int) -> str:
    """"Comparison 2 of 7: <question>" when several were asked together, else nothing."""
    if len(ids) <= 1:
        return ""
    row = compare.get(store, comparison_id)
    return (f"Comparison **{ids.index(comparison_id) + 1} of {len(ids)}**: "
            f"{escape(row['question'])}")


def leaderboard_frame(store: Store) -> pd.DataFrame:
    rows = compare.leaderboard(store)
    if not rows:
        return pd.DataFrame(columns=["model", "opponent", "votes", "wins", "losses", "ties",
                                     "both bad", "win rate %", "95% CI"])
    return pd.DataFrame([{
        "model": r["model"], "opponent": r["opponent"], "votes": r["votes"], "wins": r["wins"],
        "losses": r["losses"], "ties": r["ties"], "both bad": r["both_bad"],
        "win rate %": None if r["win_rate"] is None else round(100 * r["win_rate"], 1),
        "95% CI": "" if r["win_rate"] is None else
        f"{100 * r['ci_low']:.0f}–{100 * r['ci_high']:.0f}"} for r in rows])


def frames_html(store: Store, settings: Settings, row: dict | None) -> str:
    if row is None or not row["timestamps"]:
        return ""
    video = store.get_video(row["video_id"])
    if not os.path.isfile(video["path"]):
        return html.note(f"Frames cannot be shown: the file of {video['name']} is missing.")
    # Named, not decoded: the thumbnail route draws a frame not cached yet when the browser
    # first asks for it (ui.server), a placeholder for one that cannot be decoded; this
    # answer (and every poll while the models answer) decodes nothing.
    entries = at_paths(video["sha256"], row["timestamps"], settings.thumb_dir)
    return (f'<div class="tpo-side-title">The {len(entries)} frames both models saw '
            f'(the same for A and B; click to seek)</div>'
            + html.frame_strip(entries, settings.thumb_dir, player_id=PLAYER_ID,
                               strip_id="compare-strip", video_id=video["id"]))


@dataclass(frozen=True)
class CompareTab:
    """The tab's components. A handler gets the values of its inputs as one dict keyed by
    them and returns updates keyed by them (a component left out stays as it is)."""

    model_a: gr.Textbox
    model_b: gr.Textbox
    run_pick: gr.Dropdown
    blind: gr.Checkbox
    user: gr.Textbox  # the name typed (hidden when people sign in)
    video: gr.Dropdown
    frames: gr.Number
    tokens: gr.Number
    upload: gr.File
    suggested: gr.Dropdown
    question: gr.Textbox
    position: gr.Markdown
    status: gr.HTML
    answer_a: gr.HTML
    answer_b: gr.HTML
    reveal: gr.HTML
    strip: gr.HTML
    player: gr.HTML
    board: gr.Dataframe
    board_note: gr.HTML
    comparison: gr.State  # id of the comparison on screen
    queue: gr.State  # ids of the comparisons asked together (Prev / Next go through them)
    seen: gr.State  # what the last poll showed (see poll)
    timer: gr.Timer

    @property
    def shown(self) -> list:
        """What shows the comparison on screen (see :func:`comparison_view`)."""
        return [self.answer_a, self.answer_b, self.reveal, self.status, self.strip]

    @property
    def started(self) -> list:
        """What Ask changes: the comparison on screen, the queue, the view, and the poll."""
        return [self.comparison, self.queue, *self.shown, self.position, self.seen, self.timer]

    def ask_inputs(self, *, question: bool) -> set:
        """The settings Ask reads (Ask every suggested question: all but the question)."""
        parts = {self.model_a, self.model_b, self.video, self.frames, self.tokens, self.blind,
                 self.user}
        return parts | {self.question} if question else parts


def refresh_videos(store: Store, tab: CompareTab) -> dict:
    """The video list as it is now (on focus: videos added since the page loaded)."""
    return {tab.video: gr.update(choices=video_choices(store))}


def refresh_runs(store: Store, tab: CompareTab) -> dict:
    """The fine-tuned runs as they are now (on focus: a run registered since the page loaded)."""
    return {tab.run_pick: gr.update(choices=model_choices(store)[1:])}


def who(settings: Settings, tab: CompareTab, values: dict, request: gr.Request | None,
        profile: gr.OAuthProfile | None) -> str:
    """The person acting (:func:`ui.identity.current_user`); gr.Error when one must sign in."""
    return current_user(settings, values[tab.user], request, profile)


def viewer(settings: Settings, tab: CompareTab, values: dict, request: gr.Request | None,
           profile: gr.OAuthProfile | None) -> str:
    """The person looking, "" when not signed in (then nothing blind is revealed)."""
    try:
        return who(settings, tab, values, request, profile)
    except gr.Error:
        return ""


def comparison_view(store: Store, settings: Settings, tab: CompareTab, comparison_id: int | None,
                    name: str, row: dict | None = None) -> dict:
    """Everything that shows a comparison (its row, when the caller has just read it):
    answers, reveal, job, frames; ``name``: who is looking (names show once they voted)."""
    if comparison_id is None:
        return {tab.answer_a: side_html(None, "a", name), tab.answer_b: side_html(None, "b", name),
                tab.reveal: "", tab.status: "", tab.strip: ""}
    row = row or compare.get(store, comparison_id)
    job = jobs.get(store, row["job_id"]) if row["job_id"] else None
    return {tab.answer_a: side_html(row, "a", name), tab.answer_b: side_html(row, "b", name),
            tab.reveal: reveal_html(row, name),
            tab.status: status_html(store, job) if job and job["status"] != "succeeded" else "",
            tab.strip: frames_html(store, settings, row) if row["status"] == "done" else ""}


def show_video(store: Store, tab: CompareTab, values: dict) -> dict:
    """A video picked: its questions to choose from and its player."""
    video_id = video_id_of(values[tab.video])
    if video_id is None:
        return {tab.suggested: gr.update(choices=[], value=None), tab.player: ""}
    return {tab.suggested: gr.update(choices=compare.questions_for_video(store, video_id),
                                     value=None),
            tab.player: html.player(video_id, PLAYER_ID)}


def upload_video(store: Store, settings: Settings, tab: CompareTab, values: dict,
                 request: gr.Request | None, profile: gr.OAuthProfile | None = None) -> dict:
    """A video uploaded: added to the library (or found there by its bytes) and selected."""
    path = values[tab.upload]
    if not path:
        return {}
    report = add_uploads(store, [path], settings.upload_dir,
                         user=who(settings, tab, values, request, profile))
    if report.failed:
        raise gr.Error(f"Not added: {report.failed[0][1]}")
    if report.added:
        row = store.get_video(report.added[0])
    else:  # the same bytes are in the library already: use that video
        row = store.find_video(sha256=file_sha256(path))
    gr.Info(f"{row['name']} is in the library as video #{row['id']}.")
    return {tab.video: gr.update(choices=video_choices(store), value=f"#{row['id']} {row['name']}")}


def start_comparisons(store: Store, settings: Settings, tab: CompareTab, values: dict,
                      questions: list[str], name: str) -> dict:
    """Create one comparison per question and the job that answers them all; the first is
    shown and the poll starts."""
    video_id = video_id_of(values[tab.video])
    if video_id is None:
        raise gr.Error("Choose a video first (or upload one).")
    try:
        ref_a, ref_b = resolve(store, values[tab.model_a]), resolve(store, values[tab.model_b])
        config = compare.CompareConfig(frames=int(values[tab.frames] or 16),
                                       max_new_tokens=int(values[tab.tokens] or 256))
        ids = [compare.create(store, video_id, q, ref_a, ref_b, user=name,
                              blind=bool(values[tab.blind]), config=config) for q in questions]
    except (ValueError, StoreError) as err:
        raise gr.Error(str(err))
    compare.submit(store, ids, log_dir=settings.log_dir)
    return {tab.comparison: ids[0], tab.queue: ids,
            **comparison_view(store, settings, tab, ids[0], name),
            tab.position: position_text(store, ids, ids[0]), tab.seen: None,
            tab.timer: gr.Timer(active=True)}


def ask(store: Store, settings: Settings, tab: CompareTab, values: dict,
        request: gr.Request | None, profile: gr.OAuthProfile | None = None) -> dict:
    """Ask both models: the typed question."""
    return start_comparisons(store, settings, tab, values, [values[tab.question]],
                             who(settings, tab, values, request, profile))


def ask_all(store: Store, settings: Settings, tab: CompareTab, values: dict,
            request: gr.Request | None, profile: gr.OAuthProfile | None = None) -> dict:
    """Ask every suggested question of the video (ground truth and pairs) in one job."""
    video_id = video_id_of(values[tab.video])
    questions = compare.questions_for_video(store, video_id) if video_id else []
    if video_id is not None and not questions:
        raise gr.Error("This video has no ground-truth or pair questions: type one and use "
                       "Ask both models.")
    return start_comparisons(store, settings, tab, values, questions,
                             who(settings, tab, values, request, profile))


def step(store: Store, settings: Settings, tab: CompareTab, delta: int, values: dict,
         request: gr.Request | None, profile: gr.OAuthProfile | None = None) -> dict:
    """Previous (``delta`` -1) / Next (+1) comparison of those asked together."""
    ids = values[tab.queue]
    if not ids:
        raise gr.Error("Ask a question first.")
    k = max(0, min(len(ids) - 1, ids.index(values[tab.comparison]) + delta))
    name = viewer(settings, tab, values, request, profile)
    return {tab.comparison: ids[k], **comparison_view(store, settings, tab, ids[k], name),
            tab.position: position_text(store, ids, ids[k]), tab.seen: None}


def cast_vote(store: Store, settings: Settings, tab: CompareTab, choice: str, values: dict,
              request: gr.Request | None, profile: gr.OAuthProfile | None = None) -> dict:
    """This person's vote (a :data:`VOTE_BUTTONS` key) on the comparison shown: the names
    are revealed and the leaderboard redrawn; gr.Error for a vote that cannot count."""
    comparison_id = values[tab.comparison]
    if comparison_id is None:
        raise gr.Error("Ask both models a question first.")
    name = who(settings, tab, values, request, profile)
    try:
        compare.vote(store, comparison_id, name, choice)
    except StoreError as err:
        raise gr.Error(str(err))
    board, board_note = table_or_note(leaderboard_frame(store), NO_VOTES)
    return {**comparison_view(store, settings, tab, comparison_id, name),
            tab.board: board, tab.board_note: board_note}


def poll(store: Store, settings: Settings, tab: CompareTab, values: dict,
         request: gr.Request | None, profile: gr.OAuthProfile | None = None) -> dict:
    """Redraw only when the comparison changed since the last poll (an answer grew, it
    finished, someone voted): an unchanged page is not re-sent twice a second. Polling
    stops once no comparison of the queue is being answered."""
    comparison_id, seen = values[tab.comparison], values[tab.seen]
    if comparison_id is None:
        return {tab.timer: gr.Timer(active=False)}
    rows = {i: compare.get(store, i) for i in (values[tab.queue] or [comparison_id])}
    row = rows.get(comparison_id) or compare.get(store, comparison_id)
    still = gr.Timer(active=any(r["status"] == "answering" for r in rows.values()))
    now_seen = [comparison_id, row["status"], len(row["answer_a"] or ""),
                len(row["answer_b"] or ""), len(row["votes"])]
    if now_seen == seen:
        return {tab.timer: still}
    name = viewer(settings, tab, values, request, profile)
    return {**comparison_view(store, settings, tab, comparison_id, name, row),
            tab.seen: now_seen, tab.timer: still}


def build(store: Store, settings: Settings, picker: ModelPicker) -> CompareTab:
    """Lay out the tab inside the current Blocks and wire its events; the first model
    follows the app-wide ``picker``. Returns the tab's components."""
    logins = settings.logins()
    comparison = gr.State(None)
    queue = gr.State([])
    seen = gr.State(None)
    with gr.Row():
        model_a = gr.Textbox(picker.model.value, scale=3, elem_id="compare-model-a",
                             label="First model: hub id, local folder or run #id (follows the "
                                   "model picked above)")
        model_b = gr.Textbox(label="Second model: hub id, local folder or run #id", scale=3,
                             elem_id="compare-model-b")
        run_pick = gr.Dropdown(model_choices(store)[1:], value=None, scale=2,
                               label="Compare a fine-tuned run with its base",
                               elem_id="compare-run")
    with gr.Row():
        blind = gr.Checkbox(True, label="Blind: the two models answer as A and B in random order; "
                                        "names revealed after your vote (off: A is the first)",
                            elem_id="compare-blind")
        user = gr.Textbox(settings.user, label="Your name (recorded with your vote)", scale=1,
                          visible=not (logins or settings.hf_oauth), elem_id="compare-user")
        if settings.hf_oauth:
            gr.LoginButton(scale=0)
    with gr.Row():
        video = gr.Dropdown(video_choices(store), value=None, label="Video", scale=3,
                            elem_id="compare-video")
        frames = gr.Number(16, precision=0, minimum=1, label="Frames (uniform)", scale=1)
        tokens = gr.Number(256, precision=0, minimum=1, label="Max new tokens", scale=1)
    with gr.Accordion("Upload a video (added to the library)", open=False):
        upload = gr.File(label="Video file", file_count="single", elem_id="compare-upload")
    with gr.Row():
        suggested = gr.Dropdown([], value=None, label="Questions from the video's ground truth "
                                "and pairs", scale=2, elem_id="compare-suggested")
        question = gr.Textbox(label="Question", scale=3, elem_id="compare-question")
    with gr.Row():
        ask_button = gr.Button("Ask both models", variant="primary", scale=2,
                               elem_id="compare-ask")
        ask_all_button = gr.Button("Ask every suggested question", scale=1,
                                   elem_id="compare-ask-all")
    with gr.Row():
        prev = gr.Button("◀ Previous", size="sm", scale=0, elem_id="compare-prev")
        position = gr.Markdown(elem_id="compare-position")
        nxt = gr.Button("Next ▶", size="sm", scale=0, elem_id="compare-next")
    status = gr.HTML(elem_id="compare-job")
    with gr.Row(equal_height=False):
        answer_a = gr.HTML(side_html(None, "a", ""), elem_id="compare-answer-a")
        answer_b = gr.HTML(side_html(None, "b", ""), elem_id="compare-answer-b")
    with gr.Row():
        votes = [gr.Button(label, variant=variant, elem_id=f"compare-vote-{key}")
                 for key, label, variant in VOTE_BUTTONS]
    reveal = gr.HTML(elem_id="compare-reveal")
    strip = gr.HTML(elem_id="compare-frames")
    player = gr.HTML()
    with gr.Accordion("Leaderboard: win rates per pair of models", open=True):
        board, board_note = noted_table(NO_VOTES, bind(leaderboard_frame, store),
                                        elem_id="compare-leaderboard")
    # Polls only while a comparison is being answered: started by Ask, stopped once the
    # finished answers are drawn (a vote redraws by itself).
    timer = gr.Timer(STREAM_POLL_S, active=False)
    tab = CompareTab(model_a=model_a, model_b=model_b, run_pick=run_pick, blind=blind, user=user,
                     video=video, frames=frames, tokens=tokens, upload=upload,
                     suggested=suggested, question=question, position=position, status=status,
                     answer_a=answer_a, answer_b=answer_b, reveal=reveal, strip=strip,
                     player=player, board=board, board_note=board_note, comparison=comparison,
                     queue=queue, seen=seen, timer=timer)

    video.change(bind(show_video, store, tab), {video}, [suggested, player])
    video.focus(bind(refresh_videos, store, tab), None, video)
    suggested.change(lambda q: q or gr.update(), suggested, question)  # a pick fills the box
    upload.upload(bind(upload_video, store, settings, tab), {upload, user}, video)
    run_pick.focus(bind(refresh_runs, store, tab), None, run_pick)
    run_pick.change(bind(pick_run, store), run_pick, [model_a, model_b])
    picker.follow(model_a)
    ask_button.click(bind(ask, store, settings, tab),
                     tab.ask_inputs(question=True), tab.started)
    ask_all_button.click(bind(ask_all, store, settings, tab),
                         tab.ask_inputs(question=False), tab.started)
    browsing = [comparison, *tab.shown, position, seen]
    for button, delta in ((prev, -1), (nxt, +1)):
        button.click(bind(step, store, settings, tab, delta),
                     {queue, comparison, user}, browsing)
    for (key, _label, _variant), button in zip(VOTE_BUTTONS, votes):
        button.click(bind(cast_vote, store, settings, tab, key),
                     {comparison, user}, [*tab.shown, board, board_note])
    timer.tick(bind(poll, store, settings, tab), {comparison, queue, seen, user},
               [*tab.shown, seen, timer], show_progress="hidden")
    return tab
