"""Generation runs over the library: which videos, resumability, storing, progress.

:func:`generate` is what ``tpo generate`` and the app's background job both call: for each
chosen ready video it skips those already generated with the same settings (unless
``force``), generates its pairs with :mod:`tpo.pairs`, and stores them with the run record in
one transaction, so an interrupted run loses at most the video in progress.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Callable

from tpo import filters, pairs, video
from tpo.store import Store

Progress = Callable[[float, str], None]  # (fraction done 0..1, what is happening)


@dataclass
class GenerateReport:
    """What a run did, per video."""

    generated: dict[int, int] = field(default_factory=dict)  # video id -> pairs stored
    filtered: dict[int, int] = field(default_factory=dict)   # video id -> of which filtered
    skipped: dict[int, str] = field(default_factory=dict)    # video id -> why
    failed: dict[int, str] = field(default_factory=dict)     # video id -> error
    pair_ids: list[int] = field(default_factory=list)

    def summary(self) -> str:
        n = sum(self.generated.values())
        kept = n - sum(self.filtered.values())
        videos = len(self.generated)
        return (f"{videos} video{'' if videos == 1 else 's'} generated: {n} pairs ({kept} pending, "
                f"{n - kept} filtered); {len(self.skipped)} skipped, {len(self.failed)} failed")

    def as_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items()}


def choose_videos(store: Store, video_ids: list[int] | None) -> list[dict]:
    """The ready videos to generate for: the given ids (all must exist), or the whole library."""
    if video_ids:
        return [store.get_video(i) for i in video_ids]
    return [v for v in store.list_videos() if v["status"] == "ready"]


def generate(store: Store, model: pairs.Model, config: pairs.GenerationConfig, *,
             video_ids: list[int] | None = None, force: bool = False, adapter: str | None = None,
             judge: Callable[[str], str] | None = None, job_id: int | None = None,
             filter_config: filters.FilterConfig | None = None,
             progress: Progress | None = None) -> GenerateReport:
    """Generate pairs for the chosen videos and store them; never raises for one bad video."""
    report = GenerateReport()
    videos = choose_videos(store, video_ids)
    say = progress or (lambda _f, _t: None)
    for n, row in enumerate(videos):
        base = n / max(len(videos), 1)
        if row["status"] != "ready":
            report.skipped[row["id"]] = f"not readable: {row['error']}"
            continue
        key = pairs.run_key(row["sha256"], model.model_id, adapter, config)
        if store.has_generation(row["id"], key) and not force:
            report.skipped[row["id"]] = "already generated with these settings (use force to redo)"
            continue
        say(base, f"video {n + 1}/{len(videos)}: {row['name']}")

        def stage(text: str, _base=base, _row=row) -> None:
            say(_base, f"video {n + 1}/{len(videos)}: {_row['name']}: {text}")

        started = time.perf_counter()
        try:
            rows = pairs.generate_for_video(
                model, row["path"], config, ground_truth=row.get("ground_truth"), judge=judge,
                filter_config=filter_config or filters.FilterConfig(), progress=stage)
        except (video.VideoError, ValueError) as err:
            report.failed[row["id"]] = str(err)
            continue
        ids = store.save_generation(row["id"], key, rows, params=asdict(config), job_id=job_id,
                                    seconds=time.perf_counter() - started, replace=force)
        report.generated[row["id"]] = len(ids)
        report.filtered[row["id"]] = sum(r["status"] == "filtered" for r in rows)
        report.pair_ids += ids
    say(1.0, report.summary())
    return report


def job_params(model: str, config: pairs.GenerationConfig, *, adapter: str | None = None,
               video_ids: list[int] | None = None, force: bool = False,
               drop_truncated: bool = True, max_new_tokens: int = 128,
               judge: str | None = None) -> dict:
    """The JSON parameters of a ``generate`` background job (see :func:`run_job`).

    ``judge``: a model (hub id or folder) that runs the paper's three judge checks on every
    pair the rules keep; None skips them.
    """
    return {"model": model, "adapter": adapter, "video_ids": video_ids or None, "judge": judge,
            "force": force, "config": asdict(config), "max_new_tokens": max_new_tokens,
            "filters": asdict(filters.FilterConfig(drop_truncated=drop_truncated))}


def run_job(ctx) -> dict:
    """The ``generate`` job kind (:mod:`tpo.jobs`): load the model, generate, report."""
    from tpo.vlm import VLM, ModelConfig  # torch loads in the job process only

    p = ctx.params
    config = pairs.GenerationConfig(**p["config"])
    judge = None
    if p.get("judge"):
        ctx.progress(0.0, f"loading the judge {p['judge']}")
        judge = VLM.load(ModelConfig(model=p["judge"]))
    try:
        ctx.progress(0.0, f"loading {p['model']}")
        with VLM.load(ModelConfig(model=p["model"], adapter=p.get("adapter"),
                                  max_new_tokens=p.get("max_new_tokens", 128))) as model:
            def progress(fraction: float, text: str) -> None:
                ctx.check_cancelled()  # between stages: a cancel stops before the next video
                ctx.progress(fraction, text)

            report = generate(ctx.store, model, config, video_ids=p.get("video_ids"),
                              force=p.get("force", False), adapter=p.get("adapter"),
                              filter_config=filters.FilterConfig(**p.get("filters", {})),
                              judge=judge.chat if judge else None, job_id=ctx.job_id,
                              progress=progress)
    finally:
        if judge:
            judge.close()
    ctx.log(report.summary())
    return {"summary": report.summary(), **report.as_dict()}
