"""Model references (``#id``, registered names, folders, hub ids) against a real store."""

from __future__ import annotations

import json

import pytest

from tpo.models.modelref import ModelRef, resolve
from tpo.store import StoreError, now


def register(store, name: str, base: str, adapter_path) -> int:
    return store.db["models"].insert({"name": name, "base": base, "adapter_path": str(adapter_path),
                                      "created_at": now()}).last_pk


@pytest.fixture
def runs(store, tmp_path):
    """A LoRA run (adapter_config.json in its folder) and a full fine-tune (none)."""
    lora = tmp_path / "runs" / "run-lora"
    lora.mkdir(parents=True)
    (lora / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA"}))
    full = tmp_path / "runs" / "run-full"
    full.mkdir()
    (full / "config.json").write_text("{}")
    lora_id = register(store, "run-lora", "base/model", lora)
    full_id = register(store, "run-full", "base/model", full)
    return {"lora": (lora_id, lora), "full": (full_id, full)}


def test_hash_id_of_a_lora_run_is_base_plus_adapter(store, runs):
    lora_id, folder = runs["lora"]
    ref = resolve(store, f"#{lora_id}")
    assert ref == ModelRef(f"#{lora_id} run-lora", "base/model", str(folder))
    assert ref.spec() == {"model": "base/model", "adapter": str(folder)}
    assert ref.as_dict() == {"label": f"#{lora_id} run-lora", "model": "base/model",
                             "adapter": str(folder)}


def test_hash_id_with_its_name_as_picked_from_a_list(store, runs):
    lora_id, folder = runs["lora"]
    full_id, _ = runs["full"]
    assert resolve(store, f"  #{lora_id} run-lora ") == resolve(store, f"#{lora_id}")
    # the id decides, whatever name follows it
    assert resolve(store, f"#{full_id} run-lora").adapter is None


def test_full_fine_tune_is_its_own_folder(store, runs):
    full_id, folder = runs["full"]
    ref = resolve(store, f"#{full_id}")
    assert ref == ModelRef(f"#{full_id} run-full", str(folder), None)


def test_registered_name(store, runs):
    lora_id, folder = runs["lora"]
    full_id, full = runs["full"]
    assert resolve(store, "run-lora") == ModelRef(f"#{lora_id} run-lora", "base/model", str(folder))
    assert resolve(store, "run-full").model == str(full)


def test_existing_folder_becomes_absolute(store, tmp_path, monkeypatch):
    folder = tmp_path / "models" / "tiny"
    folder.mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    ref = resolve(store, "models/tiny")
    assert ref == ModelRef("tiny", str(folder.resolve()), None)
    assert resolve(None, str(folder)).model == str(folder.resolve())


def test_hub_id_passes_through(store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no folder of that name here
    ref = resolve(store, "HuggingFaceTB/SmolVLM2-256M-Video-Instruct")
    assert ref == ModelRef("HuggingFaceTB/SmolVLM2-256M-Video-Instruct",
                           "HuggingFaceTB/SmolVLM2-256M-Video-Instruct", None)
    assert resolve(None, "owner/name").model == "owner/name"


def test_unknown_and_malformed_references(store, runs):
    with pytest.raises(StoreError, match="no registered model #99"):
        resolve(store, "#99")
    with pytest.raises(ValueError, match="#<id>"):
        resolve(store, "#x")
    with pytest.raises(ValueError, match="name a model"):
        resolve(store, "")
    with pytest.raises(ValueError, match="name a model"):
        resolve(store, "   ")
    with pytest.raises(StoreError):  # no store: no registered models at all
        resolve(None, "#1")
