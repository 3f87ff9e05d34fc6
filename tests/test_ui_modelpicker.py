"""The app-wide model picker: a first visit's pick (the hub model, or the offline demo model
when the Hub cannot be reached), the pick kept per user in the browser and restored, and
every tab's model box following it."""

from __future__ import annotations

import json

import pytest

from tpo.models.demo_model import DEMO_VERSION, MARKER
from ui import models
from ui.models import (default_pick, demo_folder, follow_values, hub_note, initial_pick, recall,
                       remember, restored_pick)

NO_HUB = "https://huggingface.co cannot be reached (no network)"


def no_progress(*_args, **_kwargs) -> None:
    pass


def install_fake_demo(settings) -> str:
    """A folder :func:`tpo.models.demo_model.is_demo_model` accepts (no weights: nothing loads it)."""
    folder = demo_folder(settings)
    folder.mkdir(parents=True)
    (folder / MARKER).write_text(json.dumps({"version": DEMO_VERSION}))
    return str(folder)


def register(store, name: str, path: str) -> None:
    with store.transaction() as db:
        db["models"].insert({"name": name, "base": "base/model", "adapter_path": path,
                             "created_at": "2026-01-01T00:00:00+00:00"})


def test_a_first_visit_starts_from_the_hub_model_or_without_a_hub_the_offline_one(settings):
    assert default_pick(settings, None) == settings.model
    assert hub_note(None) == ""
    assert default_pick(settings, NO_HUB) == str(demo_folder(settings))
    assert hub_note(NO_HUB).startswith("The Hugging Face Hub cannot be reached: using the "
                                       "offline demo model")


def test_before_the_load_a_missing_offline_model_is_not_named(settings):
    assert initial_pick(settings, None) == settings.model
    assert initial_pick(settings, NO_HUB) == ""  # the page's load installs it, then names it
    install_fake_demo(settings)
    assert initial_pick(settings, NO_HUB) == str(demo_folder(settings))


def test_the_pick_is_kept_per_user():
    stored = remember(None, "ana", "org/model-a")
    stored = remember(stored, "bo", "/models/b")
    assert recall(stored, "ana") == "org/model-a"
    assert recall(stored, "bo") == "/models/b"
    assert recall(stored, "cy") is None
    assert recall(None, "ana") is None
    assert recall("garbage from an older page", "ana") is None  # not a dict: ignored
    assert recall({"ana": "  "}, "ana") is None


def test_a_page_restores_the_users_last_pick(store, settings):
    stored = remember(None, "tester", "org/my-model")
    assert restored_pick(store, settings, None, stored, "tester", no_progress) == "org/my-model"
    # even without a Hub: a kept pick is the person's choice
    assert restored_pick(store, settings, NO_HUB, stored, "tester", no_progress) == "org/my-model"
    # someone else on this browser starts from the default
    assert restored_pick(store, settings, None, stored, "other", no_progress) == settings.model


def test_a_kept_run_deleted_since_falls_back_to_the_default(store, settings, tmp_path):
    register(store, "run-1", str(tmp_path))
    kept = remember(None, "tester", "#1 run-1")
    assert restored_pick(store, settings, None, kept, "tester", no_progress) == "#1 run-1"
    gone = remember(None, "tester", "#7 deleted-run")
    assert restored_pick(store, settings, None, gone, "tester", no_progress) == settings.model


def test_without_a_hub_a_first_visit_gets_the_offline_model_installed(store, settings,
                                                                      monkeypatch):
    submitted = []

    def submit(_store, kind, params, log_dir):
        submitted.append((kind, params))
        install_fake_demo(settings)  # what the job does, without torch
        return 1

    monkeypatch.setattr(models.jobs, "submit", submit)
    monkeypatch.setattr(models.jobs, "wait",
                        lambda _store, _id, timeout_s: {"status": "succeeded", "error": None})
    pick = restored_pick(store, settings, NO_HUB, None, "tester", no_progress)
    assert pick == str(demo_folder(settings))
    assert submitted == [("demo-model", {"out": pick})]
    # installed now: the next page does not install it again
    assert restored_pick(store, settings, NO_HUB, None, "tester", no_progress) == pick
    assert len(submitted) == 1


def test_an_install_under_way_is_waited_for_not_started_again(store, settings, monkeypatch):
    out = str(demo_folder(settings))
    waited = []
    monkeypatch.setattr(models.jobs, "list_jobs", lambda _store, kind, status: [
        {"id": 9, "params": {"out": "/elsewhere"}}, {"id": 4, "params": {"out": out}}])
    monkeypatch.setattr(models.jobs, "submit", lambda *_a, **_k: pytest.fail("a second install"))

    def wait(_store, job_id, timeout_s):
        waited.append(job_id)
        install_fake_demo(settings)
        return {"status": "succeeded", "error": None}

    monkeypatch.setattr(models.jobs, "wait", wait)
    assert restored_pick(store, settings, NO_HUB, None, "tester", no_progress) == out
    assert waited == [4]


def test_a_failed_install_says_why(store, settings, monkeypatch):
    import gradio as gr

    monkeypatch.setattr(models.jobs, "submit", lambda *_a, **_k: 1)
    monkeypatch.setattr(models.jobs, "wait",
                        lambda *_a, **_k: {"status": "failed", "error": "disk full"})
    with pytest.raises(gr.Error, match="disk full"):
        restored_pick(store, settings, NO_HUB, None, "tester", no_progress)


def test_every_tab_follows_the_pick_and_the_browser_keeps_it(store, settings):
    from ui.app import build_app

    install_fake_demo(settings)
    demo = build_app(store, settings, hub_check=lambda: NO_HUB)
    by_id = {getattr(b, "elem_id", None): b for b in demo.blocks.values()}
    picker_box = by_id["model-pick"]
    assert picker_box.value == str(demo_folder(settings))  # no Hub: the offline model
    assert by_id["model-note"].visible and "cannot be reached" in by_id["model-note"].value
    for elem_id in ("generate-model", "train-model", "compare-model-a", "eval-models"):
        assert by_id[elem_id].value == picker_box.value
    # the per-tab demo buttons gave way to the picker's one
    assert "model-use-demo" in by_id
    assert not {"generate-use-demo", "train-use-demo", "compare-use-demo",
                "eval-use-demo"} & set(by_id)

    (on_pick,) = [fn for fn in demo.fns.values()
                  if any(demo.blocks.get(b) is picker_box and name == "change"
                         for b, name in fn.targets)]
    outputs = {getattr(b, "elem_id", None): b for b in on_pick.outputs}
    assert {"generate-model", "train-model", "compare-model-a", "eval-models"} <= set(outputs)


def test_follow_values_fill_the_tabs_and_keep_the_pick(store, settings):
    import gradio as gr

    with gr.Blocks():
        first, second = gr.Textbox(), gr.Textbox()
        stored = gr.BrowserState(None)
    out = follow_values("org/new", {"bo": "x"}, "ana",
                        [(first, lambda p: p), (second, lambda p: p.upper())], stored)
    assert out == {first: "org/new", second: "ORG/NEW", stored: {"bo": "x", "ana": "org/new"}}
