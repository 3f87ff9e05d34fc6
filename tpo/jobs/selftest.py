"""The job kinds that exercise the job machinery without a model: ``selftest`` (a CPU kind)
and ``selftest-gpu`` (the same work, declared as needing the GPU, so it queues like one)."""

from __future__ import annotations

import os
import time

from tpo.jobs.progress import JobContext
from tpo.jobs.registry import job_kind


@job_kind("selftest", gpu=False)
def run_job(ctx: JobContext) -> dict:
    """``steps`` steps of ``sleep_s`` seconds, each reporting progress and a metric and
    honouring cancellation.

    ``fail_at`` raises ValueError at that step (a job that fails); ``crash_at`` ends the
    process at that step with exit code 3 and no goodbye (a hard crash, like being killed
    for lack of memory). Returns ``{"steps": steps}``. ``open_video`` (a path): open that
    video instead and return where the worker caches packet indexes.
    """
    if ctx.params.get("open_video"):  # the worker's decoding block: where indexes are cached
        from tpo.media.video import current_decoding, open_video

        with open_video(ctx.params["open_video"]):
            pass
        return {"index_dir": str(current_decoding().index_dir)}
    steps = int(ctx.params.get("steps", 3))
    sleep_s = float(ctx.params.get("sleep_s", 0.0))
    fail_at, crash_at = ctx.params.get("fail_at"), ctx.params.get("crash_at")
    ctx.log(f"selftest: {steps} steps of {sleep_s} s")
    for step in range(1, steps + 1):
        _sleep_unless_cancelled(ctx, sleep_s)
        if step == crash_at:
            ctx.log(f"crashing at step {step}, as asked")
            os._exit(3)
        if step == fail_at:
            raise ValueError(f"selftest failed at step {step}, as asked")
        ctx.metric(step, "selftest/value", 1.0 / step)
        ctx.progress(step / steps, f"step {step}/{steps}")
    return {"steps": steps}


@job_kind("selftest-gpu", gpu=True)
def run_gpu_job(ctx: JobContext) -> dict:
    """:func:`run_job` as a GPU kind: how the scheduler's queue is tested without torch."""
    return run_job(ctx)


def _sleep_unless_cancelled(ctx: JobContext, seconds: float) -> None:
    # In short naps: time.sleep resumes after a signal handler, so one long sleep would
    # delay the cancellation by its whole length.
    deadline = time.monotonic() + seconds
    while True:
        ctx.check_cancelled()
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        time.sleep(min(remaining, 0.05))
