"""The Curate tab in a real browser: keyboard review, editing with the original kept,
counters, the segment on the timeline, and two reviewers editing one pair."""

from __future__ import annotations

import re

import pytest
from demo_pairs import seed_pairs
from playwright.sync_api import Browser, Page, expect

from tpo.store import Store

pytestmark = pytest.mark.e2e


def open_queue(page: Page, url: str, search: str, user: str) -> None:
    page.goto(url)
    page.get_by_role("tab", name="Curate").click()
    page.locator("#curate-user textarea, #curate-user input").first.fill(user)
    page.locator("#curate-search textarea, #curate-search input").first.fill(search)
    page.locator("#curate-load").click()
    expect(page.locator("#curate-meta")).to_contain_text("1 of", timeout=30_000)


def count(page: Page, status: str) -> int:
    return int(page.locator(f"#curate-counters [data-count={status}]").inner_text())


def test_keyboard_review_edit_and_timeline(page: Page, app_url: str, app_data):
    ids = seed_pairs(app_data, "kbd")
    open_queue(page, app_url, "kbd question", "alice")
    expect(page.locator("#curate-question")).to_have_text("kbd question 0?")
    segment = page.get_by_test_id("timeline-segment")
    expect(segment).to_have_attribute("data-start", "2.000")
    expect(segment).to_have_attribute("data-end", "5.000")
    expect(page.locator("#curate-timeline .tpo-chosen")).to_have_count(3)
    expect(page.locator("#curate-chosen-strip [data-testid=strip-frame]")).to_have_count(3)
    accepted = count(page, "accepted")

    page.locator("body").press("a")  # accept, then on to the next pair
    expect(page.locator("#curate-meta")).to_contain_text("2 of 3")
    expect(page.locator("#curate-counters [data-count=accepted]")).to_have_text(str(accepted + 1))
    page.keyboard.press("r")
    expect(page.locator("#curate-meta")).to_contain_text("3 of 3")
    page.keyboard.press("p")
    expect(page.locator("#curate-meta")).to_contain_text("2 of 3")
    expect(page.locator("#curate-meta")).to_contain_text("rejected")

    page.keyboard.press("e")  # focuses the chosen answer
    chosen = page.locator("#curate-chosen textarea")
    expect(chosen).to_be_focused()
    chosen.fill("A red circle, top left.")
    page.locator("#curate-save").click()
    expect(page.locator("#curate-message")).to_contain_text(f"Pair #{ids[1]}: edit")
    page.get_by_text("Original (generated) texts").click()
    expect(page.locator("#curate-originals")).to_contain_text("generated chosen: kbd chosen 1")
    store = Store(app_data / "tpo.db")
    assert [r["user"] for r in store.reviews(ids[0])] == ["alice"]
    assert store.get_pair(ids[1])["edited_chosen"] == "A red circle, top left."


def test_text_typed_while_a_move_is_on_its_way_is_kept(page: Page, app_url: str, app_data):
    """P, then E and typing before the server has answered P: the answer re-sends the
    boxes' texts, and the typed text must survive it (and be what Save sends)."""
    ids = seed_pairs(app_data, "held")
    open_queue(page, app_url, "held question", "carol")
    page.keyboard.press("n")
    expect(page.locator("#curate-meta")).to_contain_text("2 of 3")
    page.wait_for_function("() => window.tpoCurate.busy() === 0")

    held = []  # the request for P waits here until the typing is done

    def hold(route):
        if held:
            route.continue_()
        else:
            held.append(route)

    page.route("**/gradio_api/queue/join*", hold)
    with page.expect_request("**/gradio_api/queue/join*"):
        page.keyboard.press("p")
    expect(page.locator("#curate-meta")).to_contain_text("1 of 3")  # shown before the answer
    for _ in range(200):  # the route's handler runs while Playwright waits
        if held:
            break
        page.wait_for_timeout(50)
    assert len(held) == 1
    page.keyboard.press("e")
    page.locator("#curate-chosen textarea").fill("Typed while P was on its way.")
    page.locator("#curate-save").click()  # waits in the script for P's answer
    held[0].continue_()

    expect(page.locator("#curate-message")).to_contain_text(f"Pair #{ids[0]}: edit")
    expect(page.locator("#curate-chosen textarea")).to_have_value("Typed while P was on its way.")
    assert Store(app_data / "tpo.db").get_pair(ids[0])["edited_chosen"] == \
        "Typed while P was on its way."


def test_two_reviewers_editing_one_pair_get_a_conflict(browser: Browser, app_url: str, app_data):
    (pair_id,) = seed_pairs(app_data, "clash", n=1)
    alice = browser.new_context().new_page()
    bob = browser.new_context().new_page()
    open_queue(alice, app_url, "clash question", "alice")
    open_queue(bob, app_url, "clash question", "bob")

    alice.locator("#curate-accept").click()
    expect(alice.locator("#curate-message")).to_contain_text("accept → accepted (version 2)")

    bob.locator("#curate-chosen textarea").fill("Bob's better answer.")
    bob.locator("#curate-save").click()
    message = bob.locator("#curate-message")
    expect(message).to_contain_text("Not saved")
    expect(message).to_contain_text("changed by alice")
    # Bob now sees the newer version, and nothing of his overwrote Alice's.
    expect(bob.locator("#curate-meta")).to_contain_text(re.compile(r"accepted.*version 2"))
    pair = Store(app_data / "tpo.db").get_pair(pair_id)
    assert pair["status"] == "accepted" and pair["edited_chosen"] is None


def test_export_accepted_pairs_and_download(page: Page, app_url: str, app_data):
    from datasets import load_dataset

    from tpo.curation.review import review

    store = Store(app_data / "tpo.db")
    for pair_id in seed_pairs(app_data, "export", n=2):
        review(store, pair_id, "accept", user="alice")
    page.goto(app_url)
    page.get_by_role("tab", name="Curate").click()
    page.get_by_text("Export accepted pairs for training").click()
    page.locator("#export-start").click()
    job = page.locator("#export-job .tpo-job")
    expect(job).to_have_attribute("data-status", "succeeded", timeout=120_000)
    expect(job).to_contain_text("100%")
    page.locator("#export-zip").click()
    expect(page.locator("#export-file")).to_contain_text(".zip", timeout=30_000)

    out = store.db.execute("SELECT output FROM jobs WHERE kind = 'export' ORDER BY id DESC").fetchone()[0]
    out_dir = __import__("json").loads(out)["out_dir"]
    ds = load_dataset(out_dir, split="train")
    accepted = {p["id"] for p in store.list_pairs(status="accepted")}
    assert set(ds["pair_id"]) == accepted
    # The paper's records: frames uniform over the whole video, at most one per second
    # (the chosen side saw 3 frames, at 2-4 s), the same frames for chosen and rejected.
    duration = store.get_video(store.get_pair(ds[0]["pair_id"])["video_id"])["duration_s"]
    assert len(ds[0]["images"]) == len(ds[0]["frame_times"]) == min(64, int(duration))
    assert ds[0]["frame_times"][0] < 2.0 and ds[0]["frame_times"][-1] > duration - 2.0
