"""The Team tab: curating as a team of named reviewers, on top of :mod:`tpo.curation.teams`.

Four parts: **Assign** splits the unassigned pairs of a queue among reviewers (by count,
video or kind, with k reviewers on a share of the pairs for overlap) or takes back the
undecided ones; **Progress** is each reviewer's share, pairs decided and actions per hour;
**Agreement** is the table per reviewer pair (percent agreement, Cohen's kappa) and overall
(Fleiss' kappa), with the open disagreements to adjudicate; **Guidelines** is the review
guidelines' Markdown, edited here and saved as a new version each time.
:func:`guidelines_markdown` is what the Curate view shows beside a pair.

Who acts is :func:`ui.identity.current_user` (the log-in when there is one). In a shared app
(log-ins) assigning and editing the guidelines is for the admins (``TPO_ADMINS``), as
adding videos by server path is; everyone sees progress, agreement and the guidelines.
The handlers are module functions over a store, so tests call them without a browser.
Names and texts from people are escaped; the guidelines are Markdown on purpose, shown by
``gr.Markdown``, which strips HTML.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone

import gradio as gr
import pandas as pd

from tpo.config import Settings
from tpo.curation import teams
from tpo.errors import TPOError
from tpo.store import PAIR_STATUSES, Store
from ui.html import escape_html, escape_md
from ui.identity import bind, current_user
from ui.tables import noted_table, table_or_note

__all__ = ["AGREEMENT_COLUMNS", "DISAGREEMENT_COLUMNS", "PROGRESS_COLUMNS", "agreement_view",
           "assign_pairs", "build", "current_text", "disagreements_frame", "guidelines_markdown",
           "guidelines_status", "may_lead", "parse_reviewers", "progress_frame",
           "save_guidelines", "take_back"]

ANY = "any"
MAX_DISAGREEMENTS = 500  # rows of the adjudication queue shown at once (ids: `tpo agreement`)
QUESTION_CHARS = 160  # a question longer than this is cut in the disagreement table
PROGRESS_COLUMNS = ["reviewer", "assigned", "done", "left", "actions", "actions/hour",
                    "last hour", "last action (UTC)"]
AGREEMENT_COLUMNS = ["reviewer A", "reviewer B", "pairs", "agreement %", "kappa", "kappa is"]
DISAGREEMENT_COLUMNS = ["pair", "question", "decisions", "status"]
NO_PROGRESS = "No reviewers yet: assign pairs above, or review some in the Curate tab."
NO_AGREEMENT = ("No pair has been decided by two reviewers yet: assign with overlap "
                "(2 reviewers on a share of the pairs), then review.")
NO_DISAGREEMENTS = "No open disagreements: nothing to adjudicate."
NO_GUIDELINES = "No guidelines yet: write them below and save."


# --------------------------------------------------------------------------------------------
# Who may lead


def may_lead(settings: Settings, user: str) -> bool:
    """Whether ``user`` may assign pairs and edit the guidelines: anyone in a single-user
    app; with log-ins only the admins (``TPO_ADMINS``)."""
    return not settings.multi_user or user in settings.admin_names()


def _check_lead(settings: Settings, user: str, what: str) -> None:
    if not may_lead(settings, user):
        raise gr.Error(escape_html(f"{user} may not {what} in this shared app: ask whoever "
                                   "runs it to add you to TPO_ADMINS"))


# --------------------------------------------------------------------------------------------
# Assign


def parse_reviewers(text: str | None) -> list[str]:
    """Reviewer names from the box: separated by commas, semicolons or line breaks (a name
    may hold spaces), blanks and repeats dropped, in the order typed."""
    names: list[str] = []
    for name in re.split(r"[,;\n]", text or ""):
        name = " ".join(name.split())
        if name and name not in names:
            names.append(name)
    return names


def assign_pairs(store: Store, settings: Settings, user: str, reviewers_text: str | None,
                 by: str, overlap: float | None, overlap_percent: float | None,
                 status: str | None, seed: float | None = 0) -> str:
    """Split the unassigned pairs with ``status`` (``any``: every status) among the named
    reviewers (:func:`tpo.curation.teams.assign`), ``overlap`` reviewers each on
    ``overlap_percent`` % of them; the report as Markdown. ``gr.Error`` for bad input."""
    _check_lead(settings, user, "assign pairs")
    names = parse_reviewers(reviewers_text)
    if not names:
        raise gr.Error("Name the reviewers, separated by commas (e.g. ana, bo, cy).")
    k = 1 if overlap in (None, "") else overlap
    if float(k) != int(k):
        raise gr.Error(f"Overlap is a whole number of reviewers per pair, not {k}.")
    percent = float(overlap_percent or 0)
    if not 0 <= percent <= 100:
        raise gr.Error(f"The overlap share is a percent of the pairs, 0 to 100, not {percent:g}.")
    try:
        report = teams.assign(store, names, by=by, overlap=int(k),
                              overlap_fraction=percent / 100 if int(k) > 1 else 0.0,
                              status=None if status in (ANY, "", None) else status,
                              user=user, seed=int(seed or 0))
    except TPOError as err:
        raise gr.Error(escape_html(err))
    shares = ", ".join(f"{escape_md(r)}: {n}" for r, n in report.per_reviewer.items())
    extra = (f"; **{report.n_overlap}** of them to {report.overlap} reviewers each"
             if report.n_overlap else "")
    return (f"Assigned **{report.n_pairs}** pairs by {escape_md(report.by)} ({shares}){extra}. "
            "Each reviewer's queue in Curate is now their own share.")


def take_back(store: Store, settings: Settings, user: str, reviewers_text: str | None) -> str:
    """Take back the pairs the named reviewers (none named: everyone) have not decided
    yet (:func:`tpo.curation.teams.unassign`); what happened, as Markdown."""
    _check_lead(settings, user, "take back assignments")
    names = parse_reviewers(reviewers_text)
    n = teams.unassign(store, names or None)
    whose = ", ".join(escape_md(r) for r in names) if names else "everyone"
    return f"Took back **{n}** undecided assignments ({whose})."


# --------------------------------------------------------------------------------------------
# Progress


def _when(stamp: str | None) -> str:
    """A stored ISO time as ``YYYY-MM-DD HH:MM`` in UTC (the store's clock); empty for none."""
    if not stamp:
        return ""
    try:
        at = datetime.fromisoformat(stamp)
    except ValueError:
        return stamp
    return (at.astimezone(timezone.utc) if at.tzinfo else at).strftime("%Y-%m-%d %H:%M")


def progress_frame(store: Store, *, now: datetime | None = None) -> pd.DataFrame:
    """One row per reviewer (:func:`tpo.curation.teams.progress`): pairs assigned, decided,
    left, review actions, actions per hour of active time, actions in the last hour, and
    when their last action was."""
    rows = [[r["reviewer"], r["assigned"], r["done"], r["left"], r["actions"],
             "" if r["actions_per_hour"] is None else round(r["actions_per_hour"], 1),
             r["last_hour"], _when(r["last_at"])] for r in teams.progress(store, now=now)]
    return pd.DataFrame(rows, columns=PROGRESS_COLUMNS)


# --------------------------------------------------------------------------------------------
# Agreement


def _kappa(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def agreement_frame(result: teams.Agreement) -> pd.DataFrame:
    """Per reviewer pair: pairs both decided, percent agreement, Cohen's kappa; then the
    overall row (every pair decided by two or more): mean agreement, Fleiss' kappa. Empty
    when no pair has two raters."""
    if not result.n_items:
        return pd.DataFrame(columns=AGREEMENT_COLUMNS)
    rows = [[p["a"], p["b"], p["n"], round(p["percent"], 1), _kappa(p["cohen"]), "Cohen's"]
            for p in result.pairs]
    rows.append(["all", "", result.n_items, round(result.percent, 1), _kappa(result.fleiss),
                 "Fleiss'"])
    return pd.DataFrame(rows, columns=AGREEMENT_COLUMNS)


def disagreements_frame(store: Store, result: teams.Agreement) -> pd.DataFrame:
    """The adjudication queue: each open disagreement's pair id, question, who decided what,
    and its status now (the first :data:`MAX_DISAGREEMENTS`)."""
    rows = []
    for pair_id in result.open_disagreements[:MAX_DISAGREEMENTS]:
        pair = store.get_pair(pair_id)
        question = pair.effective()["question"]
        if len(question) > QUESTION_CHARS:
            question = question[:QUESTION_CHARS - 1] + "…"
        decided = result.raters.get(pair_id, {})
        rows.append([pair_id, question, ", ".join(f"{u}: {d}" for u, d in sorted(decided.items())),
                     pair["status"]])
    return pd.DataFrame(rows, columns=DISAGREEMENT_COLUMNS)


def agreement_summary(result: teams.Agreement) -> str:
    """One Markdown line: items, agreement, Fleiss' kappa, disagreements open and settled."""
    if not result.n_items:
        return ""
    n_open = len(result.open_disagreements)
    shown = (f" (the first {MAX_DISAGREEMENTS} below; all ids: `tpo agreement --disagreements`)"
             if n_open > MAX_DISAGREEMENTS else "")
    return (f"**{result.n_items}** pairs decided by two or more reviewers: "
            f"**{result.percent:.1f} %** agreement, Fleiss' kappa **{_kappa(result.fleiss)}**. "
            f"Disagreements: {len(result.disagreements)}, of them {len(result.adjudicated)} "
            f"adjudicated and **{n_open} open**{shown}. An adjudicator (someone the pair is not "
            "assigned to) settles one by accepting or rejecting it in Curate.")


def agreement_view(store: Store) -> tuple[str, pd.DataFrame, pd.DataFrame]:
    """``(summary Markdown, agreement table, disagreement queue)`` as stored now."""
    result = teams.agreement(store)
    return (agreement_summary(result), agreement_frame(result),
            disagreements_frame(store, result))


# --------------------------------------------------------------------------------------------
# Guidelines


def _byline(row: dict) -> str:
    return (f"version {row['version']}, saved by {escape_md(row['user'] or '?')} "
            f"at {escape_md(_when(row['created_at']))} UTC")


def guidelines_markdown(store: Store) -> str:
    """The newest review guidelines as Markdown for a ``gr.Markdown`` beside the pair in
    Curate: a small heading with the version, author and time, then the text; "" when none
    are saved (the caller may then hide its box)."""
    row = store.guidelines()
    if row is None:
        return ""
    return f"**Review guidelines** ({_byline(row)})\n\n{row['text']}"


def current_text(store: Store) -> str:
    """The newest guidelines' text ("" when none), for the editor."""
    row = store.guidelines()
    return row["text"] if row else ""


def guidelines_status(store: Store) -> str:
    """Which version is current, by whom and when; or that there is none."""
    row = store.guidelines()
    if row is None:
        return NO_GUIDELINES
    return f"Current guidelines: **{_byline(row)}**."


def guidelines_history(store: Store) -> pd.DataFrame:
    return pd.DataFrame([[v["version"], v["user"] or "", _when(v["created_at"])]
                         for v in store.guideline_versions()],
                        columns=["version", "saved by", "at"])


def save_guidelines(store: Store, settings: Settings, user: str, text: str | None) -> str:
    """Save ``text`` as a new version of the guidelines (as ``user``); the new status line.
    An empty text is refused; the current text unchanged saves nothing."""
    _check_lead(settings, user, "edit the guidelines")
    text = (text or "").strip()
    if not text:
        raise gr.Error("The guidelines are empty: write them first.")
    current = store.guidelines()
    if current is not None and current["text"].strip() == text:
        return f"Unchanged: still {_byline(current)}."
    version = store.set_guidelines(text + "\n", user=user)
    return f"Saved as **version {version}**. " + guidelines_status(store)


# --------------------------------------------------------------------------------------------
# Layout


def build(store: Store, settings: Settings) -> TeamTab:
    """Lay out the tab inside the current Blocks and wire its events."""
    hidden_name = settings.multi_user  # a log-in names the user; no box to type another
    with gr.Row(equal_height=True):
        user = gr.Textbox(settings.user, label="Your name", max_lines=1, scale=1,
                          visible=not hidden_name, elem_id="team-user")
        lead_note = gr.Markdown(elem_id="team-lead-note")  # in a shared app: see show_lead

    with gr.Accordion("Assign: split the queue among reviewers", open=True,
                      elem_id="team-assign-panel"):
        with gr.Row(equal_height=True):
            reviewers = gr.Textbox(label="Reviewers (names, separated by commas)", scale=3,
                                   max_lines=1, placeholder="ana, bo, cy",
                                   elem_id="team-reviewers")
            by = gr.Dropdown(list(teams.BY), value="count", label="Split by", scale=1,
                             elem_id="team-by")
            status = gr.Dropdown([*PAIR_STATUSES, ANY], value="pending", scale=1,
                                 label="Pairs with status", elem_id="team-status")
        with gr.Row(equal_height=True):
            overlap = gr.Number(1, precision=0, minimum=1, label="Overlap: reviewers per pair "
                                "(1: none)", elem_id="team-overlap")
            overlap_percent = gr.Number(10, minimum=0, maximum=100,
                                        label="…on this % of the pairs", elem_id="team-fraction")
            seed = gr.Number(0, precision=0, label="Seed (which pairs overlap)",
                             elem_id="team-seed")
        with gr.Row():
            assign = gr.Button("Assign", variant="primary", elem_id="team-assign")
            unassign = gr.Button("Take back undecided pairs (of these reviewers; none: all)",
                                 elem_id="team-unassign")
        assign_result = gr.Markdown(elem_id="team-assign-result")

    with gr.Accordion("Progress per reviewer", open=True, elem_id="team-progress-panel"):
        progress_table, progress_note = noted_table(
            NO_PROGRESS, elem_id="team-progress", label="Pairs assigned and decided; actions "
            "per hour of active review time (a pause over 15 min ends a session)")
        refresh_progress = gr.Button("Refresh", size="sm", elem_id="team-progress-refresh")

    with gr.Accordion("Agreement", open=True, elem_id="team-agreement-panel"):
        agreement_text = gr.Markdown(elem_id="team-agreement-summary")
        agreement_table, agreement_note = noted_table(
            NO_AGREEMENT, label="Per reviewer pair: pairs both decided, % agreement, Cohen's "
            "kappa; all: mean agreement per pair and Fleiss' kappa", elem_id="team-agreement")
        disagreements, disagreements_note = noted_table(
            NO_DISAGREEMENTS, wrap=True, max_height=360,
            label="Open disagreements (the adjudication queue)", elem_id="team-disagreements")
        refresh_agreement = gr.Button("Refresh", size="sm", elem_id="team-agreement-refresh")

    with gr.Accordion("Guidelines (Markdown, shown beside the pair)", open=True,
                      elem_id="team-guidelines-panel"):
        guide_status = gr.Markdown(elem_id="team-guidelines-status")
        with gr.Row(equal_height=False):
            editor = gr.Textbox(lines=14, max_lines=40, label="Guidelines (Markdown)",
                                elem_id="team-guidelines-text")
            preview = gr.Markdown(label="Preview", elem_id="team-guidelines-preview")
        save = gr.Button("Save as a new version", variant="primary",
                         elem_id="team-guidelines-save")
        history = gr.Dataframe(interactive=False, label="Versions", max_height=200,
                               elem_id="team-guidelines-history")

    tab = TeamTab(user=user, lead_note=lead_note, reviewers=reviewers, by=by, status=status,
                  overlap=overlap, overlap_percent=overlap_percent, seed=seed, assign=assign,
                  unassign=unassign, assign_result=assign_result,
                  progress_table=progress_table, progress_note=progress_note,
                  agreement_text=agreement_text, agreement_table=agreement_table,
                  agreement_note=agreement_note, disagreements=disagreements,
                  disagreements_note=disagreements_note, guide_status=guide_status,
                  editor=editor, preview=preview, save=save, history=history)
    assign.click(bind(on_assign, store, settings, tab),
                 {user, reviewers, by, overlap, overlap_percent, status, seed},
                 [assign_result, *tab.progress_out])
    unassign.click(bind(on_unassign, store, settings, tab), {user, reviewers},
                   [assign_result, *tab.progress_out])
    refresh_progress.click(bind(show_progress, store, tab), None, tab.progress_out)
    refresh_agreement.click(bind(show_agreement, store, tab), None, tab.agreement_out)
    # One event fills the whole tab when the page loads (read then, so a version saved
    # elsewhere shows): one request, and its end is one moment a test can wait for.
    gr.on(None, bind(on_open, store, tab), None,
          [*tab.progress_out, *tab.agreement_out, guide_status, editor, preview, history],
          show_progress="hidden")
    save.click(bind(on_save, store, settings, tab), {user, editor}, [guide_status, history])
    # The preview is the browser's own: Markdown rendered client-side, no request per key.
    editor.change(None, editor, preview, js="(text) => text", show_progress="hidden")

    if settings.multi_user:
        # Per browser: what a non-admin may not do is hidden (the handlers check anyway).
        gr.on(None, bind(show_lead, settings, tab), None,
              [assign, unassign, save, editor, lead_note], show_progress="hidden")
    return tab


# --------------------------------------------------------------------------------------------
# Handlers (bound to the store, settings and tab in build(); inputs come as one dict keyed by
# component, updates go back keyed by component)


@dataclass(frozen=True)
class TeamTab:
    """The tab's components."""

    user: gr.Textbox
    lead_note: gr.Markdown
    reviewers: gr.Textbox
    by: gr.Dropdown
    status: gr.Dropdown
    overlap: gr.Number
    overlap_percent: gr.Number
    seed: gr.Number
    assign: gr.Button
    unassign: gr.Button
    assign_result: gr.Markdown
    progress_table: gr.Dataframe
    progress_note: gr.Markdown
    agreement_text: gr.Markdown
    agreement_table: gr.Dataframe
    agreement_note: gr.Markdown
    disagreements: gr.Dataframe
    disagreements_note: gr.Markdown
    guide_status: gr.Markdown
    editor: gr.Textbox
    preview: gr.Markdown
    save: gr.Button
    history: gr.Dataframe

    @property
    def progress_out(self) -> list:
        return [self.progress_table, self.progress_note]

    @property
    def agreement_out(self) -> list:
        return [self.agreement_text, self.agreement_table, self.agreement_note,
                self.disagreements, self.disagreements_note]


def show_progress(store: Store, tab: TeamTab) -> dict:
    """The progress table (or its empty-state sentence)."""
    return dict(zip(tab.progress_out, table_or_note(progress_frame(store), NO_PROGRESS)))


def show_agreement(store: Store, tab: TeamTab) -> dict:
    """The agreement summary, the table per reviewer pair and the adjudication queue."""
    summary, table, queue = agreement_view(store)
    return dict(zip(tab.agreement_out, (summary, *table_or_note(table, NO_AGREEMENT),
                                        *table_or_note(queue, NO_DISAGREEMENTS))))


def on_open(store: Store, tab: TeamTab) -> dict:
    """Everything the tab shows, when a page loads."""
    text = current_text(store)
    return {**show_progress(store, tab), **show_agreement(store, tab),
            tab.guide_status: guidelines_status(store), tab.editor: text, tab.preview: text,
            tab.history: guidelines_history(store)}


def on_assign(store: Store, settings: Settings, tab: TeamTab, values: dict,
              request: gr.Request, profile: gr.OAuthProfile | None = None) -> dict:
    """Assign: split the queue among the reviewers named (admins only in a shared app)."""
    user = current_user(settings, values[tab.user], request, profile)
    done = assign_pairs(store, settings, user, values[tab.reviewers], values[tab.by],
                        values[tab.overlap], values[tab.overlap_percent], values[tab.status],
                        values[tab.seed])
    return {tab.assign_result: done, **show_progress(store, tab)}


def on_unassign(store: Store, settings: Settings, tab: TeamTab, values: dict,
                request: gr.Request, profile: gr.OAuthProfile | None = None) -> dict:
    """Take back the undecided assignments of the reviewers named (none: everyone's)."""
    user = current_user(settings, values[tab.user], request, profile)
    done = take_back(store, settings, user, values[tab.reviewers])
    return {tab.assign_result: done, **show_progress(store, tab)}


def on_save(store: Store, settings: Settings, tab: TeamTab, values: dict,
            request: gr.Request, profile: gr.OAuthProfile | None = None) -> dict:
    """Save the guidelines as a new version."""
    user = current_user(settings, values[tab.user], request, profile)
    said = save_guidelines(store, settings, user, values[tab.editor])
    return {tab.guide_status: said, tab.history: guidelines_history(store)}


def show_lead(settings: Settings, tab: TeamTab, request: gr.Request,
              profile: gr.OAuthProfile | None = None) -> dict:
    """In a shared app, what only admins may do is shown to admins only."""
    try:
        lead = may_lead(settings, current_user(settings, None, request, profile))
    except gr.Error:  # not signed in yet
        lead = False
    note = "" if lead else ("Assigning pairs and editing the guidelines is for the admins "
                            "(TPO_ADMINS).")
    return {tab.assign: gr.update(visible=lead), tab.unassign: gr.update(visible=lead),
            tab.save: gr.update(visible=lead), tab.editor: gr.update(interactive=lead),
            tab.lead_note: note}
