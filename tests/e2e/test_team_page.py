"""The Team tab in a real browser: assign two reviewers with overlap, both decide the shared
pairs (through the library, as the Curate tab would record them), refresh, and read the
agreement table with Cohen's and Fleiss' kappa and the disagreement queue; edit the
guidelines twice and see version 2, also after a reload. In a shared app (log-ins) a
reviewer who is not an admin is not offered assigning or editing.

The app runs on a data folder of its own (no demo library): assigning every pending pair
there cannot change the queues other browser tests review."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import running_app
from tpo.curation.review import review
from tpo.store import Store

pytestmark = pytest.mark.e2e


def seed_pairs(data, n: int) -> list[int]:
    store = Store(data / "tpo.db")
    video_id = store.add_video({"path": "/v/team.mp4", "name": "team.mp4", "sha256": "t" * 64,
                                "status": "ready", "duration_s": 30.0})
    rows = [{"kind": "localized", "strategy": "irrelevant", "question": f"team question {i}?",
             "chosen": f"Yes {i}.", "rejected": f"No {i}.", "chosen_timestamps": [1.0],
             "rejected_timestamps": [2.0], "status": "pending", "filter_verdict": "kept"}
            for i in range(n)]
    ids = store.save_generation(video_id, "e2e-team", rows, params={}, seconds=0)
    store.close()
    return ids


@pytest.fixture(scope="module")
def team_app(tmp_path_factory):
    data = tmp_path_factory.mktemp("team-app")
    with running_app(data, TPO_DEMO="0", TPO_USER="lead") as url:
        yield url, data


def open_team_tab(page: Page) -> None:
    """Show the Team tab once the page-load event has filled it (the guidelines' status is
    empty until then): an action before that could be overwritten by the load's older read."""
    page.get_by_role("tab", name="Team").click()
    expect(page.locator("#team-guidelines-status")).to_contain_text(re.compile(
        r"No guidelines yet|Current guidelines"))


def test_assign_with_overlap_agreement_table_and_guidelines(page: Page, team_app):
    url, data = team_app
    ids = seed_pairs(data, 6)
    page.goto(url)
    open_team_tab(page)
    expect(page.locator("#team-agreement-empty")).to_contain_text("No pair has been decided")

    page.locator("#team-reviewers input, #team-reviewers textarea").first.fill("ana, bo")
    page.locator("#team-overlap input").fill("2")
    page.locator("#team-fraction input").fill("100")
    page.locator("#team-assign").click()
    result = page.locator("#team-assign-result")
    expect(result).to_contain_text("Assigned 6 pairs by count (ana: 6, bo: 6)")
    expect(result).to_contain_text("6 of them to 2 reviewers each")
    progress = page.locator("#team-progress")
    expect(progress).to_contain_text("ana")
    expect(progress).to_contain_text("bo")
    store = Store(data / "tpo.db")
    assert all(store.assignees(i) == ["ana", "bo"] for i in ids)

    # Both decide every pair; they differ on the third (ana accepts, bo rejects).
    for pair_id, a, b in zip(ids, "aaarrr", "aarrrr"):
        for user, letter in (("ana", a), ("bo", b)):
            review(store, pair_id, {"a": "accept", "r": "reject"}[letter], user=user)
    store.close()

    page.locator("#team-agreement-refresh").click()
    table = page.locator("#team-agreement")
    # Cohen: p_o 5/6, p_e 1/2 -> 2/3. Fleiss: P-bar 5/6, P_e (25 + 49)/144 -> 46/70.
    expect(table).to_contain_text("0.667")
    expect(table).to_contain_text("Cohen's")
    expect(table).to_contain_text("0.657")
    expect(table).to_contain_text("Fleiss'")
    expect(table).to_contain_text("83.3")
    expect(page.locator("#team-agreement-summary")).to_contain_text("1 open")
    queue = page.locator("#team-disagreements")
    expect(queue).to_contain_text("team question 2?")
    expect(queue).to_contain_text("ana: accepted, bo: rejected")
    page.locator("#team-progress-refresh").click()
    # ana: 6 assigned, 6 done, 0 left, 6 actions
    expect(progress.locator("tr", has_text="ana").first).to_contain_text(
        re.compile(r"ana\s*6\s*6\s*0\s*6"))

    editor = page.locator("#team-guidelines-text textarea")
    editor.fill("# Rules\n\nAccept answers grounded in the segment.")
    page.locator("#team-guidelines-save").click()
    status = page.locator("#team-guidelines-status")
    expect(status).to_contain_text("version 1, saved by lead")
    editor.fill("# Rules v2\n\nReject refusals.")
    expect(page.locator("#team-guidelines-preview h1")).to_have_text("Rules v2")
    page.locator("#team-guidelines-save").click()
    expect(status).to_contain_text("Saved as version 2")
    expect(page.locator("#team-guidelines-history")).to_contain_text("2")
    page.reload()
    open_team_tab(page)
    expect(page.locator("#team-guidelines-status")).to_contain_text("version 2, saved by lead")
    expect(page.locator("#team-guidelines-text textarea")).to_have_value(
        "# Rules v2\n\nReject refusals.\n")
    assert Store(data / "tpo.db").guidelines()["version"] == 2
    # Reviewers read them beside the pair in Curate.
    page.get_by_role("tab", name="Curate").click()
    guidelines = page.locator("#curate-guidelines")
    expect(guidelines.locator("h1")).to_have_text("Rules v2")
    expect(guidelines).to_contain_text("version 2")


def log_in(page: Page, url: str, user: str, password: str) -> None:
    page.goto(url)
    page.get_by_label("username").fill(user)
    page.get_by_label("password").fill(password)
    page.get_by_role("button", name="Login").click()
    expect(page.locator("#tpo-whoami")).to_contain_text(f"Logged in as {user}", timeout=30_000)
    open_team_tab(page)


def test_in_a_shared_app_only_an_admin_is_offered_assigning_and_editing(browser, tmp_path):
    with running_app(tmp_path, TPO_DEMO="0", TPO_AUTH="lead:l3ad,bo:b0pass",
                     TPO_ADMINS="lead") as url:
        bo = browser.new_context().new_page()
        log_in(bo, url, "bo", "b0pass")
        expect(bo.locator("#team-lead-note")).to_contain_text("for the admins (TPO_ADMINS)")
        expect(bo.locator("#team-assign")).to_be_hidden()
        expect(bo.locator("#team-guidelines-save")).to_be_hidden()
        expect(bo.locator("#team-guidelines-text textarea")).to_be_disabled()
        expect(bo.locator("#team-user")).to_be_hidden()  # the log-in names him
        expect(bo.locator("#team-agreement-refresh")).to_be_visible()  # reading is for all
        lead = browser.new_context().new_page()
        log_in(lead, url, "lead", "l3ad")
        expect(lead.locator("#team-assign")).to_be_visible()
        lead.locator("#team-guidelines-text textarea").fill("Be precise.")
        lead.locator("#team-guidelines-save").click()
        expect(lead.locator("#team-guidelines-status")).to_contain_text("version 1, saved by lead")
