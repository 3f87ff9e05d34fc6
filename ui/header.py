"""The header line above the tabs: library and pair counts and the current user."""

from __future__ import annotations

from tpo import jobs
from tpo.store import Store
from ui.html import escape_md


def header_markdown(store: Store, user: str) -> str:
    c = store.counts()
    unreadable = f", {c['errors']} unreadable" if c["errors"] else ""
    running = jobs.list_jobs(store, status=jobs.ACTIVE_STATUSES)
    busy = (" · jobs running: " + ", ".join(f"#{j['id']} {escape_md(j['kind'])}" for j in running)) if running else ""
    return (f"### TPO Studio\n**{c['videos']} videos** ({c['ready']} ready{unreadable}) · "
            f"pairs: {c['pairs_pending']} pending · {c['pairs_accepted']} accepted · "
            f"{c['pairs_rejected']} rejected · {c['pairs_filtered']} filtered · user: <code>{escape_md(user)}</code>{busy}")
