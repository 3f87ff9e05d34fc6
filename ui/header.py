"""The header line above the tabs: library and pair counts and the current user."""

from __future__ import annotations

import gradio as gr

from tpo import jobs
from tpo.config import Settings
from tpo.store import Store
from ui.html import escape_md
from ui.identity import current_user


def header_markdown(store: Store, settings: Settings) -> str:
    """Counts of the library and its pairs, and the jobs running. The user is named here only
    in a single-user app: with log-ins every browser has its own, shown by :func:`whoami`."""
    c = store.counts()
    unreadable = f", {c['errors']} unreadable" if c["errors"] else ""
    running = jobs.list_jobs(store, status=jobs.ACTIVE_STATUSES)
    busy = (" · jobs running: " + ", ".join(f"#{j['id']} {escape_md(j['kind'])}" for j in running)
            if running else "")
    user = "" if settings.multi_user else f" · user: <code>{escape_md(settings.user)}</code>"
    return (f"### TPO Studio\n**{c['videos']} videos** ({c['ready']} ready{unreadable}) · "
            f"pairs: {c['pairs_pending']} pending · {c['pairs_accepted']} accepted · "
            f"{c['pairs_rejected']} rejected · {c['pairs_filtered']} filtered{user}{busy}")


def whoami(settings: Settings, request: gr.Request | None,
           profile: gr.OAuthProfile | None = None) -> str:
    """"Logged in as …" for this browser (an empty string in a single-user app)."""
    if not settings.multi_user:
        return ""
    try:
        name = current_user(settings, None, request, profile)
    except gr.Error:  # a Space's sign-in page: not signed in yet
        return "Not signed in."
    return f"Logged in as <code>{escape_md(name)}</code>"
