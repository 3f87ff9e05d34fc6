"""Generation over several processes: ``accelerate launch`` shards the videos.

The paper's 10k pairs with a 7B model need more than one GPU. :func:`launch` starts
``accelerate launch --num_processes N -m tpo.generation.shard`` (one process per GPU; on a
machine without GPUs, N processes on the CPU over gloo). Each rank loads its own copy of the
model and takes every N-th video of the request (:func:`shard`), and stores each video's pairs
in the shared SQLite store as soon as that video is done (one transaction per video, WAL mode
with a busy timeout, so ranks never block each other for long). Nothing is gathered at the
end: the store is the result. A rank that dies loses at most its video in progress, and a
rerun of the same request skips every video already generated with these settings (the run
key), so a sharded run resumes like a single one.

Each rank writes its :class:`tpo.generation.generate.GenerateReport` to
``REPORT_DIR/rank-K.json`` (or its one-line error to ``rank-K.error``); :func:`launch` merges
them. Progress lines (``PROGRESS_PREFIX``)
on stdout let the launcher show one bar for all ranks.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable

from tpo.errors import TPOError
from tpo.generation.generate import GenerateReport, GenerationRequest, choose_videos
from tpo.store import Store

PROGRESS_PREFIX = "tpo-shard-progress "  # + JSON {"rank", "fraction", "text"}


class ShardError(TPOError):
    """A sharded generation that could not run (a rank failed before its videos)."""


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
        command = [sys.executable, "-m", "accelerate.commands.launch"]
        if accelerate_config:
            command += ["--config_file", str(Path(accelerate_config).expanduser().resolve())]
        elif num_processes > 1:
            # DDP launch: NCCL on GPUs, gloo on the CPU. Never --cpu: accelerate then starts
            # one process, whatever --num_processes says.
            command.append("--multi_gpu")
        command += ["--num_processes", str(num_processes), "--num_machines", "1",
                    "--main_process_port", str(_free_port()), "-m", "tpo.generation.shard",
                    "--db", str(Path(store.path).resolve()), "--request", str(request_file),
                    "--report-dir", tmp]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // num_processes)))
        fractions: dict[int, float] = {}
        tail: list[str] = []
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, env=env, text=True, errors="replace",
                              bufsize=1) as proc:
            for line in proc.stdout:
                events = progress_events(line)
                if events:
                    for event in events:
                        fractions[event["rank"]] = event["fraction"]
                        if progress:
                            done = sum(fractions.values()) / num_processes
                            progress(done, f"rank {event['rank']}: {event['text']}")
                    continue
                if log:
                    log(line.rstrip("\n"))
                tail = (tail + [line.rstrip("\n")])[-20:]
            code = proc.wait()
        reports = [json.loads(p.read_text()) for p in sorted(Path(tmp).glob("rank-*.json"))]
        errors = [p.read_text().strip() for p in sorted(Path(tmp).glob("rank-*.error"))]
    if code != 0 and not reports:
        reason = errors[0] if errors else " | ".join(x for x in tail if x.strip())[-500:]
        raise ShardError(f"the {num_processes} generation processes failed (exit {code}): "
                         f"{reason}")
    merged = GenerateReport()
    for r in reports:
        merged.generated.update({int(k): v for k, v in r["generated"].items()})
        merged.filtered.update({int(k): v for k, v in r["filtered"].items()})
        merged.skipped.update({int(k): v for k, v in r["skipped"].items()})
        merged.failed.update({int(k): v for k, v in r["failed"].items()})
        merged.pair_ids += r["pair_ids"]
        merged.stopped = merged.stopped or r["stopped"]
    if code != 0 and len(reports) < num_processes:
        merged.stopped = merged.stopped or (
            f"{num_processes - len(reports)} of {num_processes} processes died"
            + (f": {errors[0]}" if errors else "") + "; rerun to finish their videos")
    return merged


def progress_events(line: str) -> list[dict]:
    """The progress events in one line of the ranks' shared stdout. Two ranks writing at once
    can put two events (or an event and other output) on one line; a torn one is skipped:
    progress is only for show."""
    events, decoder = [], json.JSONDecoder()
    start = line.find(PROGRESS_PREFIX)
    while start >= 0:
        try:
            event, _end = decoder.raw_decode(line, start + len(PROGRESS_PREFIX))
            if isinstance(event, dict) and {"rank", "fraction", "text"} <= set(event):
                events.append(event)
        except ValueError:
            pass
        start = line.find(PROGRESS_PREFIX, start + 1)
    return events


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    """One rank (started by :func:`launch` through ``accelerate launch``)."""
    import torch
    from accelerate import PartialState

    from tpo.generation.generate import run

    parser = argparse.ArgumentParser(prog="python -m tpo.generation.shard")
    parser.add_argument("--db", required=True)
    parser.add_argument("--request", required=True, help="a GenerationRequest as JSON")
    parser.add_argument("--report-dir", required=True)
    args = parser.parse_args(argv)
    # The process group of the ranks accelerate launched: NCCL on GPUs; without one, cpu=True
    # makes it gloo over the CPU (else each rank would think it is alone).
    state = PartialState(cpu=not torch.cuda.is_available())
    rank, world = state.process_index, state.num_processes
    request = GenerationRequest.model_validate_json(Path(args.request).read_text())
    mine = shard(request.video_ids or [], rank, world)

    def progress(fraction: float, text: str) -> None:
        event = {"rank": rank, "fraction": fraction, "text": text}
        print(PROGRESS_PREFIX + json.dumps(event), flush=True)

    store = Store(args.db)
    try:
        # Each rank on its own device (cuda:K on a GPU machine, the CPU otherwise).
        report = (run(store, request.model_copy(update={"video_ids": mine}), progress=progress,
                      device=str(state.device).split(":")[0] if state.device.type == "cpu"
                      else str(state.device)) if mine else GenerateReport())
    except TPOError as err:  # a model or writer that cannot load: the same on every rank
        # A file, not stdout: the ranks' output lines can interleave.
        Path(args.report_dir, f"rank-{rank}.error").write_text(str(err))
        print(f"rank {rank}: {err}", flush=True)
        return 1
    finally:
        store.close()
    Path(args.report_dir, f"rank-{rank}.json").write_text(json.dumps(report.as_dict()))
    progress(1.0, report.summary())
    state.wait_for_everyone()  # leave the process group together
    return 0


if __name__ == "__main__":
    sys.exit(main())
