"""The ``train`` job kind of :mod:`tpo.jobs`: :func:`run_job` trains in the job's worker
process, or launches ``accelerate launch ... -m tpo.training.train`` children whose rank 0 reports to
the job; :func:`job_params` builds its parameters (the Train tab and ``tpo train`` call it).

A GPU kind: the job waits queued for its turn on the GPU (:mod:`tpo.jobs.scheduler`, one
run at a time by default). It exports the store's accepted pairs into the run's folder when
asked to, reports metrics and progress to the store, stops on cancel, turns a failed launch
into a clear error, and registers the trained model in the store's ``models`` table.

The app process imports this module for :func:`job_params`: like :mod:`tpo.training.train`, it loads
no ML library at import time (docs/architecture.md). A job's parameters carry the run's
*options* (``{field: value}``, see :mod:`tpo.training.config`); the training process builds
the :class:`~tpo.training.train.TrainConfig` (a TRL ``DPOConfig``) from them.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import re
import shlex
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Mapping

from tpo.jobs import job_kind
from tpo.store import Store, now
from tpo.training.config import check_options, cli_args
from tpo.training.train import (ARGS_FILE, ERROR_PREFIX, OOM, RESULT_FILE, callback_classes,
                                log_handler, logger, make_config, refuse_earlier_run, resolve,
                                train)
from tpo.training.train_data import NO_DATA, TrainError, check_data

__all__ = ["LAUNCHERS", "job_params", "register_model", "run_job"]

LAUNCHERS = ("python", "accelerate")  # in this process / `accelerate launch` child processes
LOG_TAIL_LINES = 5  # last lines of a failed launch quoted when no exception line shows
# tpo.curation.export's FRAME_SOURCES and DEFAULT_FRAMES, repeated here: importing tpo.curation.export would
# load datasets into the app process (a test checks that they agree).
FRAME_SOURCES = ("whole", "chosen", "rejected", "union")
DEFAULT_FRAMES = 64


def job_params(config: Mapping[str, Any] | Any, *, launcher: str = "python", num_processes: int = 1,
               accelerate_config: str | None = None, export_from_store: bool = False,
               frames: int = DEFAULT_FRAMES, frames_from: str = "whole") -> dict:
    """The JSON parameters of a ``train`` background job (see :func:`run_job`).

    ``config``: the run's options (``{field: value}``, checked here without torch by
    :func:`tpo.training.config.check_options`: ValueError) or a built TrainConfig.
    ``frames`` / ``frames_from`` shape the export of the store's pairs (see
    :class:`tpo.curation.export.ExportConfig`): by default the paper's records, ``frames`` frames
    uniform over the whole video (at most one per second), the same for both answers.
    """
    if launcher not in LAUNCHERS:
        raise ValueError(f"launcher must be one of {', '.join(LAUNCHERS)}, got {launcher!r}")
    if num_processes < 1:
        raise ValueError(f"num_processes must be >= 1, got {num_processes}")
    if isinstance(frames, bool) or not isinstance(frames, int) or frames < 1:
        raise ValueError(f"frames must be a positive number of frames per pair, got {frames!r}")
    if frames_from not in FRAME_SOURCES:
        raise ValueError(f"frames_from must be one of {', '.join(FRAME_SOURCES)}, "
                         f"got {frames_from!r}")
    options = check_options(config if isinstance(config, Mapping) else config.options)
    return {"config": json.loads(json.dumps(options)), "launcher": launcher, "num_processes": num_processes,
            "accelerate_config": accelerate_config, "export_from_store": export_from_store,
            "export": {"frames": frames, "frames_from": frames_from}}


@job_kind("train", gpu=True)
def run_job(ctx) -> dict:
    """The ``train`` job kind (:mod:`tpo.jobs`). Params (:func:`job_params`)::

        {"config": {field: value} (the run's options), "launcher": "python" | "accelerate",
         "accelerate_config": path | None, "num_processes": int, "export_from_store": bool,
         "export": {"frames": int, "frames_from": str}}

    With ``export_from_store`` (or no ``config.data``) the store's accepted pairs are first
    exported to ``OUTPUT/dataset``, which the run then trains on: by default the paper's
    records (``export.frames``, default 64, frames uniform over the whole video, at most one
    per second, the same for chosen and rejected; ``config.max_frames``, when lower, is the
    number exported). One process with launcher python: trains in this process.
    Otherwise: runs ``accelerate launch ... -m tpo.training.train ... --job-db DB --job-id ID`` as a
    child (in the job's process group, so a cancel's SIGTERM reaches it) whose rank 0
    reports to the job. At the end the model is registered in the store's ``models`` table.
    Returns the TrainResult's fields plus summary, model_id and command (the CLI line).
    """
    params = ctx.params
    try:
        options = check_options(params["config"])
    except ValueError as err:
        raise TrainError(f"bad training settings: {err}") from err
    launcher = params.get("launcher") or "python"
    n = int(params.get("num_processes") or 1)
    job_params(options, launcher=launcher, num_processes=n)  # validates them
    if params.get("export_from_store") or not options.get("data"):
        options = _export_for_run(ctx, options, params.get("export") or {})
    check_data(options["data"])  # before torch loads: no data fails in a second
    ctx.progress(0.0, f"loading {options['model']}")
    if launcher == "python" and n == 1:
        try:  # DPOConfig's own checks (the options passed TPO's)
            config = make_config(options)
        except (ValueError, TypeError) as err:
            raise TrainError(f"bad training settings: {err}") from err
        settings = resolve(config)
        handler = log_handler(sys.stdout)  # the worker's stdout is the job's log
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        try:
            result = train(config, callbacks=[callback_classes().JobReporter(ctx)]).as_dict()
        finally:
            logger.removeHandler(handler)
    else:
        # The children build the config: this process sets up no device of its own.
        result = _launch(ctx, options, params.get("accelerate_config"), n)
        settings = json.loads((Path(result["output_dir"]) / ARGS_FILE).read_text(encoding="utf-8"))
    ctx.check_cancelled()  # a cancel that came during the final save
    model_id = register_model(ctx.store, settings, ctx.job_id)
    summary = (f"trained {result['global_step']} steps on {result['world_size']} process(es) "
               f"in {result['train_runtime_s']:.1f} s: {settings['output_dir']}")
    ctx.log(summary)
    return {"summary": summary, "model_id": model_id,
            "command": "tpo train " + shlex.join(cli_args(options)), **result}


def _export_for_run(ctx, options: dict, export: dict) -> dict:
    """Export the store's accepted pairs into the run's folder (``export``: frames and
    frames_from, see :func:`job_params`); the options that train on them. Kept with the run,
    so its dataset is on record next to its adapter."""
    from tpo.curation.export import ExportConfig, ExportError, export_pairs

    out = Path(options["output_dir"]).expanduser().resolve()
    target = out / "dataset"
    # before replacing an earlier run's dataset
    refuse_earlier_run(out, options.get("resume", False), options.get("overwrite", False))
    if options.get("resume") and (target / ".tpo-export.json").is_file():
        return {**options, "data": str(target)}  # continue on the same pairs
    ctx.progress(0.0, "exporting the accepted pairs")

    def progress(done: int, total: int, text: str) -> None:
        ctx.check_cancelled()
        ctx.progress(0.0, f"exporting pairs {done}/{total}")

    frames = export.get("frames") or DEFAULT_FRAMES
    if options.get("max_frames"):  # no point exporting frames the load would drop again
        frames = min(frames, options["max_frames"])
    settings = {"frames": frames, "frames_from": export.get("frames_from") or "whole"}
    try:
        report = export_pairs(ctx.store, target, ExportConfig(**settings), progress=progress)
    except ExportError as err:
        if "no accepted pairs" in str(err):
            raise TrainError(NO_DATA) from err
        raise TrainError(f"cannot export the accepted pairs: {err}") from err
    ctx.log(report.summary())
    return {**options, "data": str(report.out_dir)}


def _launch(ctx, options: dict, accelerate_config: str | None, n: int) -> dict:
    """Run training under ``accelerate launch`` as a child process; its TrainResult."""
    import torch  # to ask whether there is a GPU (creates no CUDA context)

    use_cpu = bool(options.get("use_cpu")) or not torch.cuda.is_available()
    command = [sys.executable, "-m", "accelerate.commands.launch"]
    if accelerate_config:
        command += ["--config_file", str(Path(accelerate_config).expanduser().resolve())]
    elif n > 1:
        # Several processes without a config: DDP (NCCL on GPUs, gloo on CPU). Never --cpu:
        # with it accelerate starts one process, whatever --num_processes says.
        command.append("--multi_gpu")
    command += ["--num_processes", str(n), "--num_machines", "1",
                "--main_process_port", str(_free_port()), "-m", "tpo.training.train",
                *cli_args(options)]
    if use_cpu and not options.get("use_cpu"):
        command.append("--use-cpu")
    command += ["--job-db", str(Path(ctx.store.path).resolve()), "--job-id", str(ctx.job_id)]
    ctx.log("launching: " + shlex.join(command))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if use_cpu:
        env.setdefault("OMP_NUM_THREADS", "1")  # n processes sharing the cores
    tail: collections.deque[str] = collections.deque(maxlen=LOG_TAIL_LINES)
    errors: list[str] = []  # the clear messages main() printed (ERROR_PREFIX lines)
    exception: str | None = None  # the last exception line a rank printed (traceback end)
    oom = False  # a rank ran out of GPU memory outside train()'s own error mapping
    # Same process group as this worker (no new session): cancel's SIGTERM reaches it too.
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          stdin=subprocess.DEVNULL, env=env, text=True, errors="replace",
                          bufsize=1) as proc:
        for line in proc.stdout:
            sys.stdout.write(line)  # into the job's log as it comes
            sys.stdout.flush()
            tail.append(line.rstrip("\n"))
            if line.startswith(ERROR_PREFIX):
                errors.append(line[len(ERROR_PREFIX):].strip())
            elif _EXCEPTION_LINE.match(line) and not _LAUNCHER_NOISE.search(line):
                exception = line.strip()
            oom = oom or "CUDA out of memory" in line
        code = proc.wait()
    ctx.check_cancelled()  # killed by the cancel's SIGTERM: cancelled, not failed
    if code != 0:
        if errors:
            raise TrainError(errors[0])
        if oom:
            raise TrainError(OOM)
        last = exception or " | ".join(x.strip() for x in tail if x.strip())
        raise TrainError(f"the training processes exited with code {code}: {last} (the "
                         "job's log has the whole story)")
    result_file = Path(options["output_dir"]).expanduser().resolve() / RESULT_FILE
    return json.loads(result_file.read_text(encoding="utf-8"))


# A traceback's last line ("ValueError: ..."), at the start of a line as Python prints it.
_EXCEPTION_LINE = re.compile(r"[A-Za-z_][\w.]*(?:Error|Exception|Interrupt)\b")
# What the launcher says after a rank died (ChildFailedError) or when it was signalled.
_LAUNCHER_NOISE = re.compile(r"ChildFailedError|SignalException")


def _free_port() -> int:
    """A TCP port free now, for the processes' rendezvous (29500 may be taken by another
    run on this machine)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def register_model(store: Store, settings: dict, job_id: int | None) -> int:
    """The trained model's row in ``models`` (one per output folder: a resumed run updates
    its row); returns its id."""
    out = settings["output_dir"]
    row = {"name": Path(out).name, "base": settings["model"], "adapter_path": out,
           "job_id": job_id, "dataset": settings["data"], "params": json.dumps(settings),
           "created_at": now()}
    return store.save_model(row)
