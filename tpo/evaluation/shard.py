"""Evaluation over several processes: ``accelerate launch`` shards the questions.

:func:`evaluate_sharded` reads the suite once (rendering the needle videos if need be), then
starts ``accelerate launch --num_processes N -m tpo.evaluation.shard`` (:mod:`tpo.jobs.ranks`,
the machinery sharded generation uses too: one process per GPU, or N processes on the CPU
over gloo). The unit of work, a *shard*, is one batch of ``batch_size`` consecutive questions
- the very batches a single process would ask - so every question is asked together with the
same others, in the same order, and the answers (and so the accuracy) equal a single
process's. The ranks take the shards still to do in turn (rank K: the K-th, K+N-th, ...),
load each model once, and write each shard's answers to the store as soon as it is answered
(:meth:`tpo.store.Store.save_eval_shard`, one ``eval_shards`` row per run key and shard, one
transaction each: a shard is stored whole or not at all). Each rank is a process of its own
and opens its own :class:`~tpo.store.Store` on the launcher's database file (WAL and
``BEGIN IMMEDIATE``: the ranks' writes take turns).

When every shard of every model is in, the launcher stores one ``evals`` row per model
exactly as :func:`tpo.evaluation.evaluate.evaluate` does (answers in question order, needle
heatmap), and removes the run's shard rows in the same transaction. When a rank dies,
nothing is stored and :class:`tpo.jobs.ranks.ShardError` says so; the same command again
asks only the shards not in the store (the run key is the model, the evaluation settings and
the suite's questions: any change starts afresh, and the shards of an abandoned run stay in
the store, :meth:`tpo.store.Store.eval_shard_runs` lists them).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Callable, Sequence

from tpo.errors import TPOError
from tpo.evaluation.evaluate import (EvalConfig, answer_items, config_from_json,
                                     draw_needle_heatmap, load_suite, load_vlm, save)
from tpo.evaluation.mcq import MCQItem
from tpo.jobs.ranks import ShardError, launch_ranks, rank_parser, start_rank
from tpo.models.modelref import ModelRef
from tpo.store import Store

__all__ = ["ShardError", "evaluate_sharded", "main", "run_key", "shards"]

Progress = Callable[[float, str], None]


def shards(n_items: int, batch_size: int) -> list[list[int]]:
    """The questions' positions, cut into the batches one process would ask."""
    return [list(range(s, min(s + batch_size, n_items))) for s in range(0, n_items, batch_size)]


def run_key(ref: ModelRef, config: EvalConfig, items: Sequence[MCQItem]) -> str:
    """What makes two runs' shards interchangeable: the model, the settings that change an
    answer, and the questions (their text, options and video); 16 hex digits."""
    setting = config.model_dump(mode="json", exclude={"limit"})
    questions = [dataclasses.asdict(item) for item in items]
    blob = json.dumps([ref.spec(), setting, questions], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def answered_positions(store: Store, key: str, batches: list[list[int]]) -> dict[int, dict]:
    """Run ``key``'s stored records by question position (of the shards answered so far)."""
    records: dict[int, dict] = {}
    for b, answers in store.load_eval_shards(key).items():
        records.update(zip(batches[b], answers))
    return records


def evaluate_sharded(store: Store, models: Sequence[ModelRef], config: EvalConfig,
                     num_processes: int, *, cache_dir: Path, out_dir: Path,
                     job_id: int | None = None, progress: Progress | None = None,
                     accelerate_config: str | None = None,
                     log: Callable[[str], None] | None = None) -> list[int]:
    """:func:`tpo.evaluation.evaluate.evaluate` with the questions shared by
    ``num_processes`` ranks; the new eval ids. Answered shards are kept in the store until
    every model is done, so a rerun after a crash asks only the rest. Raises ValueError
    before any process starts when the suite cannot be read or is empty, and
    :class:`ShardError` when ranks fail (with a rank's own message) or die."""
    say = progress or (lambda _f, _t: None)
    suite = load_suite(config, cache_dir, say)
    if not suite.items:
        raise ValueError(f"suite {suite.name} has no questions to ask")
    batches = shards(len(suite.items), config.batch_size)
    keys = [run_key(ref, config, suite.items) for ref in models]
    todo: dict[str, list[int]] = {}
    for k, key in enumerate(keys):  # a model named twice is asked once (one run key)
        todo[str(k)] = ([] if key in keys[:k] else
                        sorted(set(range(len(batches))) - set(store.eval_shard_indexes(key))))
    if any(todo.values()):
        with tempfile.TemporaryDirectory(prefix="tpo-eval-shard-") as tmp:
            request = Path(tmp) / "request.json"
            request.write_text(json.dumps({
                "models": [m.as_dict() for m in models], "config": config.model_dump(mode="json"),
                "items": [dataclasses.asdict(item) for item in suite.items],
                "db": str(store.path.resolve()), "busy_timeout_s": store.busy_timeout_s,
                "keys": keys, "todo": todo}))
            result = launch_ranks("tpo.evaluation.shard", ["--request", str(request)],
                                  num_processes, report_dir=Path(tmp), what="evaluation",
                                  progress=progress, accelerate_config=accelerate_config,
                                  log=log)
        unanswered = {ref.label: len(batches) - len(store.eval_shard_indexes(key))
                      for ref, key in zip(models, keys)}
        if any(unanswered.values()):
            left = ", ".join(f"{n} of {len(batches)} for {label}"
                             for label, n in unanswered.items() if n)
            why = f": {result.errors[0]}" if result.errors else ""
            raise ShardError(f"{result.missing} of {num_processes} evaluation processes did not "
                             f"finish{why}; shards not answered: {left}. Run the same command "
                             "again to ask only those")
    # Each run key's records in question order (a model named twice shares them).
    records = {}
    for key in set(keys):
        answered = answered_positions(store, key, batches)
        records[key] = [answered[p] for p in range(len(suite.items))]
    ids = []
    # One transaction: every model's evaluation is stored and the shards removed, or none.
    with store.transaction():
        for ref, key in zip(models, keys):
            ids.append(save(store, ref, suite, config, records[key], job_id=job_id))
        for key in records:  # stored: a later run is a new evaluation
            store.delete_eval_shards(key)
    if suite.name == "needle":
        for eval_id, ref, key in zip(ids, models, keys):
            draw_needle_heatmap(store, eval_id, ref, records[key], out_dir, config.frames)
    say(1.0, f"{len(ids)} evaluation(s) stored: " + ", ".join(f"#{i}" for i in ids))
    return ids


def main(argv: list[str] | None = None) -> int:
    """One rank (started by :func:`evaluate_sharded` through ``accelerate launch``)."""
    from tpo.media.video import decoding

    parser = rank_parser("python -m tpo.evaluation.shard")
    parser.add_argument("--request", required=True, help="models, config, questions as JSON")
    args = parser.parse_args(argv)
    rank = start_rank(args.report_dir)
    request = json.loads(Path(args.request).read_text())
    config = config_from_json(request["config"])
    items = [MCQItem(**item) for item in request["items"]]
    batches = shards(len(items), config.batch_size)
    models = [ModelRef(**m) for m in request["models"]]
    answered = 0
    store = None
    try:
        # A store of this process's own on the launcher's file (a connection is per process).
        store = Store(request["db"], busy_timeout_s=request["busy_timeout_s"])
        with decoding(args.backend, args.index_dir):
            for k, ref in enumerate(models):
                mine = request["todo"][str(k)][rank.index::rank.world]
                if not mine:
                    continue
                rank.progress(k / len(models), f"{ref.label}: loading")
                model = load_vlm(ref, config, device=rank.device)
                try:
                    for j, b in enumerate(mine):
                        positions = batches[b]
                        records = answer_items(model, [items[p] for p in positions], config)
                        store.save_eval_shard(request["keys"][k], b, records)
                        answered += 1
                        rank.progress((k + (j + 1) / len(mine)) / len(models),
                                      f"{ref.label}: {j + 1}/{len(mine)} shards")
                finally:
                    model.close()
    except TPOError as err:  # a model that cannot load (the same on every rank), a store fault
        return rank.fail(err)
    finally:
        if store is not None:
            store.close()
    return rank.finish({"shards": answered}, f"{answered} shard(s) answered")


if __name__ == "__main__":
    sys.exit(main())
