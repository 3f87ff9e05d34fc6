"""Store methods for side-by-side comparisons and the votes on them (the ``comparisons`` and
``votes`` tables). What they mean (blind order, the leaderboard) is :mod:`tpo.evaluation.compare`."""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from tpo.store.columns import encode, now


class ComparisonsMixin:
    """Part of :class:`tpo.store.Store` (uses its ``db``, ``transaction`` and ``_one``)."""

    def add_comparison(self, row: Mapping[str, Any]) -> int:
        with self.transaction() as db:
            return db["comparisons"].insert(encode(dict(row))).last_pk

    def update_comparison(self, comparison_id: int, changes: Mapping[str, Any]) -> None:
        with self.transaction() as db:
            db["comparisons"].update(comparison_id, encode(dict(changes)))

    def fail_answering(self, comparison_ids: Iterable[int], error: str) -> None:
        """Mark the comparisons still being answered as failed with ``error``."""
        with self.transaction() as db:
            for comparison_id in comparison_ids:
                db.execute("UPDATE comparisons SET status = 'failed', error = ? "
                           "WHERE id = ? AND status = 'answering'", [error, comparison_id])

    def get_comparison(self, comparison_id: int) -> dict:
        """The row as stored (JSON columns as text)."""
        return self._one("SELECT * FROM comparisons WHERE id = ?", [comparison_id],
                         missing=f"no comparison {comparison_id}")

    def list_comparisons(self, limit: int = 50) -> list[dict]:
        """Newest first, with their vote counts."""
        return list(self.db.query(
            "SELECT c.id, c.video_id, c.question, c.model_a, c.model_b, c.status, c.blind, "
            "c.user, c.created_at, count(v.id) AS n_votes FROM comparisons c "
            "LEFT JOIN votes v ON v.comparison_id = c.id GROUP BY c.id ORDER BY c.id DESC "
            "LIMIT ?", [limit]))

    def add_vote(self, comparison_id: int, user: str, vote: str) -> None:
        with self.transaction() as db:
            db["votes"].insert({"comparison_id": comparison_id, "user": user, "vote": vote,
                                "at": now()})

    def has_voted(self, comparison_id: int, user: str) -> bool:
        return bool(self.db.execute("SELECT 1 FROM votes WHERE comparison_id = ? AND user = ?",
                                    [comparison_id, user]).fetchone())

    def comparison_votes(self, comparison_id: int) -> list[dict]:
        """``user``, ``vote``, ``at`` of each vote, in the order cast."""
        return list(self.db.query(
            "SELECT user, vote, at FROM votes WHERE comparison_id = ? ORDER BY id",
            [comparison_id]))

    def votes_with_models(self) -> list[dict]:
        """Every vote with its comparison's models: ``model_a``, ``model_b``, ``vote``."""
        return list(self.db.query("SELECT c.model_a, c.model_b, v.vote FROM votes v "
                                  "JOIN comparisons c ON c.id = v.comparison_id"))
