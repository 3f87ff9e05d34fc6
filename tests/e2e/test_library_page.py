"""The Library tab in a real browser: the demo library is listed, a video plays, and
selecting one shows its sampled frame strip."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tpo.media.synth import DEMO_SPECS

pytestmark = pytest.mark.e2e
DEMO_NAMES = [f"{spec.name}.mp4" for spec in DEMO_SPECS]
NAME_COLUMN = 1


def name_cell(table, row: int):
    """The Name cell of a row: Gradio's Dataframe is a grid of divs with test ids."""
    return table.get_by_test_id(f"cell-{row}-{NAME_COLUMN}")


def test_library_lists_demo_and_shows_frame_strip(page: Page, app_url: str):
    page.goto(app_url)
    table = page.locator("#library-table")
    for row, name in enumerate(DEMO_NAMES):  # ingested in spec order, listed by id
        expect(name_cell(table, row)).to_have_text(name, timeout=30_000)
    expect(page.locator("#tpo-header")).to_contain_text(f"{len(DEMO_NAMES)} ready")
    # An empty table says what to do rather than showing bare headers.
    pairs_note = page.locator("#video-pairs-empty")
    expect(pairs_note).to_contain_text("Select a video in the table to see its pairs.")

    name_cell(table, 0).click()
    # its pairs, or "no pairs yet": the hint is gone either way
    expect(page.get_by_text("Select a video in the table to see its pairs.")).to_have_count(0)

    frames = page.locator("#tpo-strip [data-testid=strip-frame]")
    expect(frames).to_have_count(8, timeout=30_000)
    # Every thumbnail really loaded from the server, and is captioned with its time.
    expect(frames.first.locator("figcaption")).to_have_text(re.compile(r"^\d+:\d\d(\.\d)?$"))
    # (waits for the loads: on a busy machine the images arrive after the strip)
    page.wait_for_function(
        "() => { const imgs = [...document.querySelectorAll('#tpo-strip img')];"
        " return imgs.length === 8 && imgs.every(i => i.complete && i.naturalWidth > 0); }",
        timeout=30_000)
    expect(page.locator("#video-details")).to_contain_text(DEMO_NAMES[0])

    # The player streams the file; clicking a thumbnail seeks it to that frame's time.
    player = page.locator("#tpo-player")
    expect(player).to_have_attribute("src", re.compile(r"media/video/\d+$"))
    page.wait_for_function("document.getElementById('tpo-player').readyState >= 1")
    last = frames.last
    target = float(last.get_attribute("data-seek"))
    last.click()
    page.wait_for_function(
        f"Math.abs(document.getElementById('tpo-player').currentTime - {target}) < 0.5")


def test_search_filters_the_table(page: Page, app_url: str):
    page.goto(app_url)
    table = page.locator("#library-table")
    expect(name_cell(table, 1)).to_have_text(DEMO_NAMES[1], timeout=30_000)
    page.locator("#library-search textarea, #library-search input").first.fill("countdown")
    page.keyboard.press("Enter")
    expect(name_cell(table, 0)).to_have_text("countdown.mp4")
    expect(name_cell(table, 1)).to_have_count(0)


def test_adding_a_bad_file_by_path_lists_it_with_its_reason(page: Page, app_url: str, tmp_path):
    bad = tmp_path / "notes.mp4"
    bad.write_text("this is not a video")
    page.goto(app_url)
    expect(name_cell(page.locator("#library-table"), 0)).to_have_text(DEMO_NAMES[0], timeout=30_000)
    page.get_by_text("Add videos").click()
    page.locator("#library-add-path textarea, #library-add-path input").first.fill(str(bad))
    page.locator("#library-add").click()
    result = page.locator("#library-add-result")
    expect(result).to_contain_text("failed 1")
    expect(result).to_contain_text("notes.mp4")
    expect(result).to_contain_text("not a video file")
    # The table now lists it, unreadable, with the reason; the header counts it.
    page.locator("#library-status input").first.click()
    page.get_by_role("option", name="error").click()
    table = page.locator("#library-table")
    expect(name_cell(table, 0)).to_have_text("notes.mp4")
    expect(table.get_by_test_id("cell-0-5")).to_contain_text("not a video file")
    expect(page.locator("#tpo-header")).to_contain_text("1 unreadable")
