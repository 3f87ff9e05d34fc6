"""Store methods for fine-tuned models (the ``models`` table): one row per adapter folder."""

from __future__ import annotations

from typing import Any, Mapping

from tpo.store.columns import encode


class ModelsMixin:
    """Part of :class:`tpo.store.Store` (uses its ``db`` and ``transaction``)."""

    def list_models(self) -> list[dict]:
        """Fine-tuned models (newest first): name, base, adapter_path, job_id, dataset."""
        return list(self.db.query("SELECT * FROM models ORDER BY id DESC"))

    def save_model(self, row: Mapping[str, Any]) -> int:
        """Insert the model, or update the row of the same ``adapter_path`` (a resumed run
        writes to its folder again); returns its id."""
        row = encode(dict(row))
        with self.transaction() as db:
            existing = db.execute("SELECT id FROM models WHERE adapter_path = ?",
                                  [row["adapter_path"]]).fetchone()
            if existing:
                db["models"].update(existing[0], row)
                return existing[0]
            return db["models"].insert(row).last_pk
