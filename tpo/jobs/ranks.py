"""One module run on N processes under ``accelerate launch``: the launcher's side and a rank's.

Sharded generation (:mod:`tpo.generation.shard`) and sharded evaluation
(:mod:`tpo.evaluation.shard`) both start ``accelerate launch --num_processes N -m MODULE``
(one process per GPU; without a GPU, N processes on the CPU over gloo), follow the ranks'
progress lines on their shared stdout, and read back what each rank left in a report folder:
``rank-K.json`` (its report) or ``rank-K.error`` (its one-line error, a file because the
ranks' output lines can interleave). This module is that machinery, once:

* :func:`launch_ranks` (launcher) builds the command, runs it, turns progress lines into one
  ``progress(fraction, text)`` for all ranks, and returns :class:`RanksResult`;
* :func:`start_rank` (each rank) joins the process group and gives a :class:`Rank` that
  reports progress, its result and its error the way the launcher reads them.

The ranks decode videos as the launching process would: its :func:`tpo.media.video.decoding`
(reader and packet-index cache folder) goes with them on the command line.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from tpo.errors import TPOError

PROGRESS_PREFIX = "tpo-shard-progress "  # + JSON {"rank", "fraction", "text"}


class ShardError(TPOError):
    """A sharded run that could not run (its ranks failed before their work)."""


@dataclass
class RanksResult:
    """What the ranks left: the exit status, each finished rank's report (by rank) and the
    errors of those that failed."""

    code: int
    num_processes: int
    reports: list[dict] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def missing(self) -> int:
        """Ranks that wrote no report (failed or died)."""
        return self.num_processes - len(self.reports)


def free_port() -> int:
    """A TCP port free on this machine now (for the ranks' rendezvous)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_ranks(module: str, args: list[str], num_processes: int, *, report_dir: Path,
                 what: str, progress: Callable[[float, str], None] | None = None,
                 accelerate_config: str | None = None, log: Callable[[str], None] | None = None
                 ) -> RanksResult:
    """Run ``python -m module ARGS --report-dir REPORT_DIR`` on ``num_processes`` ranks.

    Raises :class:`ShardError` (``"the N <what> processes failed (exit C): <reason>"``, the
    reason a rank's own message where one wrote it) when no rank finished.
    """
    from tpo.media.video import current_decoding

    if num_processes < 1:
        raise ValueError(f"num_processes must be at least 1, got {num_processes}")
    command = [sys.executable, "-m", "accelerate.commands.launch"]
    if accelerate_config:
        command += ["--config_file", str(Path(accelerate_config).expanduser().resolve())]
    elif num_processes > 1:
        # DDP launch: NCCL on GPUs, gloo on the CPU. Never --cpu: accelerate then starts
        # one process, whatever --num_processes says.
        command.append("--multi_gpu")
    decoding = current_decoding()
    command += ["--num_processes", str(num_processes), "--num_machines", "1",
                "--main_process_port", str(free_port()), "-m", module, *args,
                "--report-dir", str(report_dir), "--backend", decoding.backend]
    if decoding.index_dir is not None:
        command += ["--index-dir", str(Path(decoding.index_dir).resolve())]
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
    result = RanksResult(
        code, num_processes,
        [json.loads(p.read_text()) for p in sorted(Path(report_dir).glob("rank-*.json"))],
        [p.read_text().strip() for p in sorted(Path(report_dir).glob("rank-*.error"))])
    if code != 0 and not result.reports:
        reason = (result.errors[0] if result.errors
                  else " | ".join(x for x in tail if x.strip())[-500:])
        raise ShardError(f"the {num_processes} {what} processes failed (exit {code}): {reason}")
    return result


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


# -- a rank's side -----------------------------------------------------------------------------


def rank_parser(prog: str) -> argparse.ArgumentParser:
    """The arguments every rank takes from :func:`launch_ranks` (add the module's own)."""
    from tpo.media.video import BACKENDS

    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("--report-dir", required=True)
    parser.add_argument("--backend", choices=BACKENDS, default="auto")
    parser.add_argument("--index-dir", default=None)
    return parser


@dataclass
class Rank:
    """This process's place among the ranks, and how it reports to the launcher."""

    index: int
    world: int
    device: str  # torch device of this rank's model: "cuda:K", or "cpu"
    report_dir: Path
    state: object  # accelerate's PartialState

    def progress(self, fraction: float, text: str) -> None:
        event = {"rank": self.index, "fraction": fraction, "text": text}
        print(PROGRESS_PREFIX + json.dumps(event), flush=True)

    def fail(self, err: BaseException) -> int:
        """Record a one-line error for the launcher; the exit status to return (1)."""
        Path(self.report_dir, f"rank-{self.index}.error").write_text(str(err))
        print(f"rank {self.index}: {err}", flush=True)
        return 1

    def finish(self, report: dict, summary: str) -> int:
        """Record this rank's report, wait for the others (leave the group together); 0."""
        Path(self.report_dir, f"rank-{self.index}.json").write_text(json.dumps(report))
        self.progress(1.0, summary)
        self.state.wait_for_everyone()
        return 0


def start_rank(report_dir: str) -> Rank:
    """Join the ranks accelerate launched: NCCL on GPUs; without one, ``cpu=True`` makes it
    gloo over the CPU (else each rank would think it is alone)."""
    import torch
    from accelerate import PartialState

    state = PartialState(cpu=not torch.cuda.is_available())
    device = "cpu" if state.device.type == "cpu" else str(state.device)
    return Rank(state.process_index, state.num_processes, device, Path(report_dir), state)
