"""Which model a person means: a registered fine-tuned run, a local folder, or a hub id.

Compare, evaluate and generate all take a model *reference* as typed or picked:

* ``#3`` or ``#3 run-20261125-101500`` - the run registered as model 3 in the store
  (``models`` table): its base plus its LoRA adapter, or the run's own folder after a full
  fine-tune (no ``adapter_config.json`` there);
* the name of a registered run (``run-20261125-101500``);
* an existing local folder (made absolute: jobs run in another working directory);
* anything else: a Hugging Face hub id, as typed (loading says why when it is not there).

Torch-free, so the app can resolve references without loading anything.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from tpo.store import Store, StoreError


@dataclass(frozen=True)
class ModelRef:
    """What to load (``model`` + optional ``adapter``) and the ``label`` people see."""

    label: str
    model: str
    adapter: str | None = None

    def spec(self) -> dict:
        """The JSON-able load spec stored with comparisons and evaluations."""
        return {"model": self.model, "adapter": self.adapter}

    def as_dict(self) -> dict:
        return asdict(self)


def registered(row: dict) -> ModelRef:
    """The ref of a ``models`` row: base + adapter, or the full fine-tune's folder."""
    label = f"#{row['id']} {row['name']}"
    if (Path(row["adapter_path"]) / "adapter_config.json").is_file():
        return ModelRef(label, row["base"], row["adapter_path"])
    return ModelRef(label, row["adapter_path"], None)


def find_registered(store: Store | None, ref: str) -> dict | None:
    """The ``models`` row `ref` names (``#3``, ``#3 name`` or a run's name), or None when it
    names no run; StoreError for an unknown ``#id``, ValueError for a malformed one."""
    text = (ref or "").strip()
    models = store.list_models() if store is not None else []
    if text.startswith("#"):
        head = text.split(" ", 1)[0][1:]
        if not head.isdigit():
            raise ValueError(f"{text!r}: a registered model is written #<id>, e.g. #3")
        row = next((m for m in models if m["id"] == int(head)), None)
        if row is None:
            raise StoreError(f"no registered model #{head} (see the Train tab or `tpo models`)")
        return row
    return next((m for m in models if m["name"] == text), None)


def resolve(store: Store | None, ref: str) -> ModelRef:
    """The model `ref` names (rules in the module docstring); StoreError for an unknown ``#id``."""
    text = (ref or "").strip()
    if not text:
        raise ValueError("name a model: a Hugging Face id, a local folder or a registered run (#id)")
    row = find_registered(store, text)
    if row is not None:
        return registered(row)
    path = Path(text).expanduser()
    if path.is_dir():
        return ModelRef(path.name, str(path.resolve()))
    return ModelRef(text, text)
