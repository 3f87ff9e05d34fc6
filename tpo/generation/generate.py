"""Generation runs over the library: which videos, resumability, storing, progress.

Every shell describes a run as one :class:`GenerationRequest`: the app's Generate panel
hands it to :func:`submit` (a background job), ``tpo generate`` and that job to :func:`run`,
which loads the models and calls :func:`generate`: for each
chosen ready video it skips those already generated with the same settings (unless
``force``), generates its pairs with :mod:`tpo.generation.pairs`, and stores them with the run record in
one transaction, so an interrupted run loses at most the video in progress.

Questions not taken from ground truth are written by a separate text model (``writer``,
:mod:`tpo.models.textlm`; the video-LM itself when None), and an optional ``judge`` post-filters
the pairs. When either fails (a server down, a reply that is not a chat completion) the run
stops there: every later video would fail the same way, and the videos done before stay
stored. ``tpo generate`` and the app's job default to SmolLM2-135M-Instruct as writer
(:data:`DEFAULT_WRITER`) and to no judge.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Callable

from pydantic import Field

from tpo import jobs
from tpo.configs import Config
from tpo.generation import filters, pairs
from tpo.generation.filters import FilterConfig
from tpo.generation.pairs import GenerationConfig
from tpo.jobs import job_kind
from tpo.media import video
from tpo.models import textlm
from tpo.models.server_vlm import is_server, open_server
from tpo.store import Store

DEFAULT_WRITER = "smollm2"    # the offline SmolLM2-135M-Instruct (tpo.models.textlm)
DEFAULT_JUDGE = textlm.NONE   # judging slows every pair and drops many: asked for, not default

Progress = Callable[[float, str], None]  # (fraction done 0..1, what is happening)


class GenerationRequest(Config):
    """One generation run as every shell describes it: ``tpo generate``, the app's Generate
    panel and the ``generate`` job (whose params are this request's ``model_dump()``) all
    build one and hand it to :func:`submit` or :func:`run`."""

    model: str = Field(description="Video-LM: hub id, local folder (a registered run resolves "
                                   "to its base and adapter before this), or the URL[#model] "
                                   "of an OpenAI-compatible multimodal server.")
    adapter: str | None = Field(None, description="LoRA adapter folder on top of the model.")
    video_ids: list[int] | None = Field(None, description="Videos; None: every ready video.")
    force: bool = Field(False, description="Redo videos already generated with these settings.")
    writer: str = Field(DEFAULT_WRITER, description=(
        "Text model writing questions not from ground truth (tpo.models.textlm spec; self: the "
        "video-LM)."))
    judge: str | None = Field(DEFAULT_JUDGE, description=(
        "Text model for the paper's judge checks; None or none: rule filters only."))
    config: GenerationConfig = Field(default_factory=GenerationConfig)
    filters: FilterConfig = Field(default_factory=FilterConfig)
    num_processes: int = Field(1, ge=1, description=(
        "Processes (one per GPU) that share the videos under accelerate launch "
        "(tpo.generation.shard); 1: this process."))

    @classmethod
    def from_params(cls, params: dict) -> "GenerationRequest":
        """A job's params back into a request; jobs queued before the config held the token
        limit kept it beside the config."""
        p = dict(params)
        legacy_tokens = p.pop("max_new_tokens", None)
        config = dict(p.pop("config", {}))
        if legacy_tokens is not None:
            config.setdefault("max_new_tokens", legacy_tokens)
        return cls(**p, config=config)


class GenerationStopped(RuntimeError):
    """A generate job stopped early (its writer or judge failed); says what was stored."""


@dataclass
class GenerateReport:
    """What a run did, per video."""

    generated: dict[int, int] = field(default_factory=dict)  # video id -> pairs stored
    filtered: dict[int, int] = field(default_factory=dict)   # video id -> of which filtered
    skipped: dict[int, str] = field(default_factory=dict)    # video id -> why
    failed: dict[int, str] = field(default_factory=dict)     # video id -> error
    pair_ids: list[int] = field(default_factory=list)
    stopped: str | None = None  # why the run stopped before its last video (writer/judge failed)

    def summary(self) -> str:
        n = sum(self.generated.values())
        kept = n - sum(self.filtered.values())
        videos = len(self.generated)
        text = (f"{videos} video{'' if videos == 1 else 's'} generated: {n} pairs ({kept} pending, "
                f"{n - kept} filtered); {len(self.skipped)} skipped, {len(self.failed)} failed")
        return text + (f"; stopped: {self.stopped}" if self.stopped else "")

    def as_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items()}


def choose_videos(store: Store, video_ids: list[int] | None) -> list[dict]:
    """The ready videos to generate for: the given ids (all must exist), or the whole library."""
    if video_ids:
        return [store.get_video(i) for i in video_ids]
    return [v for v in store.list_videos() if v["status"] == "ready"]


def generate(store: Store, model: pairs.Model, config: pairs.GenerationConfig, *,
             video_ids: list[int] | None = None, force: bool = False, adapter: str | None = None,
             writer: pairs.TextModel | pairs.Chat | None = None,
             judge: pairs.TextModel | pairs.Chat | None = None, job_id: int | None = None,
             filter_config: filters.FilterConfig | None = None,
             progress: Progress | None = None) -> GenerateReport:
    """Generate pairs for the chosen videos and store them; never raises for one bad video.

    ``writer`` writes the questions that do not come from ground truth (None: the video-LM
    itself); ``judge`` (None: no judge) runs the paper's three checks. Both enter the run
    key, so another writer or judge is another run. A writer or judge failure
    (:class:`tpo.models.textlm.TextModelError`) stops the run: that video counts as failed, the
    rest are not tried, ``report.stopped`` says why, and the videos done before stay stored.
    """
    report = GenerateReport()
    writer_name = pairs.speaker(writer)[1] or pairs.SELF_WRITER
    judge_name = pairs.speaker(judge)[1]
    videos = choose_videos(store, video_ids)
    say = progress or (lambda _f, _t: None)
    for n, row in enumerate(videos):
        base = n / max(len(videos), 1)
        if row["status"] != "ready":
            report.skipped[row["id"]] = f"not readable: {row['error']}"
            continue
        key = pairs.run_key(row["sha256"], model.model_id, adapter, config, writer=writer_name,
                            judge=judge_name, filter_config=filter_config)
        if store.has_generation(row["id"], key) and not force:
            report.skipped[row["id"]] = "already generated with these settings (use force to redo)"
            continue
        say(base, f"video {n + 1}/{len(videos)}: {row['name']}")

        def stage(text: str, _base=base, _row=row) -> None:
            say(_base, f"video {n + 1}/{len(videos)}: {_row['name']}: {text}")

        started = time.perf_counter()
        try:
            rows = pairs.generate_for_video(
                model, row["path"], config, ground_truth=row.get("ground_truth"), writer=writer,
                judge=judge, filter_config=filter_config or filters.FilterConfig(), progress=stage)
        except textlm.TextModelError as err:  # not a ValueError: it must not look per-video
            report.failed[row["id"]] = report.stopped = str(err)
            break
        except (video.VideoError, ValueError) as err:  # this video's own problem: go on
            report.failed[row["id"]] = str(err)
            continue
        ids = store.save_generation(row["id"], key, rows, params=config.model_dump(), job_id=job_id,
                                    seconds=time.perf_counter() - started, replace=force)
        report.generated[row["id"]] = len(ids)
        report.filtered[row["id"]] = sum(r["status"] == "filtered" for r in rows)
        report.pair_ids += ids
    say(1.0, report.summary())
    return report


def job_params(model: str, config: GenerationConfig, *, adapter: str | None = None,
               video_ids: list[int] | None = None, force: bool = False,
               drop_truncated: bool = True, writer: str = DEFAULT_WRITER,
               judge: str | None = None) -> dict:
    """The JSON parameters of a ``generate`` job: a :class:`GenerationRequest` dumped."""
    return GenerationRequest(model=model, adapter=adapter, video_ids=video_ids or None,
                             force=force, writer=writer, judge=judge, config=config,
                             filters=FilterConfig(drop_truncated=drop_truncated)).model_dump()


def submit(store: Store, request: GenerationRequest, *, log_dir) -> int:
    """Queue the request as a ``generate`` background job (it waits for a GPU slot); the id."""
    return jobs.submit(store, "generate", request.model_dump(), log_dir=log_dir)


def run(store: Store, request: GenerationRequest, *, progress: Progress | None = None,
        job_id: int | None = None, device: str = "auto") -> GenerateReport:
    """Run the request in this process: open the writer and judge (a server that is down
    fails in seconds, before the video-LM loads), load the video-LM, :func:`generate`, close
    them all (``device``: the video-LM's torch device; auto: cuda when there is one). Raises
    :class:`tpo.models.textlm.TextModelError` or
    :class:`tpo.models.vlm.ModelLoadError` before any video is touched."""
    from tpo.models.vlm import VLM, ModelConfig  # torch loads in the process that generates

    say = progress or (lambda _f, _t: None)
    config = request.config
    text_models = [textlm.open_writer(request.writer)]
    try:
        text_models.append(textlm.open_judge(request.judge))
        say(0.0, f"loading {request.model}")
        if is_server(request.model):  # the frames go to a serving engine, nothing loads here
            if request.adapter:
                raise ValueError("an adapter cannot be applied to a model behind a server: "
                                 "serve the fine-tuned model instead")
            opened = open_server(request.model, max_new_tokens=config.max_new_tokens)
        else:
            opened = VLM.load(ModelConfig(model=request.model, adapter=request.adapter,
                                          device=device, max_new_tokens=config.max_new_tokens))
        with opened as model:
            return generate(store, model, config, video_ids=request.video_ids,
                            force=request.force, adapter=request.adapter,
                            filter_config=request.filters, writer=text_models[0],
                            judge=text_models[1], job_id=job_id, progress=progress)
    finally:
        for text_model in text_models:
            if text_model is not None:
                text_model.close()


@job_kind("generate", gpu=True)
def run_job(ctx) -> dict:
    """The ``generate`` job kind (:mod:`tpo.jobs`): :func:`run` the job's request."""
    request = GenerationRequest.from_params(ctx.params)

    def progress(fraction: float, text: str) -> None:
        ctx.check_cancelled()  # between stages: a cancel stops before the next video
        ctx.progress(fraction, text)

    if request.num_processes > 1:
        from tpo.generation.shard import launch

        report = launch(ctx.store, request, request.num_processes, progress=progress,
                        log=ctx.log)
    else:
        report = run(ctx.store, request, progress=progress, job_id=ctx.job_id)
    ctx.log(report.summary())
    if report.stopped:  # the job fails with the reason; the pairs stored so far stay
        raise GenerationStopped(report.summary())
    return {"summary": report.summary(), **report.as_dict()}
