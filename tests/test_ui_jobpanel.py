"""The shared job panel (:mod:`ui.jobs`): what a poll redraws, when it says a job ended, how
fast it polls, and what cancel says."""

from __future__ import annotations

import gradio as gr
import pytest

from tpo.store import ACTIVE_STATUSES
from ui.jobs import IDLE_POLL_S, JobPanel

BUSY_S = 0.5


def make_panel(store) -> tuple[JobPanel, list]:
    """A selftest panel with a log and a hook that records every poll it is given."""
    polls = []
    with gr.Blocks():
        panel = JobPanel(store, "selftest", what="self-test", empty="No self-test yet.",
                         busy_s=BUSY_S, elem_prefix="selftest")
        panel.status_html()
        panel.cancel_button("Cancel")
        panel.log_code(lines=4, tail=10)
        extra = gr.Markdown()
        panel.wire(lambda poll, values: polls.append(poll) or {extra: "polled"}, outputs=[extra])
    return panel, polls


def poll(panel: JobPanel, last) -> dict:
    """One tick of the panel, as the timer runs it, after a poll that saw ``last``."""
    return panel.tick({panel.seen: last})


@pytest.fixture
def panel(store):
    return make_panel(store)


def test_layout_keeps_the_element_ids_and_start_outputs(panel):
    panel, _polls = panel
    assert [panel.status.elem_id, panel.cancel.elem_id, panel.log.elem_id] == [
        "selftest-job", "selftest-cancel", "selftest-log"]
    assert panel.started == [panel.status, panel.timer]


def test_no_job_redraws_nothing_and_polls_slowly(store, panel):
    panel, polls = panel
    out = poll(panel, None)
    assert panel.status not in out and panel.log not in out
    assert out[panel.seen] is None and out[panel.timer].value == IDLE_POLL_S
    assert polls[-1].row is None and not polls[-1].ended


def test_a_submitted_job_speeds_the_poll_up_and_its_end_is_noticed_once(store, panel):
    panel, polls = panel
    job_id = store.add_job("selftest", {})
    started = panel.submitted(job_id)
    assert f'data-job-id="{job_id}"' in started[panel.status]
    assert started[panel.timer].value == BUSY_S

    first = poll(panel, None)  # the page's first poll: a queued job, drawn, fast polling
    assert 'data-status="queued"' in first[panel.status]
    assert first[panel.timer].value == BUSY_S
    assert polls[-1].first and not polls[-1].ended

    same = poll(panel, first[panel.seen])  # nothing moved: the line is not re-sent
    assert panel.status not in same and not polls[-1].changed

    store.transition_job(job_id, ACTIVE_STATUSES, status="succeeded", progress=1.0)
    done = poll(panel, same[panel.seen])
    assert 'data-status="succeeded"' in done[panel.status]
    assert polls[-1].ended and polls[-1].finished
    assert done[panel.timer].value == IDLE_POLL_S
    assert not poll(panel, done[panel.seen]).get(panel.status)
    assert not polls[-1].ended  # ended once, not at every later poll


def test_a_job_that_ended_before_the_first_poll_is_not_an_end(store, panel):
    """The page loaded it as it is: nothing to refresh."""
    panel, polls = panel
    job_id = store.add_job("selftest", {})
    store.transition_job(job_id, ACTIVE_STATUSES, status="failed", error="boom")
    out = poll(panel, None)
    assert "boom" in out[panel.status]
    assert polls[-1].first and polls[-1].finished and not polls[-1].ended


def test_cancel_stops_a_queued_job_and_refuses_an_ended_one(store, panel):
    panel, _polls = panel
    with pytest.raises(gr.Error, match="No self-test is running."):
        panel.cancel_running()
    job_id = store.add_job("selftest", {})  # no worker yet: cancelled at once
    assert 'data-status="cancelled"' in panel.cancel_running()[panel.status]
    with pytest.raises(gr.Error, match="No self-test is running."):
        panel.cancel_running()
    assert store.get_job(job_id)["status"] == "cancelled"


def test_the_hook_updates_its_own_outputs(store, panel):
    panel, _polls = panel
    out = poll(panel, None)
    assert "polled" in out.values()
