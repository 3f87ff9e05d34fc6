"""Generating pairs from the Library tab in a real browser: the offline test model in one
click, a background job with live status, filtered pairs listed with reasons, restorable."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.e2e
JOB_TIMEOUT_MS = 240_000  # two job processes import torch on a 2-core machine


def test_generate_with_offline_model_then_restore_a_filtered_pair(page: Page, app_url: str):
    page.goto(app_url)
    table = page.locator("#library-table")
    expect(table.get_by_test_id("cell-0-1")).to_have_text("shapes_parade.mp4", timeout=30_000)
    page.get_by_text("Generate pairs").click()

    page.locator("#generate-use-tiny").click()
    model = page.locator("#generate-model textarea, #generate-model input").first
    expect(model).to_have_value(re.compile(r"models/tiny-smolvlm$"), timeout=JOB_TIMEOUT_MS)
    for label, value in [("Localized pairs per video", "1"), ("Comprehensive pairs per video", "1"),
                         ("Dense frames (chosen)", "8"), ("Sparse frames (rejected)", "2")]:
        page.get_by_label(label).fill(value)
    page.locator("#generate-start").click()

    job = page.locator("#generate-job .tpo-job")
    expect(job).to_have_attribute("data-status", re.compile("queued|running|succeeded"))
    expect(job).to_have_attribute("data-status", "succeeded", timeout=JOB_TIMEOUT_MS)
    expect(job).to_contain_text("5 videos generated: 10 pairs")
    # The random model's answers run to the token limit, so the filter drops every pair.
    expect(page.locator("#tpo-header")).to_contain_text("10 filtered")

    table.get_by_test_id("cell-0-1").click()
    pairs = page.locator("#video-pairs")
    expect(pairs.get_by_test_id("cell-0-5")).to_have_text("filtered")
    expect(pairs.get_by_test_id("cell-0-6")).to_contain_text("truncated")
    pairs.get_by_test_id("cell-0-4").click()
    expect(page.locator("#pair-selected")).to_contain_text("filtered")
    page.locator("#pair-restore").click()
    expect(page.locator("#pair-selected")).to_contain_text("restored to pending")
    expect(pairs.get_by_test_id("cell-0-5")).to_have_text("pending")
    expect(page.locator("#tpo-header")).to_contain_text("9 filtered")  # one fewer
