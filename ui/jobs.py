"""A background job's status as HTML: status, a progress bar, what it is doing, its error."""

from __future__ import annotations

from html import escape

import gradio as gr

from tpo import jobs
from tpo.store import Store
from ui.html import note

STATUS_COLOURS = {"queued": "#888", "running": "#2563eb", "cancelling": "#d97706",
                  "succeeded": "#16a34a", "failed": "#dc2626", "cancelled": "#6b7280"}


def job_html(row: dict | None, *, empty: str = "No job yet.") -> str:
    """One job as a status line, a progress bar and, when it failed, its error."""
    if row is None:
        return note(empty)
    status, pct = row["status"], round(100 * (row.get("progress") or 0.0))
    colour = STATUS_COLOURS.get(status, "#888")
    text = escape(row.get("progress_text") or "")
    parts = [
        f'<div class="tpo-job" data-job-id="{row["id"]}" data-status="{status}">',
        f'<div><b>job #{row["id"]}</b> {escape(row["kind"])} · '
        f'<span class="tpo-job-status" style="color:{colour}">{status}</span> · {pct}%</div>',
        f'<div class="tpo-progress"><div style="width:{pct}%;background:{colour}"></div></div>',
        f'<div class="tpo-job-text">{text}</div>',
    ]
    if row.get("error"):
        parts.append(f'<div class="tpo-job-error">{escape(row["error"])}</div>')
    parts.append("</div>")
    return "".join(parts)


def latest_job(store: Store, kind: str) -> dict | None:
    """The newest job of this kind, whatever its status (what a panel shows)."""
    rows = jobs.list_jobs(store, kind=kind, limit=1)
    return rows[0] if rows else None


def cancel_latest(store: Store, kind: str, what: str) -> str:
    """Cancel the newest job of `kind`; gr.Error "No {what} is running." when it has ended."""
    row = latest_job(store, kind)
    if row is None or row["status"] in jobs.FINISHED_STATUSES:
        raise gr.Error(f"No {what} is running.")
    return job_html(jobs.cancel(store, row["id"]))


IDLE_POLL_S = 10.0  # how often a panel looks for a job started elsewhere (CLI, another page)


def poll_interval(row: dict | None, busy_s: float) -> float:
    """A panel's poll interval: `busy_s` while its job is active, IDLE_POLL_S otherwise."""
    return busy_s if row is not None and row["status"] in jobs.ACTIVE_STATUSES else IDLE_POLL_S
