"""Store methods for stored evaluation runs and each question's answer (the ``evals`` and
``eval_items`` tables), and for the finished shards of a sharded evaluation still under way
(``eval_shards``). :mod:`tpo.evaluation.evaluate` writes evaluations;
:mod:`tpo.evaluation.eval_results` reads them; :mod:`tpo.evaluation.shard` writes, reads and
removes the shards."""

from __future__ import annotations

import json
from typing import Any, Iterable, Mapping

from tpo.store.columns import encode, now


class EvaluationsMixin:
    """Part of :class:`tpo.store.Store` (uses its ``db``, ``transaction`` and ``_one``)."""

    def add_evaluation(self, row: Mapping[str, Any], items: Iterable[Mapping[str, Any]]) -> int:
        """One ``evals`` row and its ``eval_items`` (their ``eval_id`` filled in), in one
        transaction; returns the eval id."""
        with self.transaction() as db:
            eval_id = db["evals"].insert(encode(dict(row))).last_pk
            db["eval_items"].insert_all({"eval_id": eval_id, **encode(dict(item))}
                                        for item in items)
        return eval_id

    def update_evaluation(self, eval_id: int, changes: Mapping[str, Any]) -> None:
        with self.transaction() as db:
            db["evals"].update(eval_id, encode(dict(changes)))

    def get_evaluation(self, eval_id: int) -> dict:
        """The ``evals`` row, ``summary``, ``spec`` and ``config`` decoded."""
        return decode_evaluation(self._one("SELECT * FROM evals WHERE id = ?", [eval_id],
                                           missing=f"no evaluation {eval_id}"))

    def list_evaluations(self, *, suite: str | None = None, job_id: int | None = None,
                         protocol: str | None = None, limit: int = 100) -> list[dict]:
        """Stored evaluations, newest first; ``protocol``: only those that protocol produced
        ("tpo" or "lmms-eval", the ``protocol`` column)."""
        where, args = [], []
        if suite:
            where.append("suite = ?")
            args.append(suite)
        if protocol:
            where.append("protocol = ?")
            args.append(protocol)
        if job_id is not None:
            where.append("job_id = ?")
            args.append(job_id)
        sql = "SELECT * FROM evals" + (" WHERE " + " AND ".join(where) if where else "")
        return [decode_evaluation(r)
                for r in self.db.query(sql + " ORDER BY id DESC LIMIT ?", [*args, limit])]

    def newest_evaluation_id(self) -> int | None:
        """The id of the last evaluation stored, None before the first."""
        return self.db.execute("SELECT max(id) FROM evals").fetchone()[0]

    def evaluation_items(self, eval_id: int) -> list[dict]:
        """The run's questions in order, ``options`` and ``meta`` decoded, ``correct`` a bool."""
        rows = self.db.query("SELECT * FROM eval_items WHERE eval_id = ? ORDER BY id", [eval_id])
        return [{**r, "options": json.loads(r["options"]), "meta": json.loads(r["meta"] or "{}"),
                 "correct": bool(r["correct"])} for r in rows]

    # -- shards of a sharded evaluation (tpo.evaluation.shard) -------------------------------

    def save_eval_shard(self, run_key: str, shard: int, answers: list[dict]) -> bool:
        """Shard ``shard`` of run ``run_key`` answered: its records (JSON-able, in question
        order), in one transaction. Whether it was new: a shard saved before is kept as it
        was (saving it again is harmless)."""
        with self.transaction() as db:
            cursor = db.execute(
                "INSERT INTO eval_shards (run_key, shard, answers, created_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (run_key, shard) DO NOTHING",
                [run_key, shard, json.dumps(answers), now()])
            return cursor.rowcount == 1

    def eval_shard_indexes(self, run_key: str) -> list[int]:
        """The shards of run ``run_key`` answered so far, in order."""
        return [r[0] for r in self.db.execute(
            "SELECT shard FROM eval_shards WHERE run_key = ? ORDER BY shard", [run_key])]

    def load_eval_shards(self, run_key: str) -> dict[int, list[dict]]:
        """Run ``run_key``'s answered shards: each one's records by shard index."""
        return {r[0]: json.loads(r[1]) for r in self.db.execute(
            "SELECT shard, answers FROM eval_shards WHERE run_key = ? ORDER BY shard",
            [run_key])}

    def delete_eval_shards(self, run_key: str) -> int:
        """Remove run ``run_key``'s shards (its evaluation is stored); how many there were.
        Inside a caller's transaction it is part of it (the evaluation and the removal
        commit together)."""
        with self.transaction() as db:
            return db.execute("DELETE FROM eval_shards WHERE run_key = ?", [run_key]).rowcount

    def eval_shard_runs(self) -> dict[str, int]:
        """Runs with answered shards not yet stored as an evaluation (interrupted, or under
        way): the number of shards by run key."""
        return dict(self.db.execute(
            "SELECT run_key, count(*) FROM eval_shards GROUP BY run_key ORDER BY run_key"
        ).fetchall())


def decode_evaluation(row: dict) -> dict:
    return {**row, "summary": json.loads(row["summary"] or "{}"),
            "spec": json.loads(row["spec"] or "{}"), "config": json.loads(row["config"] or "{}")}
