"""Generating pairs from the Library tab in a real browser: the offline demo model in one
click, a background job with live status, pairs in the review queue, filtered pairs listed
with reasons, restorable."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tpo.store import Store

pytestmark = pytest.mark.e2e
JOB_TIMEOUT_MS = 240_000  # two job processes import torch on a 2-core machine


def test_generate_with_the_demo_model_fills_the_queue_then_restore_a_filtered_pair(
        page: Page, app_url: str, app_data):
    page.goto(app_url)
    table = page.locator("#library-table")
    expect(table.get_by_test_id("cell-0-1")).to_have_text("shapes_parade.mp4", timeout=30_000)
    page.get_by_text("Generate pairs").click()

    page.locator("#model-use-demo").click()  # the app-wide picker; the panel follows it
    model = page.locator("#generate-model textarea, #generate-model input").first
    expect(model).to_have_value(re.compile(r"models/demo-smolvlm$"), timeout=JOB_TIMEOUT_MS)
    for label, value in [("Localized pairs per video", "2"), ("Comprehensive pairs per video", "2"),
                         ("Dense frames (chosen)", "16"), ("Sparse frames (rejected)", "2")]:
        page.get_by_label(label).fill(value)
    search = page.locator("#library-search textarea, #library-search input").first
    search.fill("countdown")  # a filter the job's end must keep
    expect(table.get_by_test_id("cell-1-1")).to_have_count(0)
    page.locator("#generate-start").click()

    job = page.locator("#generate-job .tpo-job")
    expect(job).to_have_attribute("data-status", re.compile("queued|running|succeeded"))
    expect(job).to_have_attribute("data-status", "succeeded", timeout=JOB_TIMEOUT_MS)
    expect(job).to_contain_text("5 videos generated: 20 pairs")
    # The finished job redrew the table with its new pair counts, still filtered.
    expect(table.get_by_test_id("cell-0-4")).not_to_have_text("0 / 0 / 0 / 0")
    expect(table.get_by_test_id("cell-0-1")).to_have_text("countdown.mp4")
    expect(table.get_by_test_id("cell-1-1")).to_have_count(0)
    store = Store(app_data / "tpo.db")
    counts = store.counts()
    # The demo model answers the demo videos' questions, so pairs reach the review queue
    # (with a random model every answer ran to the token limit and all were filtered).
    assert counts["pairs_pending"] > 0
    header = page.locator("#tpo-header")
    expect(header).to_contain_text(f"{counts['pairs_pending']} pending")
    expect(header).to_contain_text(f"{counts['pairs_filtered']} filtered")

    # A dropped pair is listed with its reason and can be put back into the queue.
    filtered = store.list_pairs(status="filtered")
    assert filtered, "the demo model gave no pair the post-filter drops"
    pair = filtered[0]
    name = store.get_video(pair["video_id"])["name"]
    search.fill(name)
    expect(table.get_by_test_id("cell-1-1")).to_have_count(0)
    table.get_by_test_id("cell-0-1").click()
    pairs = page.locator("#video-pairs")
    index = [p["id"] for p in store.list_pairs(video_id=pair["video_id"])].index(pair["id"])
    expect(pairs.get_by_test_id(f"cell-{index}-5")).to_have_text("filtered")
    expect(pairs.get_by_test_id(f"cell-{index}-6")).to_contain_text(pair["filter_reason"][:12])
    pairs.get_by_test_id(f"cell-{index}-4").click()
    expect(page.locator("#pair-selected")).to_contain_text("filtered")
    page.locator("#pair-restore").click()
    expect(page.locator("#pair-selected")).to_contain_text("restored to pending")
    expect(pairs.get_by_test_id(f"cell-{index}-5")).to_have_text("pending")
    expect(header).to_contain_text(f"{counts['pairs_filtered'] - 1} filtered")  # one fewer
    expect(table.get_by_test_id("cell-0-1")).to_have_text(name)  # the restore kept the filter
    expect(table.get_by_test_id("cell-1-1")).to_have_count(0)
