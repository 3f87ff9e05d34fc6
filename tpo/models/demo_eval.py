"""How well a model answers the synthetic world's questions on videos it never saw.

Two held-out sets, rendered to real H.264 files and read back through :mod:`tpo.media.video` and
:class:`tpo.models.vlm.VLM` (the path every model takes in the app):

* ``short``: 10-40 s clips with 1-5 events, 16 frames uniform over the clip - the kind of
  input the demo model was trained on;
* ``long``: 2-5 min videos with 3-8 events of 4-10 s each, 64 frames uniform over the whole
  video (at most 1 per second) - an event is then one to three of the 64 frames.

Every ground-truth question of each video is asked twice: free-form (right when the answer
names the expected colour / number / count / event: :func:`tpo.evaluation.mcq.same_words`) and as a
lettered multiple-choice question (read by :func:`tpo.evaluation.mcq.parse_choice`). Seeds come from
a range the demo model's training never draws from (its clips are made by one
``random.Random(seed)`` stream; these specs by ``random.Random(HELD_OUT_SEED + i)``).
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from tpo.media import synth
from tpo.models import demo_data
from tpo.evaluation.mcq import parse_choice, same_words

HELD_OUT_SEED = 7_000_000
SETS = {  # name: (length range s, events range, frames)
    "short": ((10.0, 40.0), (1, 5), 16),
    "long": ((120.0, 300.0), (3, 8), 64),
}


@dataclass(frozen=True)
class HeldOut:
    name: str
    specs: list[synth.VideoSpec]
    frames: int


def held_out_specs(name: str, n: int, seed: int = 0) -> HeldOut:
    """``n`` videos of set ``name`` ("short" or "long"), the same for the same seed."""
    (lo, hi), (e_lo, e_hi), frames = SETS[name]
    specs = []
    for i in range(n):
        rng = random.Random(HELD_OUT_SEED + 1000 * seed + i + (500 if name == "long" else 0))
        duration = round(rng.uniform(lo, hi), 1)
        if name == "short":
            spec = demo_data.clip_spec(rng, duration, rng.randint(e_lo, e_hi))
        else:
            k = rng.randint(e_lo, e_hi)
            events = synth.random_events(duration, k, seed=rng.randrange(10**6),
                                         min_len_s=4, max_len_s=10)
            width, height = rng.choice(demo_data.FRAME_SIZES)
            spec = synth.VideoSpec("unnamed", duration, 8, width, height, events,
                                   seed=rng.randrange(10**6))
        specs.append(replace(spec, name=f"heldout_{name}_{seed}_{i}"))
    return HeldOut(name, specs, frames)


def evaluate_model(model, held_out: HeldOut, folder: str | Path, *,
                   progress: Callable[[int, int], None] | None = None) -> dict:
    """Accuracy of ``model`` (a loaded :class:`tpo.models.vlm.VLM`) on ``held_out``: overall and per
    question type, free-form and multiple choice. Videos are rendered into ``folder`` once."""
    from tpo.media import video
    from tpo.models.prompts import VideoQuestion

    folder = Path(folder)
    results: dict[str, list[bool]] = defaultdict(list)
    for k, spec in enumerate(held_out.specs):
        (path,) = synth.build_demo_library(folder, [spec])
        with video.open_video(path) as vid:
            n = max(1, min(held_out.frames, int(vid.info.duration_s)))
            frames = vid.sample(n)
        rng = random.Random(spec.seed)
        asks, checks = [], []
        for kind, question, answer, options, correct in demo_data.questions(spec):
            asks.append(VideoQuestion(frames, question, vid.info.duration_s))
            checks.append((f"free/{kind}", lambda a, x=answer: same_words(a, x)))
            item = demo_data.mcq_item(question, options, correct, rng)
            asks.append(VideoQuestion(frames, item.prompt(), vid.info.duration_s))
            checks.append((f"mcq/{kind}", lambda a, it=item: parse_choice(a, it.options) == it.answer))
        for reply, (key, check) in zip(model.answer(asks), checks):
            results[key].append(check(reply))
        if progress:
            progress(k + 1, len(held_out.specs))
    summary = {key: {"n": len(v), "accuracy": sum(v) / len(v)} for key, v in sorted(results.items())}
    for mode in ("free", "mcq"):
        pooled = [x for key, v in results.items() if key.startswith(mode) for x in v]
        summary[mode] = {"n": len(pooled), "accuracy": sum(pooled) / max(1, len(pooled))}
    return summary


def report(model_dir: str | Path, n_videos: int, *, cache_dir: str | Path, seed: int = 0,
           progress: Callable[[int, int], None] | None = None) -> dict:
    """Accuracy of the model in ``model_dir`` on ``n_videos`` short and ``n_videos`` long
    held-out videos (rendered into ``cache_dir``): ``{"short": {...}, "long": {...},
    "table": text}``, each set as :func:`evaluate_model` returns it."""
    from tpo.models.vlm import VLM, ModelConfig

    config = ModelConfig(model=str(model_dir), max_new_tokens=24, batch_size=8)
    out: dict = {}
    with VLM.load(config) as model:
        for k, name in enumerate(SETS):
            held_out = held_out_specs(name, n_videos, seed)

            def step(done: int, total: int, _k=k) -> None:
                if progress:
                    progress(_k * total + done, 2 * total)

            out[name] = evaluate_model(model, held_out, Path(cache_dir) / name, progress=step)
    out["table"] = table(out)
    return out


def table(result: dict) -> str:
    """A text table: one row per question type, free-form and multiple-choice accuracy per set."""
    keys = sorted({k.split("/", 1)[1] for name in SETS for k in result[name] if "/" in k})
    head = f"{'question':<10}" + "".join(f"{name + ' ' + mode:>14}" for name in SETS
                                          for mode in ("free", "mcq"))
    lines = [head]

    def cell(entry: dict | None) -> str:
        return f"{100 * entry['accuracy']:6.1f}% ({entry['n']:>3})" if entry else f"{'-':>13}"

    for key in [*keys, None]:
        row = f"{key or 'all':<10}"
        for name in SETS:
            for mode in ("free", "mcq"):
                row += " " + cell(result[name].get(f"{mode}/{key}" if key else mode))
        lines.append(row)
    return "\n".join(lines)
