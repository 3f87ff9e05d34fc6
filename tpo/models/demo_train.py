"""Training the offline demo model (:mod:`tpo.models.demo_model`) from scratch, on a CPU.

Supervised next-token training on the answers of random short synthetic clips
(:mod:`tpo.models.demo_data`), loss on the answer tokens only. Batches hold one frame count each
(so no image padding) and more clips when they have fewer frames, to keep the tokens per
step roughly even. Everything is seeded: the same :class:`TrainSettings` give the same
clips in the same order and the same initial weights.

Inputs are built the way :class:`tpo.models.vlm.VLM` asks at inference (the chat template, the time
prompt of :func:`tpo.models.prompts.time_prompt`, one image per frame) with a fast copy of the
processor's resize (:func:`tpo.models.demo_model.pixels`): the real processor costs ~7 ms a frame,
more than the training step itself.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from tpo.models import demo_data, demo_model
from tpo.models.prompts import time_prompt

#: Clips per batch for each frame count: ~1,500-4,000 tokens a step.
BATCH = {4: 24, 8: 16, 16: 10, 32: 6, 64: 3}


@dataclass
class TrainSettings:
    """How the demo model is trained (the defaults made the shipped weights)."""

    steps: int = 600
    lr: float = 1e-3
    warmup: int = 30
    # Curriculum: the first steps are single-event clips of 4-8 frames asked about that event.
    # From scratch, the text decoder first learns the answers' priors ("Yellow." for every
    # colour question); the image pathway only "breaks through" after a few hundred steps
    # of such easy, undiluted signal (measured: 1,500 steps of the full mix alone left the
    # colour questions at chance).
    easy_steps: int = 100
    weight_decay: float = 0.01
    seed: int = 0
    # Vision pre-training before the steps above (:func:`pretrain_vision`): the vision tower
    # and connector learn to tell each frame's colour, shape or digit and position from
    # single frames (linear heads on the image tokens, dropped afterwards). Cheap (no text),
    # and it is what makes the digits readable: from next-token loss alone the image
    # pathway learnt colours and little else.
    vision_steps: int = 300
    vision_lr: float = 2e-3
    vision_batch: int = 128
    # Keep the pre-trained vision tower fixed during the next-token steps. Measured: trained
    # along, it forgets the shapes and digits (a fresh linear probe on its image tokens fell
    # from ~99 % to 62 % for shape-or-digit after 600 steps) while colours stay at 100 %.
    freeze_vision: bool = True
    threads: int = 2  # torch CPU threads; fixed, so a rerun does the same arithmetic


#: The recipe of the shipped weights: one stage of the defaults above (vision pre-training,
#: then next-token steps with the vision tower frozen). Measured against the earlier recipe
#: (2,800 next-token steps, no vision stage): free-form accuracy on unseen short clips 36.2 %
#: vs 28.7 %, numbers 40 % vs 13 % (docs/demo-model.md).
RECIPE = (TrainSettings(),)


def train_recipe(out_dir: str | Path, seed: int = 0, *,
                 progress: Callable[[int, int, str], None] | None = None) -> Path:
    """Every stage of :data:`RECIPE` (seeds offset by ``seed``) into ``out_dir``; the stages
    before the last are kept in ``out_dir/stage-N``. ``progress(step, steps, text)`` counts
    the steps of all stages."""
    out = Path(out_dir)
    total = sum(s.steps for s in RECIPE)
    done, init = 0, None
    for k, settings in enumerate(RECIPE, start=1):
        settings = replace(settings, seed=settings.seed + seed)
        target = out if k == len(RECIPE) else out / f"stage-{k}"

        def step(i: int, _n: int, text: str, _base=done, _k=k) -> None:
            if progress:
                progress(_base + i, total, f"stage {_k}/{len(RECIPE)}: {text}")

        train_demo_model(target, settings, progress=step, init_from=init)
        done, init = done + settings.steps, target
    return out


def encode(processor, examples: Sequence[demo_data.Example]) -> dict[str, torch.Tensor]:
    """A training batch: pixel values (B, N, 3, 96, 96), token ids padded on the right, and
    labels that are -100 everywhere but the answer and its end-of-turn token."""
    tok = processor.tokenizer
    n = len(examples[0].frames)
    if any(len(e.frames) != n for e in examples):
        raise ValueError("a batch needs one frame count")
    image = demo_model.image_text(processor)
    ids, labels = [], []
    for e in examples:
        user = [{"role": "user", "content": [{"type": "image"} for _ in range(n)] + [
            {"type": "text", "text": time_prompt(e.times, e.duration_s, e.question)}]}]
        prompt = processor.apply_chat_template(user, add_generation_prompt=True)
        full = processor.apply_chat_template(
            user + [{"role": "assistant", "content": [{"type": "text", "text": e.answer}]}])
        if not full.startswith(prompt):
            raise ValueError("the chat template does not extend the prompt with the answer")
        head = tok(prompt.replace("<image>", image), add_special_tokens=False)["input_ids"]
        tail = tok(full[len(prompt):].rstrip("\n"), add_special_tokens=False)["input_ids"]
        ids.append(head + tail)
        labels.append([-100] * len(head) + tail)
    width = max(map(len, ids))
    pad = tok.pad_token_id
    input_ids = torch.tensor([x + [pad] * (width - len(x)) for x in ids])
    label_ids = torch.tensor([y + [-100] * (width - len(y)) for y in labels])
    attention = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in ids])
    pixel_values = torch.from_numpy(np.stack([np.stack([demo_model.pixels(f) for f in e.frames])
                                              for e in examples]))
    mask = torch.ones(pixel_values.shape[0], n, demo_model.IMAGE_SIZE, demo_model.IMAGE_SIZE,
                      dtype=torch.bool)
    return {"input_ids": input_ids, "attention_mask": attention, "labels": label_ids,
            "pixel_values": pixel_values, "pixel_attention_mask": mask}


def _lr(step: int, settings: TrainSettings) -> float:
    """Linear warm-up, then cosine decay to 10 % of the peak."""
    if step < settings.warmup:
        return settings.lr * (step + 1) / settings.warmup
    done = (step - settings.warmup) / max(1, settings.steps - settings.warmup)
    return settings.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * done)))


def train_demo_model(out_dir: str | Path, settings: TrainSettings = TrainSettings(), *,
                     progress: Callable[[int, int, str], None] | None = None,
                     snapshot_every: int = 0, init_from: str | Path | None = None) -> Path:
    """Train the demo model from scratch into ``out_dir`` (a loadable model folder).

    ``snapshot_every`` > 0 also saves the model so far to ``out_dir/step-N`` every that many
    steps (to measure it while training goes on). ``init_from``: start from that folder's
    weights instead of a fresh initialisation."""
    torch.set_num_threads(settings.threads)
    rng = random.Random(settings.seed)
    processor = demo_model.build_processor()
    model = demo_model.build_model(processor, seed=settings.seed)
    if init_from is not None:  # a later stage of the recipe: continue from these weights
        from transformers import AutoModelForImageTextToText

        model.load_state_dict(AutoModelForImageTextToText.from_pretrained(
            str(init_from)).state_dict())
    model.train()
    started = time.perf_counter()
    if settings.vision_steps:
        pretrain_vision(model, settings, rng, progress=progress)
    if settings.freeze_vision:
        model.model.vision_model.requires_grad_(False)
    trained = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    decay = [p for n, p in trained if p.ndim >= 2]
    rest = [p for n, p in trained if p.ndim < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": settings.weight_decay},
                                   {"params": rest, "weight_decay": 0.0}], lr=settings.lr)
    recent = []
    for step in range(settings.steps):
        if step < settings.easy_steps:
            n = rng.choice((4, 8))
            clips = [demo_data.sample_example(rng, n_frames=n, n_events=1,
                                              task=rng.choice(("event", "mcq")))
                     for _ in range(BATCH[n])]
        else:
            n = rng.choices(demo_data.FRAME_COUNTS, weights=demo_data.FRAME_WEIGHTS)[0]
            clips = [demo_data.sample_example(rng, n_frames=n) for _ in range(BATCH[n])]
        batch = encode(processor, clips)
        for group in optimizer.param_groups:
            group["lr"] = _lr(step, settings)
        loss = model(**batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for _, p in trained], 1.0)
        optimizer.step()
        recent = (recent + [loss.item()])[-50:]
        if progress and (step % 10 == 0 or step + 1 == settings.steps):
            progress(step + 1, settings.steps, f"loss {np.mean(recent):.3f}")
        if snapshot_every and (step + 1) % snapshot_every == 0 and step + 1 < settings.steps:
            demo_model.save_folder(model, processor, Path(out_dir) / f"step-{step + 1}",
                                   {"source": "snapshot", "step": step + 1})
    model.eval()
    meta = {"source": "trained", "settings": asdict(settings),
            "train_seconds": round(time.perf_counter() - started, 1),
            "final_loss": round(float(np.mean(recent)), 4)}
    return demo_model.save_folder(model, processor, out_dir, meta)


def pretrain_vision(model, settings: TrainSettings, rng: random.Random, *,
                    progress: Callable[[int, int, str], None] | None = None) -> float:
    """Train ``model``'s vision tower and connector to classify single frames
    (:func:`tpo.models.demo_data.sample_frame`: colour, shape or digit, position) through linear
    heads on the frame's image tokens, for ``settings.vision_steps`` steps; the heads are
    thrown away. Returns the mean accuracy over the three labels of the last 20 steps."""
    inner = model.model
    width = inner.config.text_config.hidden_size * demo_model.image_tokens()
    heads = torch.nn.ModuleList(torch.nn.Linear(width, len(names) + 1)
                                for names in demo_data.FRAME_LABELS)
    params = [*inner.vision_model.parameters(), *inner.connector.parameters(),
              *heads.parameters()]
    optimizer = torch.optim.AdamW(params, lr=settings.vision_lr, weight_decay=settings.weight_decay)
    steps, recent = settings.vision_steps, []
    plan = replace(settings, steps=steps, warmup=min(settings.warmup, steps), lr=settings.vision_lr)
    for step in range(steps):
        frames, labels = zip(*(demo_data.sample_frame(rng) for _ in range(settings.vision_batch)))
        x = torch.from_numpy(np.stack([demo_model.pixels(f) for f in frames]))[:, None]
        y = torch.tensor(labels)
        tokens = inner.get_image_features(x).pooler_output
        flat = torch.stack(list(tokens)).reshape(len(frames), width)
        logits = [head(flat) for head in heads]
        loss = sum(torch.nn.functional.cross_entropy(z, y[:, i]) for i, z in enumerate(logits))
        for group in optimizer.param_groups:
            group["lr"] = _lr(step, plan)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        acc = float(np.mean([(z.argmax(-1) == y[:, i]).float().mean().item()
                             for i, z in enumerate(logits)]))
        recent = (recent + [acc])[-20:]
        if progress and (step % 10 == 0 or step + 1 == steps):
            progress(0, 1, f"vision pre-training {step + 1}/{steps}: frame accuracy "
                           f"{np.mean(recent):.3f}")
    return float(np.mean(recent))


def export_weights(model_dir: str | Path, target: str | Path = demo_model.SHIPPED_WEIGHTS) -> Path:
    """Write a trained folder's weights as the package's shipped weights (+ a JSON of how
    they were made). Maintainers run this after changing the recipe."""
    from safetensors.torch import save_file
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(str(model_dir))
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(target))
    meta = json.loads((Path(model_dir) / demo_model.MARKER).read_text(encoding="utf-8"))
    meta.pop("version", None)
    target.with_suffix(".json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return target
