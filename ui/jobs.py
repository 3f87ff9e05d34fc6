"""The job panel every tab shares: a background job's status line, an optional cancel button
and log, and a timer that polls the newest job of one kind.

A tab lays the parts out where it wants them (:class:`JobPanel`), wires them with
:meth:`JobPanel.wire` (its own extra work per poll goes in an ``on_poll`` hook), and returns
:meth:`JobPanel.submitted` from its Start handler so the panel speeds up at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Callable

import gradio as gr

from tpo import jobs
from tpo.jobs.scheduler import ordinal
from tpo.store import Store
from ui.html import note

STATUS_COLOURS = {"queued": "#888", "running": "#2563eb", "cancelling": "#d97706",
                  "succeeded": "#16a34a", "failed": "#dc2626", "cancelled": "#6b7280"}
IDLE_POLL_S = 10.0  # how often a panel looks for a job started elsewhere (CLI, another page)


def job_html(row: dict | None, *, empty: str = "No job yet.", position: int | None = None) -> str:
    """One job as a status line, a progress bar and, when it failed, its error. ``position``:
    a queued GPU job's place in line for the GPU (1: next), shown after its status."""
    if row is None:
        return note(empty)
    status, pct = row["status"], round(100 * (row.get("progress") or 0.0))
    colour = STATUS_COLOURS.get(status, "#888")
    text = escape(row.get("progress_text") or "")
    place = f" · {ordinal(position)} in line" if position else ""
    parts = [
        f'<div class="tpo-job" data-job-id="{row["id"]}" data-status="{status}">',
        f'<div><b>job #{row["id"]}</b> {escape(row["kind"])} · '
        f'<span class="tpo-job-status" style="color:{colour}">{status}{place}</span> · '
        f'{pct}%</div>',
        f'<div class="tpo-progress"><div style="width:{pct}%;background:{colour}"></div></div>',
        f'<div class="tpo-job-text">{text}</div>',
    ]
    if row.get("error"):
        parts.append(f'<div class="tpo-job-error">{escape(row["error"])}</div>')
    parts.append("</div>")
    return "".join(parts)


def status_html(store: Store, row: dict | None, *, empty: str = "No job yet.") -> str:
    """:func:`job_html` of ``row`` with its place in the GPU queue, read from the store."""
    position = jobs.queue_position(store, row) if row is not None else None
    return job_html(row, empty=empty, position=position)


def latest_job(store: Store, kind: str) -> dict | None:
    """The newest job of this kind, whatever its status (what a panel shows)."""
    rows = jobs.list_jobs(store, kind=kind, limit=1)
    return rows[0] if rows else None


def cancel_latest(store: Store, kind: str, what: str) -> str:
    """Cancel the newest job of `kind`; gr.Error "No {what} is running." when it has ended."""
    row = latest_job(store, kind)
    if row is None or row["status"] in jobs.FINISHED_STATUSES:
        raise gr.Error(f"No {what} is running.")
    return status_html(store, jobs.cancel(store, row["id"]))


def poll_interval(row: dict | None, busy_s: float) -> float:
    """A panel's poll interval: `busy_s` while its job is active, IDLE_POLL_S otherwise."""
    return busy_s if row is not None and row["status"] in jobs.ACTIVE_STATUSES else IDLE_POLL_S


def job_key(row: dict | None) -> list | None:
    """What the status line shows of a job (id, status, progress, its text): a poll redraws
    the line only when this changed. A list, as a gr.State holds it."""
    if row is None:
        return None
    return [row["id"], row["status"], round(row.get("progress") or 0.0, 4),
            row.get("progress_text") or ""]


@dataclass(frozen=True)
class Poll:
    """What one poll found, for a tab's ``on_poll`` hook."""

    row: dict | None  # the newest job of the panel's kind
    changed: bool  # its status line differs from the last poll's
    ended: bool  # it finished since the last poll (never on a page's first poll)
    first: bool  # no job was seen at the last poll (the page's first poll, or none existed)

    @property
    def finished(self) -> bool:
        return self.row is not None and self.row["status"] in jobs.FINISHED_STATUSES


# A tab's extra work per poll: (what the poll found, the hook's input values by component)
# -> updates by component, for components among the hook's outputs.
PollHook = Callable[[Poll, dict], dict]


class JobPanel:
    """The parts of one job kind's panel. Create it inside the tab's Blocks, lay out the
    parts with :meth:`status_html`, :meth:`cancel_button` and :meth:`log_code` where the tab
    wants them, then call :meth:`wire` once (outside closed accordions: it adds the timer).

    ``what`` names the job in messages ("No {what} is running."); ``empty`` is the status
    line before any job; ``busy_s`` is the poll interval while a job is active.
    """

    def __init__(self, store: Store, kind: str, *, what: str, empty: str, busy_s: float,
                 elem_prefix: str):
        self.store, self.kind, self.what, self.empty = store, kind, what, empty
        self.busy_s, self.elem_prefix = busy_s, elem_prefix
        self.status: gr.HTML | None = None
        self.cancel: gr.Button | None = None
        self.log: gr.Code | None = None
        self.log_lines = 0
        self.seen: gr.State | None = None
        self.timer: gr.Timer | None = None
        self.on_poll: PollHook | None = None

    def status_html(self) -> gr.HTML:
        """The status line (``#{prefix}-job``), filled when the page loads."""
        self.status = gr.HTML(
            lambda: status_html(self.store, latest_job(self.store, self.kind), empty=self.empty),
            elem_id=f"{self.elem_prefix}-job")
        return self.status

    def cancel_button(self, label: str, **button_args) -> gr.Button:
        """The cancel button (``#{prefix}-cancel``); ``button_args`` go to gr.Button."""
        self.cancel = gr.Button(label, elem_id=f"{self.elem_prefix}-cancel",
                                **{"size": "sm", **button_args})
        return self.cancel

    def log_code(self, *, lines: int, tail: int) -> gr.Code:
        """The job's log (``#{prefix}-log``): its last ``tail`` lines in a box ``lines`` high."""
        self.log_lines = tail

        def value() -> str:
            row = latest_job(self.store, self.kind)
            return jobs.log_tail(row, tail) if row else ""

        self.log = gr.Code(value, lines=lines, interactive=False, elem_id=f"{self.elem_prefix}-log")
        return self.log

    def wire(self, on_poll: PollHook | None = None, inputs: list | tuple = (),
             outputs: list | tuple = ()) -> None:
        """Add the timer and wire the tick and the cancel button. The timer polls every
        ``busy_s`` while a job of this kind is active, every IDLE_POLL_S otherwise (a job
        started from the CLI or another page is still noticed); :meth:`submitted` speeds it
        up at once. ``on_poll(poll, values)`` runs at every tick with the values of
        ``inputs`` and returns updates for some of ``outputs``."""
        self.on_poll = on_poll
        self.seen = gr.State(None)  # job_key at the last poll, to notice a change or an end
        self.timer = gr.Timer(poll_interval(latest_job(self.store, self.kind), self.busy_s))
        parts = [p for p in (self.status, self.log, self.seen, self.timer) if p is not None]
        self.timer.tick(self.tick, {self.seen, *inputs}, [*parts, *outputs],
                        show_progress="hidden")
        if self.cancel is not None:
            self.cancel.click(self.cancel_running, None, [self.status])

    @property
    def started(self) -> list:
        """The outputs a tab's Start handler returns :meth:`submitted` into."""
        return [self.status, self.timer]

    def submitted(self, job_id: int) -> dict:
        """The status of a job just submitted, and the fast poll interval."""
        return {self.status: status_html(self.store, jobs.get(self.store, job_id)),
                self.timer: gr.Timer(self.busy_s)}

    def tick(self, values: dict) -> dict:
        """One poll: redraw the status line (and log) when the job moved on, set the
        interval, and run the tab's hook. ``values``: the seen state and the hook's inputs."""
        row = latest_job(self.store, self.kind)
        last, key = values[self.seen], job_key(row)
        changed = key != last
        ended = (last is not None and changed and row is not None and list(last[:2]) != key[:2]
                 and row["status"] in jobs.FINISHED_STATUSES)
        out = {self.seen: key, self.timer: gr.Timer(poll_interval(row, self.busy_s))}
        if changed:
            out[self.status] = status_html(self.store, row, empty=self.empty)
        active = row is not None and row["status"] in jobs.ACTIVE_STATUSES
        if self.log is not None and row is not None and (changed or active):
            out[self.log] = jobs.log_tail(row, self.log_lines)  # lines come without progress
        if self.on_poll is not None:
            out.update(self.on_poll(Poll(row=row, changed=changed, ended=ended,
                                         first=last is None), values))
        return out

    def cancel_running(self) -> dict:
        """Cancel the running job; gr.Error "No {what} is running." when it has ended."""
        return {self.status: cancel_latest(self.store, self.kind, self.what)}
