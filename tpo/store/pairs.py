"""Store methods for preference pairs, their generation runs and their review trail (the
``pairs``, ``generations`` and ``reviews`` tables), and :class:`Pair`, the row they return.

A reviewer never changes a pair's generated texts: edits, a swap of the sides, a note and the
status sit beside them. :meth:`Pair.effective` is the pair as reviewed; :func:`swap_sides` is
the one place that knows which generated side a reviewed side is.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from tpo.store.columns import LIKE_ESCAPE, contains_pattern, encode, now
from tpo.store.errors import ConflictError, StoreError

PAIR_STATUSES = ("pending", "accepted", "rejected", "filtered")

# The columns a review may change; review rows snapshot them (plus version) before and after.
REVIEWABLE = ("status", "swapped", "edited_question", "edited_chosen", "edited_rejected", "note")

PAIR_JSON_COLUMNS = ("chosen_timestamps", "rejected_timestamps", "captions", "generator")

T = TypeVar("T")


def swap_sides(swapped: Any, chosen: T, rejected: T) -> tuple[T, T]:
    """``(chosen, rejected)`` as the other view sees them: the reviewed sides of generated
    ones, or the generated sides of reviewed ones, after a reviewer's swap (``swapped``
    true). A swap is its own inverse, so this one mapping serves both directions."""
    return (rejected, chosen) if swapped else (chosen, rejected)


class Pair(dict):
    """A ``pairs`` row (JSON columns decoded; ``last_user`` from :meth:`PairsMixin.get_pair`).

    A dict, so code that reads columns by name keeps working; the methods say what the
    columns mean together.
    """

    def effective(self) -> dict:
        """The pair as reviewed: question and sides after edits and swap, with the frame
        timestamps each (effective) side saw. Keys: question, chosen, rejected,
        chosen_timestamps, rejected_timestamps."""
        question = self.get("edited_question") or self["question"]
        generated = ((self.get("edited_chosen") or self["chosen"], self["chosen_timestamps"]),
                     (self.get("edited_rejected") or self["rejected"],
                      self["rejected_timestamps"]))
        (chosen, chosen_t), (rejected, rejected_t) = swap_sides(self.get("swapped"), *generated)
        return {"question": question, "chosen": chosen, "rejected": rejected,
                "chosen_timestamps": chosen_t, "rejected_timestamps": rejected_t}

    def generated_side(self, side: str) -> str:
        """Which generated side (``chosen`` / ``rejected``) the reviewed ``side`` is."""
        chosen, rejected = swap_sides(self.get("swapped"), "chosen", "rejected")
        return chosen if side == "chosen" else rejected

    def original_sides(self) -> tuple[str, str]:
        """The generated texts of the reviewed sides, unedited: ``(chosen, rejected)``."""
        return swap_sides(self.get("swapped"), self["chosen"], self["rejected"])


class PairsMixin:
    """Part of :class:`tpo.store.Store` (uses its ``db``, ``transaction`` and ``_one``)."""

    def has_generation(self, video_id: int, run_key: str) -> bool:
        """True when this video was already generated with these settings."""
        return bool(self.db.execute(
            "SELECT 1 FROM generations WHERE video_id = ? AND run_key = ?", [video_id, run_key]
        ).fetchone())

    def save_generation(self, video_id: int, run_key: str, pairs: list[dict[str, Any]], *,
                        params: dict, seconds: float, job_id: int | None = None,
                        replace: bool = False) -> list[int]:
        """Store one video's generated pairs and the run record in one transaction.

        With ``replace``, the video's earlier *pending or filtered* pairs of the same run key
        are deleted first (``--force``); reviewed pairs are never deleted.
        """
        stamp = now()
        with self.transaction() as db:
            if replace:
                db.execute("DELETE FROM pairs WHERE video_id = ? AND run_key = ? AND status IN "
                           "('pending', 'filtered') AND id NOT IN (SELECT pair_id FROM reviews)",
                           [video_id, run_key])
                db.execute("DELETE FROM generations WHERE video_id = ? AND run_key = ?",
                           [video_id, run_key])
            ids = []
            for pair in pairs:
                row = {**pair, "video_id": video_id, "run_key": run_key, "version": 1,
                       "created_at": stamp, "updated_at": stamp}
                ids.append(db["pairs"].insert(encode(row)).last_pk)
            db["generations"].insert(encode({
                "video_id": video_id, "run_key": run_key, "job_id": job_id,
                "n_pairs": len(pairs), "n_filtered": sum(p["status"] == "filtered" for p in pairs),
                "params": params, "seconds": seconds, "created_at": stamp}))
        return ids

    def list_pairs(self, *, status: str | None = None, kind: str | None = None,
                   video_id: int | None = None, strategy: str | None = None,
                   reason: str = "", search: str = "", order: str = "id",
                   limit: int | None = None) -> list[Pair]:
        """Pairs, JSON columns decoded; filters combine with AND.

        ``reason`` matches the filter reason, ``search`` the question and answers (generated
        or edited), both case-insensitively. ``order``: ``id`` (oldest first), ``newest``,
        ``pending-first`` (the review queue: pending, then filtered, accepted, rejected).
        """
        where, params = [], []
        for column, value in (("status", status), ("kind", kind), ("video_id", video_id),
                              ("strategy", strategy)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if reason:
            where.append(f"filter_reason LIKE ? {LIKE_ESCAPE}")
            params.append(contains_pattern(reason))
        if search:
            columns = ("question", "chosen", "rejected", "edited_question", "edited_chosen",
                       "edited_rejected")
            where.append("(" + " OR ".join(f"{c} LIKE ? {LIKE_ESCAPE}" for c in columns) + ")")
            params += [contains_pattern(search)] * len(columns)
        orders = {"id": "id", "newest": "id DESC",
                  "pending-first": "CASE status WHEN 'pending' THEN 0 WHEN 'filtered' THEN 1 "
                                   "WHEN 'accepted' THEN 2 ELSE 3 END, id"}
        if order not in orders:
            raise StoreError(f"unknown order {order!r}; expected one of {sorted(orders)}")
        rows = self.db["pairs"].rows_where(" AND ".join(where) or None, params,
                                           order_by=orders[order], limit=limit)
        return [decode_pair(r) for r in rows]

    def pair_counts(self) -> dict[str, dict[str, int]]:
        """``{kind: {status: n}}`` for every kind present, plus ``"all"``."""
        out: dict[str, dict[str, int]] = {"all": dict.fromkeys(PAIR_STATUSES, 0)}
        for row in self.db.query("SELECT kind, status, COUNT(*) AS n FROM pairs GROUP BY kind, status"):
            out.setdefault(row["kind"], dict.fromkeys(PAIR_STATUSES, 0))[row["status"]] = row["n"]
            out["all"][row["status"]] += row["n"]
        return out

    def get_pair(self, pair_id: int) -> Pair:
        """The pair, JSON columns decoded, with ``last_user``: who reviewed it last (or None)."""
        return decode_pair(self._one(
            "SELECT p.*, (SELECT user FROM reviews r WHERE r.pair_id = p.id ORDER BY r.id DESC "
            "LIMIT 1) AS last_user FROM pairs p WHERE p.id = ?", [pair_id],
            missing=f"no pair with id {pair_id} in {self.path}"))

    def update_pair(self, pair_id: int, changes: dict[str, Any], *, user: str, action: str,
                    expected_version: int, note: str | None = None) -> Pair:
        """Change reviewable columns, bump the version and append the review, atomically.

        The UPDATE is conditional on ``expected_version``: of two saves that read the same
        version, the second changes nothing and raises :class:`ConflictError`, even when
        the saves come from different processes.
        """
        unknown = set(changes) - set(REVIEWABLE)
        if unknown:
            raise StoreError(f"not reviewable: {sorted(unknown)}")
        if "status" in changes and changes["status"] not in PAIR_STATUSES:
            raise StoreError(f"unknown pair status {changes['status']!r}; expected one of {PAIR_STATUSES}")
        with self.transaction() as db:
            before = self.get_pair(pair_id)
            stamp = now()
            after = {**{k: before[k] for k in REVIEWABLE}, **changes,
                     "version": expected_version + 1}
            sets = ", ".join(f"{k} = ?" for k in changes)
            cursor = db.execute(
                f"UPDATE pairs SET {sets}, version = ?, updated_at = ? WHERE id = ? AND version = ?",
                [*changes.values(), after["version"], stamp, pair_id, expected_version])
            if cursor.rowcount != 1:
                raise ConflictError(before, expected_version)
            db["reviews"].insert(encode({
                "pair_id": pair_id, "user": user, "at": stamp, "action": action,
                "before": {**{k: before[k] for k in REVIEWABLE}, "version": before["version"]},
                "after": after, "note": note}))
        return self.get_pair(pair_id)

    def set_pair_status(self, pair_id: int, status: str, *, user: str, action: str,
                        expected_version: int | None = None, note: str | None = None) -> Pair:
        """Change a pair's status (see :meth:`update_pair`); ``None`` version: the current."""
        if expected_version is None:
            expected_version = self.get_pair(pair_id)["version"]
        return self.update_pair(pair_id, {"status": status}, user=user, action=action,
                                expected_version=expected_version, note=note)

    def reviews(self, pair_id: int) -> list[dict]:
        rows = self.db["reviews"].rows_where("pair_id = ?", [pair_id], order_by="id")
        return [{**r, "before": json.loads(r["before"] or "null"),
                 "after": json.loads(r["after"] or "null")} for r in rows]


def decode_pair(row: dict[str, Any]) -> Pair:
    pair = Pair(row)
    for column in PAIR_JSON_COLUMNS:
        if pair.get(column):
            pair[column] = json.loads(pair[column])
    return pair
