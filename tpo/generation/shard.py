"""Generation over several processes: ``accelerate launch`` shards the videos.

The paper's 10k pairs with a 7B model need more than one GPU. :func:`launch` starts
``accelerate launch --num_processes N -m tpo.generation.shard`` (one process per GPU; on a
machine without GPUs, N processes on the CPU over gloo; the machinery is
:mod:`tpo.jobs.ranks`, shared with sharded evaluation). Each rank loads its own copy of the
model and takes every N-th video of the request (:func:`shard`), and stores each video's pairs
in the shared SQLite store as soon as that video is done (one transaction per video, WAL mode
with a busy timeout, so ranks never block each other for long). Nothing is gathered at the
end: the store is the result. A rank that dies loses at most its video in progress, and a
rerun of the same request skips every video already generated with these settings (the run
key), so a sharded run resumes like a single one.

Each rank writes its :class:`tpo.generation.generate.GenerateReport` to
``REPORT_DIR/rank-K.json`` (or its one-line error to ``rank-K.error``); :func:`launch` merges
them. Progress lines (``PROGRESS_PREFIX``) on stdout let the launcher show one bar for all
ranks. The ranks decode videos with the launching process's reader and packet-index cache
(:func:`tpo.media.video.decoding`).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Callable

from tpo.errors import TPOError
from tpo.generation.generate import GenerateReport, GenerationRequest, choose_videos
from tpo.jobs.ranks import (PROGRESS_PREFIX, ShardError, launch_ranks, progress_events,
                            rank_parser, start_rank)
from tpo.store import Store

__all__ = ["PROGRESS_PREFIX", "ShardError", "launch", "main", "progress_events", "shard"]


def shard(video_ids: list[int], rank: int, world_size: int) -> list[int]:
    """Rank ``rank``'s videos: every ``world_size``-th, so long and short videos mix."""
    return video_ids[rank::world_size]


def launch(store: Store, request: GenerationRequest, num_processes: int, *,
           progress: Callable[[float, str], None] | None = None,
           accelerate_config: str | None = None, log: Callable[[str], None] | None = None
           ) -> GenerateReport:
    """Run ``request`` over ``num_processes`` ranks under ``accelerate launch``; the merged
    report. Raises :class:`ShardError` with a rank's own message when the ranks fail."""
    if num_processes < 1:
        raise ValueError(f"num_processes must be at least 1, got {num_processes}")
    # The video list is fixed here, once, so every rank shards the same list.
    ids = [v["id"] for v in choose_videos(store, request.video_ids)]
    with tempfile.TemporaryDirectory(prefix="tpo-shard-") as tmp:
        request_file = Path(tmp) / "request.json"
        request_file.write_text(request.model_copy(update={"video_ids": ids}).model_dump_json())
        result = launch_ranks(
            "tpo.generation.shard",
            ["--db", str(Path(store.path).resolve()), "--request", str(request_file)],
            num_processes, report_dir=Path(tmp), what="generation", progress=progress,
            accelerate_config=accelerate_config, log=log)
    merged = GenerateReport()
    for r in result.reports:
        merged.generated.update({int(k): v for k, v in r["generated"].items()})
        merged.filtered.update({int(k): v for k, v in r["filtered"].items()})
        merged.skipped.update({int(k): v for k, v in r["skipped"].items()})
        merged.failed.update({int(k): v for k, v in r["failed"].items()})
        merged.pair_ids += r["pair_ids"]
        merged.stopped = merged.stopped or r["stopped"]
    if result.code != 0 and result.missing:
        merged.stopped = merged.stopped or (
            f"{result.missing} of {num_processes} processes died"
            + (f": {result.errors[0]}" if result.errors else "") + "; rerun to finish their videos")
    return merged


def main(argv: list[str] | None = None) -> int:
    """One rank (started by :func:`launch` through ``accelerate launch``)."""
    from tpo.generation.generate import run
    from tpo.media.video import decoding

    parser = rank_parser("python -m tpo.generation.shard")
    parser.add_argument("--db", required=True)
    parser.add_argument("--request", required=True, help="a GenerationRequest as JSON")
    args = parser.parse_args(argv)
    rank = start_rank(args.report_dir)
    request = GenerationRequest.model_validate_json(Path(args.request).read_text())
    mine = shard(request.video_ids or [], rank.index, rank.world)
    store = Store(args.db)
    try:
        with decoding(args.backend, args.index_dir):
            # Each rank on its own device (cuda:K on a GPU machine, the CPU otherwise).
            report = (run(store, request.model_copy(update={"video_ids": mine}),
                          progress=rank.progress, device=rank.device)
                      if mine else GenerateReport())
    except TPOError as err:  # a model or writer that cannot load: the same on every rank
        return rank.fail(err)
    finally:
        store.close()
    return rank.finish(report.as_dict(), report.summary())


if __name__ == "__main__":
    sys.exit(main())
