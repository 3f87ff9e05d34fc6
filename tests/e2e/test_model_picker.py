"""The app-wide model picker in a real browser: every tab's model box follows the pick, and
the pick survives a page reload (it is kept in the browser's localStorage)."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from ui.models import STORAGE_KEY

pytestmark = pytest.mark.e2e
INSTALL_TIMEOUT_MS = 240_000  # without a Hub a first visit installs the offline model (a job)


def box(page: Page, elem_id: str):
    return page.locator(f"#{elem_id} textarea, #{elem_id} input").first


def kept(page: Page) -> str | None:
    """The picker's entry in localStorage (encrypted: compared, never read)."""
    return page.evaluate("key => window.localStorage.getItem(key)", STORAGE_KEY)


def test_the_pick_is_followed_by_every_tab_and_survives_a_reload(page: Page, app_url: str):
    page.goto(app_url)
    # the page's load restores the pick (a first visit: the default) and keeps it
    page.wait_for_function("key => window.localStorage.getItem(key) !== null", arg=STORAGE_KEY,
                           timeout=INSTALL_TIMEOUT_MS)
    first = kept(page)
    box(page, "model-pick").fill("org/kept-model")
    page.wait_for_function("([key, old]) => window.localStorage.getItem(key) !== old",
                           arg=[STORAGE_KEY, first])
    page.get_by_role("tab", name="Evaluate").click()
    expect(box(page, "eval-models")).to_have_value("org/kept-model")

    page.reload()
    expect(box(page, "model-pick")).to_have_value("org/kept-model", timeout=INSTALL_TIMEOUT_MS)
    page.get_by_role("tab", name="Train").click()
    expect(box(page, "train-model")).to_have_value("org/kept-model")
    page.get_by_role("tab", name="Compare").click()
    expect(box(page, "compare-model-a")).to_have_value("org/kept-model")
