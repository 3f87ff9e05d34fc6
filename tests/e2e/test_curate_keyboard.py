"""The Curate tab's keyboard review in a real browser (issue 13): every key (A, R, S, E with
Ctrl+Enter and Esc, U, N, P, K), keys pressed faster than the server answers, undo as an
audited action, the warning before accepting an empty answer, the guided empty queue
(filtered pairs per reason: show them, restore them all), and the layout at 1440×900 (the
question, both answers, their frame strips and the actions on screen without scrolling).
"""

from __future__ import annotations

import re

import pytest
from demo_pairs import seed_pairs
from playwright.sync_api import Browser, Page, expect

from tpo.store import Store

pytestmark = pytest.mark.e2e


def seed(app_data, tag: str, n: int = 4, **overrides) -> list[int]:
    """Pairs whose answers are finished sentences (pending unless ``overrides``)."""
    return seed_pairs(app_data, tag, n, end=".", **overrides)


def open_queue(page: Page, url: str, search: str, user: str, *, expect_pairs: bool = True) -> None:
    page.goto(url)
    page.get_by_role("tab", name="Curate").click()
    page.locator("#curate-user textarea, #curate-user input").first.fill(user)
    page.locator("#curate-search textarea, #curate-search input").first.fill(search)
    page.locator("#curate-load").click()
    if expect_pairs:
        expect(page.locator("#curate-meta")).to_contain_text("1 of", timeout=30_000)


def settled(page: Page) -> None:
    """The server has answered every key pressed so far (the page's script says so)."""
    page.wait_for_function("() => window.tpoCurate && window.tpoCurate.busy() === 0")


def meta(page: Page):
    return page.locator("#curate-meta")


def answer_box(page: Page, side: str):
    return page.locator(f"#curate-{side} textarea")


def test_every_key_and_undo(page: Page, app_url: str, app_data):
    ids = seed(app_data, "keys")
    store = Store(app_data / "tpo.db")
    open_queue(page, app_url, "keys question", "carol")
    expect(page.locator("#curate-question")).to_have_text("keys question 0?")
    page.keyboard.press("u")  # nothing of carol's to undo yet: an error, and the keys go on
    expect(page.get_by_text("Nothing of carol's to undo.")).to_be_visible()
    settled(page)

    page.keyboard.press("a")  # accept, on to the next pair
    expect(meta(page)).to_contain_text("2 of 4")
    expect(page.locator("#curate-question")).to_have_text("keys question 1?")
    page.keyboard.press("r")
    expect(meta(page)).to_contain_text("3 of 4")
    page.keyboard.press("p")
    expect(meta(page)).to_contain_text(re.compile(r"2 of 4.*rejected"))
    page.keyboard.press("k")  # skip: no action
    expect(meta(page)).to_contain_text(re.compile(r"3 of 4.*pending"))
    page.keyboard.press("n")
    expect(meta(page)).to_contain_text("4 of 4")
    page.keyboard.press("p")
    expect(meta(page)).to_contain_text("3 of 4")
    settled(page)
    assert [store.get_pair(i)["status"] for i in ids] == ["accepted", "rejected", "pending",
                                                          "pending"]

    page.keyboard.press("s")  # swap the sides of pair 3
    expect(page.locator("#curate-message")).to_contain_text(f"Pair #{ids[2]}: swap")
    expect(answer_box(page, "chosen")).to_have_value("keys rejected 2.")
    expect(answer_box(page, "rejected")).to_have_value("keys chosen 2.")
    settled(page)
    assert store.get_pair(ids[2])["swapped"] == 1

    page.keyboard.press("u")  # undo the swap
    expect(page.locator("#curate-message")).to_contain_text(f"Undone: pair #{ids[2]}")
    expect(answer_box(page, "chosen")).to_have_value("keys chosen 2.")
    page.keyboard.press("u")  # and the reject before it: back to that pair
    expect(page.locator("#curate-message")).to_contain_text(f"Undone: pair #{ids[1]}")
    expect(meta(page)).to_contain_text(re.compile(r"2 of 4.*pending"))
    settled(page)
    assert store.get_pair(ids[2])["swapped"] == 0
    assert store.get_pair(ids[1])["status"] == "pending"
    # Each undo is an action of its own, by the reviewer, in the audit trail.
    assert [(r["action"], r["user"]) for r in store.reviews(ids[1])] == [
        ("reject", "carol"), ("undo", "carol")]

    # E edits the chosen answer; keys typed there are text; Ctrl+Enter saves; Esc leaves.
    page.keyboard.press("e")
    chosen = answer_box(page, "chosen")
    expect(chosen).to_be_focused()
    chosen.fill("")
    page.keyboard.type("A red square, then a blue circle.")
    page.keyboard.press("Control+Enter")
    expect(page.locator("#curate-message")).to_contain_text(f"Pair #{ids[1]}: edit")
    settled(page)
    pair = store.get_pair(ids[1])
    assert pair["edited_chosen"] == "A red square, then a blue circle."
    assert pair["status"] == "pending"
    page.keyboard.press("e")
    expect(chosen).to_be_focused()
    page.keyboard.press("Escape")
    expect(chosen).not_to_be_focused()
    page.keyboard.press("n")
    expect(meta(page)).to_contain_text("3 of 4")


def test_keys_faster_than_the_server_each_act_on_the_pair_shown(page: Page, app_url: str,
                                                                app_data):
    ids = seed(app_data, "burst", n=5)
    open_queue(page, app_url, "burst question", "dave")
    for key in "aara":  # without waiting for any answer
        page.keyboard.press(key)
    expect(meta(page)).to_contain_text("5 of 5")
    expect(page.locator("#curate-question")).to_have_text("burst question 4?")
    settled(page)
    expect(page.locator("#curate-message")).not_to_contain_text("Not saved")
    store = Store(app_data / "tpo.db")
    assert [store.get_pair(i)["status"] for i in ids] == [
        "accepted", "accepted", "rejected", "accepted", "pending"]
    assert all(len(store.reviews(i)) == 1 for i in ids[:4])


def test_accept_warns_once_before_accepting_an_empty_answer(page: Page, app_url: str, app_data):
    ids = seed(app_data, "hollow", n=2, chosen="  ")
    store = Store(app_data / "tpo.db")
    open_queue(page, app_url, "hollow question", "erin")
    expect(page.locator("#curate-warning-box")).to_contain_text("The chosen answer is empty")

    page.keyboard.press("a")
    expect(page.locator("#curate-message")).to_contain_text(f"Pair #{ids[0]} not accepted yet")
    expect(meta(page)).to_contain_text("1 of 2")
    expect(page.locator("#curate-warning-box")).to_contain_text("Press Accept again")
    settled(page)
    assert store.get_pair(ids[0])["status"] == "pending"

    page.keyboard.press("a")  # the second press accepts
    expect(meta(page)).to_contain_text("2 of 2")
    settled(page)
    assert store.get_pair(ids[0])["status"] == "accepted"


def test_guided_empty_queue_shows_and_restores_filtered_pairs(page: Page, app_url: str, app_data):
    reason = "e2e-guide: the chosen answer repeats the question"
    ids = seed(app_data, "guide", n=3, status="filtered", filter_verdict="dropped",
               filter_reason=reason)
    open_queue(page, app_url, "guide question", "frank", expect_pairs=False)
    guide = page.locator("#curate-guide-text")
    expect(guide).to_be_visible()
    expect(guide.locator('[data-reason="e2e-guide"]')).to_have_text("3 e2e-guide")

    page.locator("#curate-guide-reason input").click()
    page.get_by_role("option", name="e2e-guide (3)").click()
    page.locator("#curate-guide-show").click()  # show them: the filtered queue of that reason
    expect(meta(page)).to_contain_text(re.compile(r"1 of 3.*filtered"))
    expect(meta(page)).to_contain_text("e2e-guide")
    expect(guide).to_be_hidden()

    open_queue(page, app_url, "guide question", "frank", expect_pairs=False)
    page.locator("#curate-guide-reason input").click()
    page.get_by_role("option", name="e2e-guide (3)").click()
    page.locator("#curate-guide-restore").click()
    expect(page.locator("#curate-message")).to_contain_text("Restored 3")
    expect(meta(page)).to_contain_text(re.compile(r"1 of 3.*pending"))
    store = Store(app_data / "tpo.db")
    for pair_id in ids:
        assert store.get_pair(pair_id)["status"] == "pending"
        assert [(r["action"], r["user"]) for r in store.reviews(pair_id)] == [
            ("bulk-restore", "frank")]


def test_layout_at_1440x900_needs_no_scrolling(browser: Browser, app_url: str, app_data):
    seed(app_data, "fold", n=2, chosen="")  # with the warning line, the tallest view
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    open_queue(page, app_url, "fold question", "gina")
    expect(page.locator("#curate-warning-box")).to_contain_text("empty")
    expect(page.locator("#curate-chosen-strip [data-testid=strip-frame]")).to_have_count(3)
    for selector in ("#curate-question", "#curate-chosen textarea", "#curate-rejected textarea",
                     "#curate-chosen-strip", "#curate-rejected-strip", "#curate-accept",
                     "#curate-reject", "#curate-swap", "#curate-undo", "#curate-next",
                     "#curate-warning-box"):
        box = page.locator(selector).bounding_box()
        assert box is not None, selector
        assert 0 <= box["y"] and box["y"] + box["height"] <= 900, (selector, box)
        assert 0 <= box["x"] and box["x"] + box["width"] <= 1440, (selector, box)
    assert page.evaluate("() => window.scrollY") == 0
    # Thumbnails are static files the browser may keep (their bytes never change).
    src = page.locator("#curate-chosen-strip img").first.get_attribute("src")
    response = page.request.get(app_url + src)
    assert response.ok and "immutable" in response.headers["cache-control"]
    page.close()
