"""Store methods for work shared by a team of reviewers: the ``assignments`` table (which
reviewer reviews which pair; a pair reviewed with overlap has a row per reviewer), the
reviewers' decisions read together (agreement, progress), and the review ``guidelines``
(Markdown, every saved text a new version). :mod:`tpo.curation.teams` is the logic on top.
"""

from __future__ import annotations

from typing import Any, Iterable

from tpo.store.columns import now


class TeamsMixin:
    """Part of :class:`tpo.store.Store` (uses its ``db`` and ``transaction``)."""

    # -- assignments ----------------------------------------------------------------------

    def unassigned_pairs(self, *, status: str | None = "pending") -> list[tuple[int, int, str]]:
        """``(id, video_id, kind)`` of the pairs (with ``status``; None: any) assigned to no
        one, by id."""
        where = "id NOT IN (SELECT pair_id FROM assignments)"
        params: list[Any] = []
        if status is not None:
            where = "status = ? AND " + where
            params.append(status)
        return [tuple(r) for r in self.db.execute(
            f"SELECT id, video_id, kind FROM pairs WHERE {where} ORDER BY id", params)]

    def add_assignments(self, rows: Iterable[tuple[int, str, bool]], *, user: str) -> int:
        """Assign pairs: ``(pair_id, reviewer, overlap)`` rows, in one transaction; a pair
        already assigned to that reviewer is left as it is. Returns the rows added."""
        stamp = now()
        with self.transaction() as db:
            cursor = db.conn.executemany(
                "INSERT OR IGNORE INTO assignments (pair_id, reviewer, overlap, assigned_by, "
                "assigned_at) VALUES (?, ?, ?, ?, ?)",
                [(pair_id, reviewer, int(bool(overlap)), user, stamp)
                 for pair_id, reviewer, overlap in rows])
            return cursor.rowcount

    def remove_assignments(self, reviewers: Iterable[str] | None = None) -> int:
        """Take back the assigned pairs that their reviewer has not decided yet (of these
        ``reviewers``; None: everyone's); returns how many rows went. Decided ones stay, so
        agreement and progress keep their history."""
        names = list(reviewers) if reviewers is not None else None
        where = ("NOT EXISTS (SELECT 1 FROM decisions d WHERE d.pair_id = assignments.pair_id "
                 "AND d.user = assignments.reviewer)")
        params: list[Any] = []
        if names is not None:
            where += f" AND reviewer IN ({', '.join('?' for _ in names)})"
            params += names
        with self.transaction() as db:
            return db.execute(f"DELETE FROM assignments WHERE {where}", params).rowcount

    def assignment_counts(self) -> dict[str, dict[str, int]]:
        """``{reviewer: {"assigned", "done", "overlap"}}``: pairs assigned to each reviewer,
        how many of them they have decided, and how many are overlap pairs."""
        rows = self.db.execute(
            "SELECT a.reviewer, COUNT(*), COUNT(d.pair_id), SUM(a.overlap) FROM assignments a "
            "LEFT JOIN decisions d ON d.pair_id = a.pair_id AND d.user = a.reviewer "
            "GROUP BY a.reviewer ORDER BY a.reviewer").fetchall()
        return {r: {"assigned": n, "done": done, "overlap": overlap or 0}
                for r, n, done, overlap in rows}

    def has_assignments(self) -> bool:
        """Whether any pair is assigned to anyone (the project works with shares)."""
        return bool(self.db.execute("SELECT 1 FROM assignments LIMIT 1").fetchone())

    def assignees(self, pair_id: int) -> list[str]:
        """The reviewers the pair is assigned to, by name."""
        return [r[0] for r in self.db.execute(
            "SELECT reviewer FROM assignments WHERE pair_id = ? ORDER BY reviewer", [pair_id])]

    # -- decisions read together ------------------------------------------------------------

    def shared_decisions(self) -> list[dict]:
        """The decisions on pairs that two or more reviewers decided, each with
        ``assigned`` (1: the pair is assigned to this reviewer) and ``has_assignments``
        (1: the pair is assigned to anyone), by pair then user."""
        return list(self.db.query(
            "SELECT d.pair_id, d.user, d.decision, d.at, "
            "EXISTS (SELECT 1 FROM assignments a WHERE a.pair_id = d.pair_id "
            "AND a.reviewer = d.user) AS assigned, "
            "EXISTS (SELECT 1 FROM assignments a WHERE a.pair_id = d.pair_id) AS has_assignments "
            "FROM decisions d WHERE d.pair_id IN "
            "(SELECT pair_id FROM decisions GROUP BY pair_id HAVING COUNT(*) >= 2) "
            "ORDER BY d.pair_id, d.user"))

    def agreed_pair_ids(self, status: str, k: int) -> list[int]:
        """Ids of the pairs with ``status`` that at least ``k`` reviewers decided so (their
        latest decision equals it), by id."""
        return [r[0] for r in self.db.execute(
            "SELECT d.pair_id FROM decisions d JOIN pairs p ON p.id = d.pair_id "
            "WHERE p.status = ? AND d.decision = p.status GROUP BY d.pair_id "
            "HAVING COUNT(*) >= ? ORDER BY d.pair_id", [status, int(k)])]

    def review_times(self) -> dict[str, list[str]]:
        """``{user: [at, ...]}``: when each user's review actions were made, oldest first."""
        out: dict[str, list[str]] = {}
        for user, at in self.db.execute("SELECT user, at FROM reviews ORDER BY user, id"):
            out.setdefault(user, []).append(at)
        return out

    # -- guidelines -------------------------------------------------------------------------

    def set_guidelines(self, text: str, *, user: str) -> int:
        """Save the review guidelines (Markdown) as a new version; returns its number."""
        with self.transaction() as db:
            version = db.execute(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM guidelines").fetchone()[0]
            db.execute("INSERT INTO guidelines (version, text, user, created_at) "
                       "VALUES (?, ?, ?, ?)", [version, text, user, now()])
        return version

    def guidelines(self, version: int | None = None) -> dict | None:
        """The guidelines (``text``, ``version``, ``user``, ``created_at``): the newest, or
        that ``version``; None when there are none."""
        rows = list(self.db.query(
            "SELECT version, text, user, created_at FROM guidelines"
            + (" WHERE version = ?" if version is not None else "")
            + " ORDER BY version DESC LIMIT 1", [version] if version is not None else []))
        return rows[0] if rows else None

    def guideline_versions(self) -> list[dict]:
        """Every saved version (``version``, ``user``, ``created_at``), newest first."""
        return list(self.db.query(
            "SELECT version, user, created_at FROM guidelines ORDER BY version DESC"))
