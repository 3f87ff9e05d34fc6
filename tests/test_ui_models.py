"""Picking a fine-tuned model in the app: a LoRA run loads as base + adapter, a full
fine-tune as its own folder."""

from __future__ import annotations

from ui.generate import generation_model
from ui.models import NO_ADAPTER, base_model, model_choices


def register(store, name: str, path: str) -> None:
    with store.transaction() as db:
        db["models"].insert({"name": name, "base": "base/model", "adapter_path": path,
                             "created_at": "2026-01-01T00:00:00+00:00"})


def test_choices_and_what_they_load(store, tmp_path):
    lora, full = tmp_path / "lora-run", tmp_path / "full-run"
    lora.mkdir()
    full.mkdir()
    (lora / "adapter_config.json").write_text("{}")
    register(store, "lora-run", str(lora))
    register(store, "full-run", str(full))
    choices = model_choices(store)
    assert choices == [NO_ADAPTER, "#2 full-run", "#1 lora-run"]
    assert generation_model(store, "typed", "#1 lora-run") == ("base/model", str(lora))
    assert generation_model(store, "typed", "#2 full-run") == (str(full), None)
    assert generation_model(store, "typed", NO_ADAPTER) == ("typed", None)
    # a run picked app-wide (in the model box) loads the same way; Train trains its base
    assert generation_model(store, "#1 lora-run", NO_ADAPTER) == ("base/model", str(lora))
    assert base_model(store, "#1 lora-run") == "base/model"
    assert base_model(store, "#2 full-run") == str(full)
    assert base_model(store, "typed") == "typed"


def test_picking_a_run_in_compare_puts_its_base_first(store, tmp_path):
    from ui.compare import pick_run

    lora = tmp_path / "lora-run"
    lora.mkdir()
    (lora / "adapter_config.json").write_text("{}")
    register(store, "lora-run", str(lora))
    assert pick_run(store, "#1 lora-run") == ("base/model", "#1 lora-run")
    first, second = pick_run(store, None)  # cleared: both fields left as they are
    assert first == second == {"__type__": "update"}


def test_panels_poll_fast_only_while_their_job_is_active():
    from ui.jobs import IDLE_POLL_S, poll_interval

    assert poll_interval(None, 1.0) == IDLE_POLL_S
    for status in ("queued", "running", "cancelling"):
        assert poll_interval({"status": status}, 2.0) == 2.0
    for status in ("succeeded", "failed", "cancelled"):
        assert poll_interval({"status": status}, 2.0) == IDLE_POLL_S
    assert IDLE_POLL_S > 2.0
