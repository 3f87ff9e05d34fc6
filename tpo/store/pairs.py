"""Store methods for preference pairs, their generation runs and their review trail (the
``pairs``, ``generations`` and ``reviews`` tables), and :class:`Pair`, the row they return.

A reviewer never changes a pair's generated texts: edits, a swap of the sides, a note and the
status sit beside them. :meth:`Pair.effective` is the pair as reviewed; :func:`swap_sides` is
the one place that knows which generated side a reviewed side is.

**Queues** (:meth:`PairsMixin.queue_ids`, :meth:`~PairsMixin.queue_count`) are computed in
SQL: ids only, in queue order, each filter served by an index, search by the full-text index
(``pairs_fts``, FTS5 trigram: a substring of 3+ characters, case-insensitively; shorter
searches use LIKE), so nothing decodes a row it does not show. **Decisions**: every accept
or reject (and a status change to accepted/rejected) records the reviewer's own latest
decision on the pair (``decisions``); a reset or restore by them withdraws it, an undo
recomputes it from their review rows that are left. A reviewer's share of the work, the
agreement between reviewers and ``export --min-agree`` read these.
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

DECISIONS = ("accepted", "rejected")  # the statuses that are a reviewer's decision
# Review actions that decide even when the status was already that one (a second reviewer
# agreeing with the first).
DECIDING_ACTIONS = ("accept", "reject", "bulk-accept", "bulk-reject")
SEARCH_COLUMNS = ("question", "chosen", "rejected", "edited_question", "edited_chosen",
                  "edited_rejected")
FTS_MIN_CHARS = 3  # the trigram index matches searches of 3 characters or more
QUEUE_ORDERS = {"id": "id", "newest": "id DESC",
                "pending-first": "CASE status WHEN 'pending' THEN 0 WHEN 'filtered' THEN 1 "
                                 "WHEN 'accepted' THEN 2 ELSE 3 END, id"}
# A filter reason's category: the text before its first colon ("truncated", "judge", ...).
REASON_KEY = ("CASE WHEN instr(filter_reason, ':') > 0 THEN "
              "trim(substr(filter_reason, 1, instr(filter_reason, ':') - 1)) "
              "WHEN trim(coalesce(filter_reason, '')) = '' THEN 'other' "
              "ELSE trim(filter_reason) END")

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
                doomed = ("SELECT id FROM pairs WHERE video_id = ? AND run_key = ? AND status IN "
                          "('pending', 'filtered') AND id NOT IN (SELECT pair_id FROM reviews)")
                # Their assignments go with them (nobody has reviewed them yet).
                db.execute(f"DELETE FROM assignments WHERE pair_id IN ({doomed})",
                           [video_id, run_key])
                db.execute(f"DELETE FROM pairs WHERE id IN ({doomed})", [video_id, run_key])
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
        Decodes every row it returns: a queue shows ids from :meth:`queue_ids` instead.
        """
        where, params = self._pair_filters(status=status, kind=kind, video_id=video_id,
                                           strategy=strategy, reason=reason, search=search)
        rows = self.db["pairs"].rows_where(" AND ".join(where) or None, params,
                                           order_by=_order(order), limit=limit)
        return [decode_pair(r) for r in rows]

    # -- queues: ids and counts in SQL -------------------------------------------------

    def queue_ids(self, *, status: str | None = None, kind: str | None = None,
                  video_id: int | None = None, search: str = "", reviewer: str | None = None,
                  limit: int | None = None, after: int | None = None,
                  strategy: str | None = None, reason: str = "",
                  order: str = "id") -> list[int]:
        """Ids of the pairs in the queue, in queue order (``order`` as :meth:`list_pairs`;
        default id ascending); filters as :meth:`list_pairs`, combined with AND.

        ``reviewer``: only that reviewer's share not yet decided by them - the pairs
        assigned to them (:mod:`tpo.curation.teams`) that they have neither accepted nor
        rejected (whatever the pair's status: with overlap another reviewer may have decided
        it); ignored while no pair is assigned to anyone. ``after``: keyset paging, the ids
        after this one in queue order (it need not be in the queue any more); ``limit``: at
        most this many.
        """
        where, params = self._pair_filters(status=status, kind=kind, video_id=video_id,
                                           strategy=strategy, reason=reason, search=search,
                                           reviewer=reviewer)
        if after is not None:
            clause, values = _after(order, after)
            where.append(clause)
            params += values
        sql = ("SELECT id FROM pairs" + (" WHERE " + " AND ".join(where) if where else "")
               + f" ORDER BY {_order(order)}" + (" LIMIT ?" if limit is not None else ""))
        if limit is not None:
            params.append(int(limit))
        return [row[0] for row in self.db.execute(sql, params).fetchall()]

    def queue_versions(self, *, status: str | None = None, kind: str | None = None,
                       video_id: int | None = None, search: str = "", reviewer: str | None = None,
                       strategy: str | None = None, reason: str = "",
                       order: str = "id") -> list[tuple[int, int]]:
        """(id, version) of every pair of the queue, in queue order (filters as
        :meth:`queue_ids`): what a reviewer's view loads - the ids to step through and the
        versions they saw, for bulk actions that skip pairs changed since - decoding nothing."""
        where, params = self._pair_filters(status=status, kind=kind, video_id=video_id,
                                           strategy=strategy, reason=reason, search=search,
                                           reviewer=reviewer)
        sql = ("SELECT id, version FROM pairs" + (" WHERE " + " AND ".join(where) if where else "")
               + f" ORDER BY {_order(order)}")
        return [(row[0], row[1]) for row in self.db.execute(sql, params).fetchall()]

    def queue_count(self, *, status: str | None = None, kind: str | None = None,
                    video_id: int | None = None, search: str = "", reviewer: str | None = None,
                    strategy: str | None = None, reason: str = "") -> int:
        """How many pairs :meth:`queue_ids` with these filters gives (an aggregate query)."""
        where, params = self._pair_filters(status=status, kind=kind, video_id=video_id,
                                           strategy=strategy, reason=reason, search=search,
                                           reviewer=reviewer)
        sql = "SELECT COUNT(*) FROM pairs" + (" WHERE " + " AND ".join(where) if where else "")
        return self.db.execute(sql, params).fetchone()[0]

    def queue_position(self, pair_id: int, **filters: Any) -> int:
        """How many pairs of the queue (``filters`` as :meth:`queue_count`, id order) come
        before ``pair_id``: its 0-based position, for "12 of 34"."""
        where, params = self._pair_filters(**filters)
        where.append("id < ?")
        return self.db.execute("SELECT COUNT(*) FROM pairs WHERE " + " AND ".join(where),
                               [*params, pair_id]).fetchone()[0]

    def filtered_reasons(self) -> dict[str, int]:
        """Filtered pairs per reason category (the filter reason up to its first colon:
        ``truncated``, ``near-identical``, ``judge``...; ``other`` when none), most first."""
        rows = self.db.execute(
            f"SELECT {REASON_KEY} AS reason, COUNT(*) FROM pairs WHERE status = 'filtered' "
            "GROUP BY reason ORDER BY COUNT(*) DESC, reason").fetchall()
        return {reason: n for reason, n in rows}

    def restore_filtered(self, *, user: str, reason: str | None = None) -> int:
        """Put every filtered pair (of one reason category, see :meth:`filtered_reasons`)
        back to pending in one transaction, each with its own ``bulk-restore`` review row
        (before/after snapshots, as :meth:`update_pair` writes); returns how many."""
        where = "status = 'filtered'" + (f" AND {REASON_KEY} = ?" if reason else "")
        params = [reason] if reason else []
        before = _snapshot_sql("status", "version")
        after = _snapshot_sql("'pending'", "version + 1")
        stamp = now()
        with self.transaction() as db:
            db.execute(
                "INSERT INTO reviews (pair_id, user, at, action, before, after) "
                f"SELECT id, ?, ?, 'bulk-restore', {before}, {after} FROM pairs WHERE {where} "
                "ORDER BY id", [user, stamp, *params])
            cursor = db.execute(
                "UPDATE pairs SET status = 'pending', version = version + 1, updated_at = ? "
                f"WHERE {where}", [stamp, *params])
        return cursor.rowcount

    def _pair_filters(self, *, status: str | None = None, kind: str | None = None,
                      video_id: int | None = None, strategy: str | None = None,
                      reason: str = "", search: str = "", reviewer: str | None = None
                      ) -> tuple[list[str], list[Any]]:
        """WHERE clauses (joined with AND) and their parameters for the queue filters."""
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
            if len(search.strip()) >= FTS_MIN_CHARS and self._has_fts():
                # A quoted FTS5 string: the trigram tokenizer matches it as a substring.
                where.append("id IN (SELECT rowid FROM pairs_fts WHERE pairs_fts MATCH ?)")
                params.append('"' + search.replace('"', '""') + '"')
            else:
                where.append("(" + " OR ".join(f"{c} LIKE ? {LIKE_ESCAPE}"
                                               for c in SEARCH_COLUMNS) + ")")
                params += [contains_pattern(search)] * len(SEARCH_COLUMNS)
        if reviewer is not None and self.has_assignments():
            where.append("id IN (SELECT pair_id FROM assignments WHERE reviewer = ?) AND id NOT "
                         "IN (SELECT pair_id FROM decisions WHERE user = ?)")
            params += [reviewer, reviewer]
        return where, params

    def _has_fts(self) -> bool:
        """Whether the full-text index exists (SQLite without FTS5 searches with LIKE)."""
        if getattr(self, "_fts", None) is None:
            self._fts = bool(self.db.execute(
                "SELECT 1 FROM sqlite_master WHERE name = 'pairs_fts'").fetchone())
        return self._fts

    def pair_counts(self) -> dict[str, dict[str, int]]:
        """``{kind: {status: n}}`` for every kind present, plus ``"all"``."""
        out: dict[str, dict[str, int]] = {"all": dict.fromkeys(PAIR_STATUSES, 0)}
        # pair_counts is kept by triggers on pairs (schema.pair_counters): no scan of the pairs
        for kind, status, n in self.db.execute(
                "SELECT kind, status, n FROM pair_counts WHERE n > 0 ORDER BY kind, status"):
            out.setdefault(kind, dict.fromkeys(PAIR_STATUSES, 0))[status] = n
            out["all"][status] += n
        return out

    def get_pair(self, pair_id: int) -> Pair:
        """The pair, JSON columns decoded, with ``last_user``: who reviewed it last (or None)."""
        return decode_pair(self._one(
            "SELECT p.*, (SELECT user FROM reviews r WHERE r.pair_id = p.id ORDER BY r.id DESC "
            "LIMIT 1) AS last_user FROM pairs p WHERE p.id = ?", [pair_id],
            missing=f"no pair with id {pair_id} in {self.path}"))

    def update_pair(self, pair_id: int, changes: dict[str, Any], *, user: str, action: str,
                    expected_version: int, note: str | None = None,
                    undoes: int | None = None) -> Pair:
        """Change reviewable columns, bump the version and append the review, atomically.

        The UPDATE is conditional on ``expected_version``: of two saves that read the same
        version, the second changes nothing and raises :class:`ConflictError`, even when
        the saves come from different processes. The reviewer's decision on the pair
        (``decisions``) follows; ``undoes``: the review row an ``undo`` reverts.
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
            sets = "".join(f"{k} = ?, " for k in changes)
            cursor = db.execute(
                f"UPDATE pairs SET {sets}version = ?, updated_at = ? WHERE id = ? AND version = ?",
                [*changes.values(), after["version"], stamp, pair_id, expected_version])
            if cursor.rowcount != 1:
                raise ConflictError(before, expected_version)
            review_id = db["reviews"].insert(encode({
                "pair_id": pair_id, "user": user, "at": stamp, "action": action,
                "before": {**{k: before[k] for k in REVIEWABLE}, "version": before["version"]},
                "after": after, "note": note, "undoes": undoes})).last_pk
            if action == "undo":
                self._refresh_decision(pair_id, user)
            else:
                effect = decision_effect(action, before["status"], after["status"])
                if effect is not None:
                    self._set_decision(pair_id, user, effect, review_id, stamp)
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
        return [_decode_review(r) for r in rows]

    # -- decisions and undo ---------------------------------------------------------------

    def last_undoable(self, pair_id: int, user: str) -> dict | None:
        """``user``'s latest review row of the pair that is neither an undo nor undone yet
        (decoded), or None."""
        rows = list(self.db.query(
            "SELECT * FROM reviews WHERE pair_id = ? AND user = ? AND action != 'undo' AND id "
            "NOT IN (SELECT undoes FROM reviews WHERE pair_id = ? AND undoes IS NOT NULL) "
            "ORDER BY id DESC LIMIT 1", [pair_id, user, pair_id]))
        return _decode_review(rows[0]) if rows else None

    def last_undoable_pair(self, user: str) -> int | None:
        """The pair of ``user``'s latest action that is neither an undo nor undone, or None."""
        row = self.db.execute(
            "SELECT pair_id FROM reviews WHERE user = ? AND action != 'undo' AND id NOT IN "
            "(SELECT undoes FROM reviews WHERE user = ? AND undoes IS NOT NULL) "
            "ORDER BY id DESC LIMIT 1", [user, user]).fetchone()
        return row[0] if row else None

    def decisions(self, pair_id: int | None = None) -> list[dict]:
        """Reviewers' decisions (``pair_id``, ``user``, ``decision``, ``review_id``, ``at``),
        of one pair or of all, by pair then user."""
        where = "pair_id = ?" if pair_id is not None else None
        return list(self.db["decisions"].rows_where(
            where, [pair_id] if pair_id is not None else [], order_by="pair_id, user"))

    def _set_decision(self, pair_id: int, user: str, decision: str | None,
                      review_id: int | None, stamp: str | None) -> None:
        if not decision:  # None or "": no decision (any more)
            self.db.execute("DELETE FROM decisions WHERE pair_id = ? AND user = ?",
                            [pair_id, user])
            return
        self.db.execute(
            "INSERT INTO decisions (pair_id, user, decision, review_id, at) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (pair_id, user) DO UPDATE SET decision = excluded.decision, "
            "review_id = excluded.review_id, at = excluded.at",
            [pair_id, user, decision, review_id, stamp])

    def _refresh_decision(self, pair_id: int, user: str) -> None:
        """Rebuild ``user``'s decision on the pair from their review rows that are not
        undone (after an undo)."""
        rows = list(self.db.query(
            "SELECT id, action, before, after, at FROM reviews WHERE pair_id = ? AND user = ? "
            "AND action != 'undo' AND id NOT IN (SELECT undoes FROM reviews WHERE pair_id = ? "
            "AND undoes IS NOT NULL) ORDER BY id", [pair_id, user, pair_id]))
        decision, review_id, stamp = None, None, None
        for row in rows:
            before, after = json.loads(row["before"] or "{}"), json.loads(row["after"] or "{}")
            effect = decision_effect(row["action"], before.get("status"), after.get("status"))
            if effect is not None:
                decision, review_id, stamp = effect, row["id"], row["at"]
        self._set_decision(pair_id, user, decision or None, review_id, stamp)


def decision_effect(action: str, before: str | None, after: str | None) -> str | None:
    """What a review does to its reviewer's decision on the pair: the decision it makes
    (``accepted`` / ``rejected``), ``""`` when it withdraws it (a reset, a restore: the
    status went back to pending or filtered), or None when it leaves it (swap, edit, note)."""
    if after in DECISIONS and (action in DECIDING_ACTIONS or after != before):
        return after
    if after != before:
        return ""
    return None


def _decode_review(row: dict) -> dict:
    return {**row, "before": json.loads(row["before"] or "null"),
            "after": json.loads(row["after"] or "null")}


def _snapshot_sql(status: str, version: str) -> str:
    """SQL building a review row's before/after JSON (the :data:`REVIEWABLE` columns and the
    version, as :meth:`PairsMixin.update_pair` writes it) from a pairs row, with these SQL
    expressions for the status and the version."""
    values = ", ".join(f"'{c}', {status if c == 'status' else c}" for c in REVIEWABLE)
    return f"json_object({values}, 'version', {version})"


def _order(order: str) -> str:
    if order not in QUEUE_ORDERS:
        raise StoreError(f"unknown order {order!r}; expected one of {sorted(QUEUE_ORDERS)}")
    return QUEUE_ORDERS[order]


def _after(order: str, after: int) -> tuple[str, list[Any]]:
    """The keyset clause: rows after pair ``after`` in ``order``."""
    _order(order)
    if order == "id":
        return "id > ?", [after]
    if order == "newest":
        return "id < ?", [after]
    rank = QUEUE_ORDERS["pending-first"].split(", id")[0]
    # Rank of the pair `after` (a pair deleted since ranks first: the queue restarts).
    theirs = f"(SELECT {rank} FROM pairs WHERE id = ?)"
    return (f"({rank} > coalesce({theirs}, -1) OR ({rank} = {theirs} AND id > ?))",
            [after, after, after])


def decode_pair(row: dict[str, Any]) -> Pair:
    pair = Pair(row)
    for column in PAIR_JSON_COLUMNS:
        if pair.get(column):
            pair[column] = json.loads(pair[column])
    return pair
