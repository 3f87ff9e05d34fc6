"""Evaluation over several processes: ``accelerate launch`` shards the questions.

:func:`evaluate_sharded` reads the suite once (rendering the needle videos if need be), then
starts ``accelerate launch --num_processes N -m tpo.evaluation.shard`` (:mod:`tpo.jobs.ranks`,
the machinery sharded generation uses too: one process per GPU, or N processes on the CPU
over gloo). The unit of work, a *shard*, is one batch of ``batch_size`` consecutive questions
- the very batches a single process would ask - so every question is asked together with the
same others, in the same order, and the answers (and so the accuracy) equal a single
process's. The ranks take the shards still to do in turn (rank K: the K-th, K+N-th, ...),
load each model once, and write each shard's answers as soon as it is answered, to
``WORK_DIR/<run key>/shard-<b>.json`` (written to a temporary name and renamed: a file is
whole or absent).

When every shard of every model is there, the launcher stores one ``evals`` row per model
exactly as :func:`tpo.evaluation.evaluate.evaluate` does (answers in question order, needle
heatmap) and removes the shard files. When a rank dies, nothing is stored and
:class:`tpo.jobs.ranks.ShardError` says so; the same command again skips the shards that
were answered (the run key is the model, the evaluation settings and the suite's questions:
any change starts afresh).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
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


def _shard_file(folder: Path, shard: int) -> Path:
    return folder / f"shard-{shard:05d}.json"


def _done(folder: Path, n_shards: int) -> set[int]:
    return {b for b in range(n_shards) if _shard_file(folder, b).exists()}


def write_shard(folder: Path, shard: int, positions: list[int], records: list[dict]) -> None:
    """One answered shard, atomically (another rank or a crash never leaves half a file)."""
    folder.mkdir(parents=True, exist_ok=True)
    final = _shard_file(folder, shard)
    partial = final.with_name(f"{final.name}.{os.getpid()}.tmp")
    partial.write_text(json.dumps({"positions": positions, "records": records}))
    os.replace(partial, final)


def read_shards(folder: Path, n_shards: int) -> dict[int, dict]:
    """Each answered shard's records by question position."""
    records: dict[int, dict] = {}
    for b in range(n_shards):
        data = json.loads(_shard_file(folder, b).read_text())
        records.update(zip(data["positions"], data["records"]))
    return records


def evaluate_sharded(store: Store, models: Sequence[ModelRef], config: EvalConfig,
                     num_processes: int, *, cache_dir: Path, out_dir: Path,
                     work_dir: Path | None = None,
                     job_id: int | None = None, progress: Progress | None = None,
                     accelerate_config: str | None = None,
                     log: Callable[[str], None] | None = None) -> list[int]:
    """:func:`tpo.evaluation.evaluate.evaluate` with the questions shared by
    ``num_processes`` ranks; the new eval ids. Answered shards are kept in ``work_dir`` until
    every model is done (default ``out_dir/shards``), so a rerun after a crash asks only the
    rest. Raises ValueError
    before any process starts when the suite cannot be read or is empty, and
    :class:`ShardError` when ranks fail (with a rank's own message) or die."""
    say = progress or (lambda _f, _t: None)
    suite = load_suite(config, cache_dir, say)
    if not suite.items:
        raise ValueError(f"suite {suite.name} has no questions to ask")
    batches = shards(len(suite.items), config.batch_size)
    work_dir = Path(work_dir) if work_dir is not None else Path(out_dir) / "shards"
    folders = [work_dir / run_key(ref, config, suite.items) for ref in models]
    todo = {str(k): sorted(set(range(len(batches))) - _done(folder, len(batches)))
            for k, folder in enumerate(folders)}
    if any(todo.values()):
        with tempfile.TemporaryDirectory(prefix="tpo-eval-shard-") as tmp:
            request = Path(tmp) / "request.json"
            request.write_text(json.dumps({
                "models": [m.as_dict() for m in models], "config": config.model_dump(mode="json"),
                "items": [dataclasses.asdict(item) for item in suite.items],
                "folders": [str(f.resolve()) for f in folders], "todo": todo}))
            result = launch_ranks("tpo.evaluation.shard", ["--request", str(request)],
                                  num_processes, report_dir=Path(tmp), what="evaluation",
                                  progress=progress, accelerate_config=accelerate_config,
                                  log=log)
        unanswered = {ref.label: len(batches) - len(_done(folder, len(batches)))
                      for ref, folder in zip(models, folders)}
        if any(unanswered.values()):
            left = ", ".join(f"{n} of {len(batches)} for {label}"
                             for label, n in unanswered.items() if n)
            why = f": {result.errors[0]}" if result.errors else ""
            raise ShardError(f"{result.missing} of {num_processes} evaluation processes did not "
                             f"finish{why}; shards not answered: {left}. Run the same command "
                             "again to ask only those")
    ids = []
    for ref, folder in zip(models, folders):
        answered = read_shards(folder, len(batches))
        records = [answered[k] for k in range(len(suite.items))]
        eval_id = save(store, ref, suite, config, records, job_id=job_id)
        if suite.name == "needle":
            draw_needle_heatmap(store, eval_id, ref, records, out_dir, config.frames)
        ids.append(eval_id)
    for folder in folders:  # stored: a later run is a new evaluation
        shutil.rmtree(folder, ignore_errors=True)
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
    try:
        with decoding(args.backend, args.index_dir):
            for k, ref in enumerate(models):
                mine = request["todo"][str(k)][rank.index::rank.world]
                if not mine:
                    continue
                folder = Path(request["folders"][k])
                rank.progress(k / len(models), f"{ref.label}: loading")
                model = load_vlm(ref, config, device=rank.device)
                try:
                    for j, b in enumerate(mine):
                        positions = batches[b]
                        records = answer_items(model, [items[p] for p in positions], config)
                        write_shard(folder, b, positions, records)
                        answered += 1
                        rank.progress((k + (j + 1) / len(mine)) / len(models),
                                      f"{ref.label}: {j + 1}/{len(mine)} shards")
                finally:
                    model.close()
    except TPOError as err:  # a model that cannot load: the same on every rank
        return rank.fail(err)
    return rank.finish({"shards": answered}, f"{answered} shard(s) answered")


if __name__ == "__main__":
    sys.exit(main())
