"""The job panel shows a queued GPU job's place in line (:mod:`ui.jobs`), read from the store."""

from __future__ import annotations

import gradio as gr

from tpo.store import now
from ui.jobs import JobPanel, job_html, status_html


def insert_job(store, **columns) -> int:
    row = {"kind": "selftest-gpu", "params": "{}", "status": "queued", "created_at": now(),
           "gpu": 1, **columns}
    return store.db["jobs"].insert(row).last_pk


def test_a_queued_gpu_job_shows_its_place_in_line(store):
    insert_job(store, status="running")
    first, second = insert_job(store), insert_job(store)
    cpu = insert_job(store, kind="selftest", gpu=0)

    assert "queued · 2nd in line</span>" in status_html(store, store.get_job(second))
    assert "queued · 1st in line</span>" in status_html(store, store.get_job(first))
    assert ">queued</span>" in status_html(store, store.get_job(cpu))
    assert "No job yet." in status_html(store, None)
    assert ">running</span>" in job_html(store.get_job(first) | {"status": "running"})


def test_the_panel_polls_the_place_in_line(store):
    with gr.Blocks():
        panel = JobPanel(store, "selftest-gpu", what="self-test", empty="None yet.",
                         busy_s=0.5, elem_prefix="gpu")
        panel.status_html()
        panel.wire()
    insert_job(store, status="running")
    queued = insert_job(store)

    out = panel.tick({panel.seen: None})

    assert f'data-job-id="{queued}"' in out[panel.status]
    assert "queued · 1st in line" in out[panel.status]
    assert "queued · 1st in line" in panel.submitted(queued)[panel.status]
