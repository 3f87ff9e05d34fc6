"""A shared app (TPO_AUTH) in a real browser: an anonymous visitor sees only the log-in form,
a wrong password is refused, and a logged-in user is named as themselves, not the OS user."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from media import make_video
from tests.e2e.conftest import running_app
from tpo.store import Store

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def shared_url(tmp_path_factory):
    data = tmp_path_factory.mktemp("shared-app")
    with running_app(data, TPO_AUTH="ana:s3cret,bo:b0pass", TPO_DEMO="0",
                     TPO_USER="osuser") as url:
        yield url, data


def test_log_in_then_the_page_names_the_logged_in_user(page: Page, shared_url, tmp_path):
    url, data = shared_url
    page.goto(url)
    expect(page.locator("#tpo-header")).to_have_count(0)  # only the log-in form
    page.get_by_label("username").fill("ana")
    page.get_by_label("password").fill("wrong")
    page.get_by_role("button", name="Login").click()
    expect(page.get_by_text("Incorrect Credentials")).to_be_visible()
    page.get_by_label("username").fill("ana")
    page.get_by_label("password").fill("s3cret")
    page.get_by_role("button", name="Login").click()
    expect(page.locator("#tpo-header")).to_contain_text("0 videos", timeout=30_000)
    expect(page.locator("#tpo-whoami")).to_contain_text("Logged in as ana")
    expect(page.locator("#tpo-header")).not_to_contain_text("osuser")
    # ana is no admin: the server-path box is not offered to her
    expect(page.locator("#library-add-path")).to_be_hidden()
    # An upload is recorded under her name (the browser's request, not the OS user).
    page.get_by_text("Add videos").click()
    clip = make_video(tmp_path / "mine.mp4", duration_s=2, fps=4)
    page.locator("#library-upload input[type=file]").set_input_files(str(clip))
    expect(page.locator("#library-add-result")).to_contain_text("added 1", timeout=60_000)
    (video,) = Store(data / "tpo.db").list_videos()
    assert (video["name"], video["added_by"]) == ("mine.mp4", "ana")
