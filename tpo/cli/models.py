"""``tpo tiny-model``, ``tpo demo-model``, ``tpo models``: models built offline and registered runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from tqdm import tqdm


from tpo.cli.common import Context


@click.command("tiny-model")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--arch", type=click.Choice(["smolvlm", "qwen2vl"]), default="smolvlm",
              show_default=True, help="Real architecture of the tiny random model.")
@click.option("--seed", type=int, default=0, show_default=True)
def tiny_model(out: Path, arch: str, seed: int) -> None:
    """Build a tiny randomly initialised video-LM into OUT (offline; for tests and the demo).

    It runs every real code path (processor, chat template, generate, DPO, LoRA) and
    answers nonsense. Use it with `tpo generate --model OUT`.
    """
    from tpo.models.tiny import build_tiny_model

    path = build_tiny_model(out, arch=arch, seed=seed)
    click.echo(f"built a tiny {arch} model in {path}")


@click.command("demo-model")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--train", "retrain", is_flag=True,
              help="Train it from scratch (seeded; ~30 min on 2 CPU cores) instead of installing "
                   "the weights the package ships.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of --train.")
@click.option("--report", "videos", type=click.IntRange(min=1), default=None, metavar="N",
              help="Then measure its accuracy on N unseen short clips and N unseen long videos.")
@click.option("--json", "as_json", is_flag=True, help="Print the accuracy report as JSON.")
def demo_model_cmd(out: Path, retrain: bool, seed: int, videos: int | None, as_json: bool) -> None:
    """Make the offline demo model in OUT: a small SmolVLM that answers the synthetic videos'
    questions (colour, number, how many, which first, order) from their frames.

    It loads like any hub model (`--model OUT` everywhere). It was trained on short clips, so
    it is good on them and weaker on long videos - the gap TPO is meant to close.
    """
    from tpo.models.demo_model import ensure_demo_model

    bar = tqdm(desc="training the demo model" if retrain else "installing the demo model",
               unit="step", file=sys.stderr, leave=False)

    def progress(step: int, steps: int, text: str) -> None:
        bar.total = steps
        bar.set_postfix_str(text, refresh=False)
        bar.update(step - bar.n)

    try:
        with bar:
            path = ensure_demo_model(out, train=retrain, seed=seed, progress=progress)
    except (ValueError, OSError, RuntimeError) as err:  # another model's folder, a full disk
        raise click.ClickException(str(err))
    if not videos:
        click.echo(f"demo model in {path}")
        return
    from tpo.models.demo_eval import report

    with tqdm(desc="asking held-out videos", unit="video", file=sys.stderr, leave=False) as bar2:
        def step(done: int, total: int) -> None:
            bar2.total = total
            bar2.update(done - bar2.n)

        result = report(path, videos, cache_dir=path / "heldout", progress=step)
    click.echo(json.dumps(result, indent=2) if as_json else result["table"])


@click.command("models")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@click.pass_obj
def models_cmd(obj: Context, as_json: bool) -> None:
    """Fine-tuned models registered by training runs (use them as --model '#ID')."""
    rows = obj.store.list_models()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no registered models yet: `tpo train` registers each run")
    for m in rows:
        click.echo(f"#{m['id']}  {m['name']}  base {m['base']}  ({m['adapter_path']})")


#: The commands this module adds to ``tpo`` (see :mod:`tpo.cli`).
COMMANDS = (tiny_model, demo_model_cmd, models_cmd)
