"""The Train tab in a real browser: a short LoRA run on the offline demo model from the
accepted pairs, live status, metrics, and the finished run registered as a model."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tpo import jobs
from tpo.curation.review import review
from tpo.store import Store

pytestmark = pytest.mark.e2e
JOB_TIMEOUT_MS = 300_000


def test_train_from_accepted_pairs(page: Page, app_url: str, app_data):
    store = Store(app_data / "tpo.db")
    video = store.list_videos(search="mixed_signals")[0]
    ids = store.save_generation(video["id"], "e2e-train", [{
        "kind": "localized", "strategy": "irrelevant", "question": f"train question {i}?",
        "chosen": f"a good answer {i}", "rejected": f"a bad answer {i}", "segment_start": 1.0,
        "segment_end": 4.0, "chosen_timestamps": [1.0, 2.0, 3.0], "rejected_timestamps": [5.0, 6.0],
        "status": "pending", "filter_verdict": "kept"} for i in range(3)], params={}, seconds=0)
    for pair_id in ids:
        review(store, pair_id, "accept", user="e2e")

    page.goto(app_url)
    page.get_by_role("tab", name="Train").click()
    expect(page.locator("#train-counts")).to_contain_text("accepted pairs")
    page.locator("#model-use-demo").click()  # the app-wide picker; the tab follows it
    model = page.locator("#train-model textarea, #train-model input").first
    expect(model).to_have_value(re.compile(r"models/demo-smolvlm$"), timeout=JOB_TIMEOUT_MS)
    page.get_by_label("Max steps (-1: epochs decide)").fill("3")
    page.get_by_label("Frames per sample (whole video, at most 1 per second)").fill("4")
    page.locator("#train-start").click()

    job = page.locator("#train-job .tpo-job")
    expect(job).to_have_attribute("data-status", "succeeded", timeout=JOB_TIMEOUT_MS)
    summary = page.locator("#train-summary")
    expect(summary).to_contain_text("3 steps")
    expect(summary).to_contain_text("Registered as model")
    expect(summary).to_contain_text("tpo train --model")
    job_id = int(job.get_attribute("data-job-id"))
    losses = jobs.metrics(store, job_id, "loss")
    assert [m["step"] for m in losses] == [1, 2, 3]
    (model_row,) = [m for m in store.db["models"].rows if m["job_id"] == job_id]
    assert model_row["adapter_path"].startswith(str(app_data))
