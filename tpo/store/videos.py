"""Store methods for the video library: the ``videos`` table, and the totals the header shows."""

from __future__ import annotations

import json
from typing import Any

from tpo.store.columns import LIKE_ESCAPE, contains_pattern, encode, now
from tpo.store.pairs import PAIR_STATUSES

VIDEO_STATUSES = ("ready", "error")


class VideosMixin:
    """Part of :class:`tpo.store.Store` (uses its ``db``, ``transaction`` and ``_one``)."""

    def add_video(self, row: dict[str, Any]) -> int:
        """Insert a video row (``added_at`` filled in); returns its id."""
        row = {**row, "added_at": row.get("added_at") or now()}
        with self.transaction() as db:
            return db["videos"].insert(encode(row)).last_pk

    def update_video(self, video_id: int, changes: dict[str, Any]) -> None:
        with self.transaction() as db:
            self.get_video(video_id)  # raises a clear error for a missing id
            db["videos"].update(video_id, encode({**changes, "updated_at": now()}))

    def get_video(self, video_id: int) -> dict:
        return decode_video(self._one("SELECT * FROM videos WHERE id = ?", [video_id],
                                      missing=f"no video with id {video_id} in {self.path}"))

    def find_video(self, *, sha256: str | None = None, path: str | None = None) -> dict | None:
        """The video with this content hash or this path, or ``None``."""
        column, value = ("sha256", sha256) if sha256 is not None else ("path", path)
        rows = list(self.db["videos"].rows_where(f"{column} = ?", [value], limit=1))
        return decode_video(rows[0]) if rows else None

    def list_videos(self, search: str = "", status: str | None = None) -> list[dict]:
        """Videos (newest last) with their pair counts per review status.

        ``search`` matches the name or path, case-insensitively; ``status`` is ready/error.
        """
        where, params = ["1 = 1"], []
        if search:
            where.append(f"(v.name LIKE ? {LIKE_ESCAPE} OR v.path LIKE ? {LIKE_ESCAPE})")
            params += [contains_pattern(search)] * 2
        if status:
            where.append("v.status = ?")
            params.append(status)
        counts = ", ".join(
            f"SUM(CASE WHEN p.status = '{s}' THEN 1 ELSE 0 END) AS pairs_{s}" for s in PAIR_STATUSES
        )
        sql = (
            f"SELECT v.*, {counts} FROM videos v LEFT JOIN pairs p ON p.video_id = v.id "
            f"WHERE {' AND '.join(where)} GROUP BY v.id ORDER BY v.id"
        )
        rows = []
        for row in self.db.query(sql, params):
            for s in PAIR_STATUSES:
                row[f"pairs_{s}"] = row[f"pairs_{s}"] or 0
            rows.append(decode_video(row))
        return rows

    def counts(self) -> dict[str, int]:
        """Library and pair totals for the header: videos, ready, errors, pairs_<status>."""
        out = {"videos": 0, "ready": 0, "errors": 0}
        for row in self.db.query("SELECT status, COUNT(*) AS n FROM videos GROUP BY status"):
            out["videos"] += row["n"]
            out["ready" if row["status"] == "ready" else "errors"] += row["n"]
        # The trigger-kept counters (PairsMixin.pair_counts), not a scan of the pairs: 6 ms at
        # 100k pairs, and every open page's header asks every 10 s.
        out.update({f"pairs_{s}": n for s, n in self.pair_counts()["all"].items()})
        return out


def decode_video(row: dict[str, Any]) -> dict[str, Any]:
    row = dict(row)
    if row.get("ground_truth"):
        row["ground_truth"] = json.loads(row["ground_truth"])
    return row
