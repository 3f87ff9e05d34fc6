"""The Compare tab: two models answer the same question on the same frames, side by side,
streamed; a blind vote (A better / B better / tie / both bad) reveals the names; a
leaderboard of win rates. Benchmarks have their own tab (:mod:`ui.evaluate`).

Answers come from a ``compare`` job (:mod:`tpo.evaluation.compare`), which writes them into the store
as they are generated; this tab polls the comparison twice a second while it is answering
(and not at all otherwise).
Whether names are shown is decided here from the stored row (not blind, or this person has
voted), so a reload never reveals a blind comparison early.
"""

from __future__ import annotations

from html import escape

import gradio as gr
import pandas as pd

from tpo import jobs
from tpo.evaluation import compare
from tpo.config import Settings
from tpo.media.library import add_uploads, file_sha256
from tpo.models.modelref import resolve
from tpo.store import Store, StoreError
from tpo.media.thumbs import frames_at
from tpo.media.video import VideoError
from ui import html
from ui.identity import current_user
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
    try:
        entries = frames_at(video["path"], video["sha256"], row["timestamps"], settings.thumb_dir)
    except VideoError as err:
        return html.note(f"Frames cannot be shown: {err}")
    return (f'<div class="tpo-side-title">The {len(entries)} frames both models saw '
            f'(the same for A and B; click to seek)</div>'
            + html.frame_strip(entries, settings.thumb_dir, player_id=PLAYER_ID,
                               strip_id="compare-strip"))


def build(store: Store, settings: Settings, picker: ModelPicker) -> None:
    """Lay out the tab inside the current Blocks and wire its events; the first model
    follows the app-wide ``picker``."""
    logins = settings.logins()
    comparison = gr.State(None)  # id of the comparison on screen
    queue = gr.State([])  # ids of the comparisons asked together (Prev / Next go through them)
    seen = gr.State(None)  # what the last poll showed (see on_tick)
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
        ask = gr.Button("Ask both models", variant="primary", scale=2, elem_id="compare-ask")
        ask_all = gr.Button("Ask every suggested question", scale=1, elem_id="compare-ask-all")
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
        board, board_note = noted_table(NO_VOTES, lambda: leaderboard_frame(store),
                                        elem_id="compare-leaderboard")
    # Polls only while a comparison is being answered: started by Ask, stopped once the
    # finished answers are drawn (a vote redraws by itself).
    timer = gr.Timer(STREAM_POLL_S, active=False)

    def who(typed, request, profile) -> str:
        return current_user(settings, typed, request, profile)

    def view(comparison_id, name: str, row: dict | None = None):
        """Everything that shows a comparison (its row, when the caller has just read it):
        answers, reveal, job, frames."""
        if comparison_id is None:
            return (side_html(None, "a", name), side_html(None, "b", name), "", "", "")
        row = row or compare.get(store, comparison_id)
        job = jobs.get(store, row["job_id"]) if row["job_id"] else None
        return (side_html(row, "a", name), side_html(row, "b", name), reveal_html(row, name),
                status_html(store, job) if job and job["status"] != "succeeded" else "",
                frames_html(store, settings, row) if row["status"] == "done" else "")

    def on_video(choice):
        video_id = video_id_of(choice)
        if video_id is None:
            return gr.update(choices=[], value=None), ""
        return (gr.update(choices=compare.questions_for_video(store, video_id), value=None),
                html.player(video_id, PLAYER_ID))

    def on_upload(path, typed, request: gr.Request, profile: gr.OAuthProfile | None = None):
        if not path:
            return gr.update()
        report = add_uploads(store, [path], settings.upload_dir,
                             user=who(typed, request, profile))
        if report.failed:
            raise gr.Error(f"Not added: {report.failed[0][1]}")
        if report.added:
            row = store.get_video(report.added[0])
        else:  # the same bytes are in the library already: use that video
            row = store.find_video(sha256=file_sha256(path))
        gr.Info(f"{row['name']} is in the library as video #{row['id']}.")
        return gr.update(choices=video_choices(store), value=f"#{row['id']} {row['name']}")

    def start(a_text, b_text, choice, questions, n_frames, n_tokens, is_blind, name):
        """Create one comparison per question and the job that answers them all."""
        video_id = video_id_of(choice)
        if video_id is None:
            raise gr.Error("Choose a video first (or upload one).")
        try:
            ref_a, ref_b = resolve(store, a_text), resolve(store, b_text)
            config = compare.CompareConfig(frames=int(n_frames or 16),
                                           max_new_tokens=int(n_tokens or 256))
            ids = [compare.create(store, video_id, q, ref_a, ref_b, user=name,
                                  blind=bool(is_blind), config=config) for q in questions]
        except (ValueError, StoreError) as err:
            raise gr.Error(str(err))
        compare.submit(store, ids, log_dir=settings.log_dir)
        return (ids[0], ids, *view(ids[0], name), position_text(store, ids, ids[0]), None,
                gr.Timer(active=True))

    def on_ask(a_text, b_text, choice, q, n_frames, n_tokens, is_blind, typed,
               request: gr.Request, profile: gr.OAuthProfile | None = None):
        return start(a_text, b_text, choice, [q], n_frames, n_tokens, is_blind,
                     who(typed, request, profile))

    def on_ask_all(a_text, b_text, choice, n_frames, n_tokens, is_blind, typed,
                   request: gr.Request, profile: gr.OAuthProfile | None = None):
        video_id = video_id_of(choice)
        questions = compare.questions_for_video(store, video_id) if video_id else []
        if video_id is not None and not questions:
            raise gr.Error("This video has no ground-truth or pair questions: type one and use "
                           "Ask both models.")
        return start(a_text, b_text, choice, questions, n_frames, n_tokens, is_blind,
                     who(typed, request, profile))

    def on_step(step: int):
        def go(ids, current, typed, request: gr.Request,
               profile: gr.OAuthProfile | None = None):
            if not ids:
                raise gr.Error("Ask a question first.")
            k = max(0, min(len(ids) - 1, ids.index(current) + step))
            try:
                name = who(typed, request, profile)
            except gr.Error:
                name = ""
            return (ids[k], *view(ids[k], name), position_text(store, ids, ids[k]), None)
        return go

    def on_vote(choice_key):
        def vote(comparison_id, typed, request: gr.Request,
                 profile: gr.OAuthProfile | None = None):
            if comparison_id is None:
                raise gr.Error("Ask both models a question first.")
            name = who(typed, request, profile)
            try:
                compare.vote(store, comparison_id, name, choice_key)
            except StoreError as err:
                raise gr.Error(str(err))
            return (*view(comparison_id, name), *table_or_note(leaderboard_frame(store), NO_VOTES))
        return vote

    def on_tick(comparison_id, ids, seen, typed, request: gr.Request,
                profile: gr.OAuthProfile | None = None):
        """Redraw only when the comparison changed since the last poll (an answer grew, it
        finished, someone voted): an unchanged page is not re-sent twice a second. Polling
        stops once no comparison of the queue is being answered."""
        if comparison_id is None:
            return (*(gr.update(),) * 5, seen, gr.Timer(active=False))
        rows = {i: compare.get(store, i) for i in (ids or [comparison_id])}
        row = rows.get(comparison_id) or compare.get(store, comparison_id)
        still = gr.Timer(active=any(r["status"] == "answering" for r in rows.values()))
        now_seen = [comparison_id, row["status"], len(row["answer_a"] or ""),
                    len(row["answer_b"] or ""), len(row["votes"])]
        if now_seen == seen:
            return (*(gr.update(),) * 5, seen, still)
        try:
            name = who(typed, request, profile)
        except gr.Error:  # not signed in: nothing is revealed
            name = ""
        return (*view(comparison_id, name, row), now_seen, still)

    shown = [answer_a, answer_b, reveal, status, strip]
    video.change(on_video, video, [suggested, player])
    video.focus(lambda: gr.update(choices=video_choices(store)), None, video)
    suggested.change(lambda q: q or gr.update(), suggested, question)
    upload.upload(on_upload, [upload, user], video)
    run_pick.focus(lambda: gr.update(choices=model_choices(store)[1:]), None, run_pick)
    run_pick.change(lambda c: pick_run(store, c), run_pick, [model_a, model_b])
    picker.follow(model_a)
    started = [comparison, queue, *shown, position, seen, timer]
    ask.click(on_ask, [model_a, model_b, video, question, frames, tokens, blind, user], started)
    ask_all.click(on_ask_all, [model_a, model_b, video, frames, tokens, blind, user], started)
    prev.click(on_step(-1), [queue, comparison, user], [comparison, *shown, position, seen])
    nxt.click(on_step(+1), [queue, comparison, user], [comparison, *shown, position, seen])
    for (key, _label, _variant), button in zip(VOTE_BUTTONS, votes):
        button.click(on_vote(key), [comparison, user], [*shown, board, board_note])
    timer.tick(on_tick, [comparison, queue, seen, user], [*shown, seen, timer],
               show_progress="hidden")
