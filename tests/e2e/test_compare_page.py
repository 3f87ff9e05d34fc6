"""The Compare tab in a real browser: the offline demo model and a tiny random Qwen2-VL
answer one question on one video, blind; the vote reveals the names and lands in the store and the leaderboard.
Then a needle-in-a-haystack evaluation runs as a job and its heatmap appears."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest
from playwright.sync_api import Page, expect

from tpo import jobs
from tpo.evaluation import compare
from tpo.evaluation import eval_results as er
from tpo.store import Store

pytestmark = pytest.mark.e2e
JOB_TIMEOUT_MS = 300_000


@pytest.fixture(scope="module")
def second_model(app_data):
    """A second offline model (another real architecture) for side B, built by the CLI."""
    out = app_data / "models" / "tiny-qwen2vl"
    subprocess.run([sys.executable, "-m", "tpo.cli", "tiny-model", str(out), "--arch", "qwen2vl"],
                   check=True, capture_output=True)
    return out


def choose(page: Page, elem_id: str, option: str | re.Pattern) -> None:
    page.locator(f"#{elem_id} input").first.click()
    page.get_by_role("option", name=option).first.click()


def open_with_two_models(page: Page, app_url: str, second_model, *, tokens: int) -> None:
    """The Compare tab with the offline model first (built on first use), `second_model`
    second, 4 frames and `tokens` new tokens per answer."""
    page.goto(app_url)
    page.get_by_role("tab", name="Compare").click()
    page.locator("#model-use-demo").click()  # the app-wide picker; the first model follows it
    model_a = page.locator("#compare-model-a textarea, #compare-model-a input").first
    expect(model_a).to_have_value(re.compile(r"models/demo-smolvlm$"), timeout=JOB_TIMEOUT_MS)
    page.locator("#compare-model-b textarea, #compare-model-b input").first.fill(str(second_model))
    page.get_by_label("Max new tokens").fill(str(tokens))
    page.get_by_label("Frames (uniform)").fill("4")


def test_blind_vote_reveals_the_models(page: Page, app_url: str, app_data, second_model):
    store = Store(app_data / "tpo.db")
    open_with_two_models(page, app_url, second_model, tokens=12)
    choose(page, "compare-video", re.compile("countdown"))
    # The countdown video's ground truth offers its questions.
    choose(page, "compare-suggested", "Which number is shown in red?")
    question = page.locator("#compare-question textarea, #compare-question input").first
    expect(question).to_have_value("Which number is shown in red?")

    page.locator("#compare-ask").click()
    answer_a, answer_b = page.locator("#compare-answer-a .tpo-answer"), page.locator("#compare-answer-b .tpo-answer")
    expect(answer_b).to_have_attribute("data-status", "done", timeout=JOB_TIMEOUT_MS)
    (row,) = compare.list_comparisons(store, limit=1)
    full = compare.get(store, row["id"])
    assert full["blind"] and full["status"] == "done" and full["answer_a"] and full["answer_b"]
    assert {full["model_a"], full["model_b"]} == {"demo-smolvlm", "tiny-qwen2vl"}
    # Blind: the answers are there, the names are not.
    expect(answer_a).to_contain_text(full["answer_a"][:8])
    for side in (answer_a, answer_b):
        expect(side.locator(".tpo-side-title")).not_to_contain_text("tiny")
        expect(side.locator(".tpo-side-title")).not_to_contain_text("demo")
    expect(page.locator("#compare-reveal")).to_contain_text("revealed after your vote")
    expect(page.locator("#compare-frames [data-testid=strip-frame]")).to_have_count(4)
    # The strip's frames are drawn by the thumbnail route when the browser asks (the answer
    # decodes nothing): every image arrives.
    page.wait_for_function("() => { const imgs = [...document.querySelectorAll("
                           "'#compare-frames img')]; return imgs.length === 4 && "
                           "imgs.every(i => i.complete && i.naturalWidth > 0); }")

    page.locator("#compare-vote-b").click()
    reveal = page.get_by_test_id("reveal")
    expect(reveal).to_contain_text(f"A was {full['model_a']}")
    expect(reveal).to_contain_text(f"B was {full['model_b']}")
    expect(reveal).to_contain_text("your vote: B is better")
    expect(answer_b.locator(".tpo-side-title")).to_contain_text(full["model_b"])
    assert compare.get(store, row["id"])["votes"][0]["vote"] == "b"
    board = page.locator("#compare-leaderboard")
    expect(board).to_contain_text("tiny-qwen2vl")
    expect(board).to_contain_text("demo-smolvlm")

    # A second vote by the same person is refused, and says so.
    page.locator("#compare-vote-a").click()
    expect(page.get_by_text("has already voted").first).to_be_visible()
    assert len(compare.get(store, row["id"])["votes"]) == 1


def test_every_suggested_question_in_one_go(page: Page, app_url: str, app_data, second_model):
    """One click asks every ground-truth question of a video; Previous / Next go through the
    comparisons, each blind until voted."""
    store = Store(app_data / "tpo.db")
    (video,) = store.list_videos(search="shapes_parade")
    n = len(compare.questions_for_video(store, video["id"]))
    assert n >= 3
    open_with_two_models(page, app_url, second_model, tokens=6)
    choose(page, "compare-video", re.compile("shapes_parade"))
    page.locator("#compare-ask-all").click()
    position = page.locator("#compare-position")
    expect(position).to_contain_text(f"1 of {n}")
    answer_b = page.locator("#compare-answer-b .tpo-answer")
    expect(answer_b).to_have_attribute("data-status", "done", timeout=JOB_TIMEOUT_MS)
    page.locator("#compare-vote-tie").click()
    expect(page.get_by_test_id("reveal")).to_contain_text("your vote: Tie")

    page.locator("#compare-next").click()
    expect(position).to_contain_text(f"2 of {n}")
    expect(page.locator("#compare-reveal")).to_contain_text("revealed after your vote")
    expect(answer_b).to_have_attribute("data-status", "done", timeout=JOB_TIMEOUT_MS)
    page.locator("#compare-prev").click()
    expect(position).to_contain_text(f"1 of {n}")
    expect(page.get_by_test_id("reveal")).to_contain_text("your vote: Tie")

    asked = [c for c in compare.list_comparisons(store, limit=n) if c["video_id"] == video["id"]]
    assert len(asked) == n
    job_ids = {compare.get(store, c["id"])["job_id"] for c in asked}
    assert len(job_ids) == 1  # one job answered them all
    row = jobs.wait(store, job_ids.pop(), timeout_s=JOB_TIMEOUT_MS / 1000)
    assert row["status"] == "succeeded"
    assert {compare.get(store, c["id"])["status"] for c in asked} == {"done"}


def test_needle_evaluation_shows_table_and_heatmap(page: Page, app_url: str, app_data):
    store = Store(app_data / "tpo.db")
    page.goto(app_url)
    page.get_by_role("tab", name="Evaluate").click()
    page.locator("#model-use-demo").click()
    models = page.locator("#eval-models textarea").first
    # the picked model alone, never added under another one
    expect(models).to_have_value(re.compile(r"^[^\n]*models/demo-smolvlm$"),
                                 timeout=JOB_TIMEOUT_MS)
    page.locator("#eval-lengths textarea, #eval-lengths input").first.fill("10, 20")
    page.locator("#eval-depths textarea, #eval-depths input").first.fill("0, 1")
    page.get_by_label("Frames per question").fill("4")
    page.locator("#eval-run").click()
    job = page.locator("#eval-job .tpo-job")
    expect(job).to_have_attribute("data-status", "succeeded", timeout=JOB_TIMEOUT_MS)
    (stored,) = er.list_evals(store, job_id=int(job.get_attribute("data-job-id")))
    assert stored["suite"] == "needle" and stored["n_items"] == 4
    expect(page.locator("#eval-results")).to_contain_text("demo-smolvlm")
    expect(page.locator("#eval-heatmaps img").first).to_be_visible()
    expect(page.locator("#eval-heatmaps")).to_contain_text(f"#{stored['id']} demo-smolvlm")
    # Selecting the evaluation shows every answer, the letter read from it and the right one.
    page.locator("#eval-results").get_by_test_id("cell-0-1").click()
    expect(page.locator("#eval-answers-note")).to_contain_text(f"Eval #{stored['id']}")
    answers = page.locator("#eval-answers")
    expect(answers).to_contain_text("len10_depth0.00_k0")
    expect(answers).to_contain_text("len20_depth1.00_k0")
    # The selection filled "with evaluation #"; comparing it with itself changes nothing.
    second = page.locator("#eval-second input").first
    expect(second).to_have_value(str(stored["id"]))
    page.locator("#eval-first input").first.fill(str(stored["id"]))
    page.locator("#eval-diff").click()
    expect(page.locator("#eval-diff-summary")).to_contain_text("+0.0 points")
    expect(page.locator("#eval-diff-table")).to_contain_text("overall")
    # An evaluation stored by someone else (here: straight into the store, as `tpo eval`
    # does) shows up in the open page without a reload.
    with store.transaction() as db:
        db["evals"].insert({"suite": "needle", "model": "from-the-cli", "frames": 16,
                            "n_items": 0, "n_correct": 0, "n_unparsed": 0, "summary": "{}",
                            "created_at": "2026-11-25T00:00:00+00:00"})
    expect(page.locator("#eval-results")).to_contain_text("from-the-cli")


def test_uploading_a_video_in_compare_selects_it(page: Page, app_url: str, app_data, tmp_path):
    """A copy of a library video: recognised by its bytes (nothing added, so the other browser
    tests keep their five demo videos) and selected, with its questions and player."""
    store = Store(app_data / "tpo.db")
    (countdown,) = store.list_videos(search="countdown")
    copy = tmp_path / "my_copy.mp4"
    shutil.copyfile(countdown["path"], copy)
    n_videos = len(store.list_videos())
    page.goto(app_url)
    page.get_by_role("tab", name="Compare").click()
    page.get_by_text("Upload a video (added to the library)").click()
    page.locator("#compare-upload input[type=file]").set_input_files(str(copy))
    expect(page.locator("#compare-video input").first).to_have_value(f"#{countdown['id']} countdown.mp4")
    expect(page.get_by_text(f"is in the library as video #{countdown['id']}").first).to_be_visible()
    expect(page.locator("#tpo-compare-player")).to_have_attribute("src", f"media/video/{countdown['id']}")
    page.locator("#compare-suggested input").first.click()
    expect(page.get_by_role("option", name="Which number is shown in red?")).to_be_visible()
    assert len(store.list_videos()) == n_videos
