"""The offline demo model: a small SmolVLM that really answers questions about the synthetic world.

No vision-language weights can be downloaded here, and a random model answers nonsense, so
nothing TPO does could be seen. This model is a real Hugging Face architecture
(``SmolVLMForConditionalGeneration``: a SigLIP vision encoder, a pixel-shuffle connector and
a Llama text decoder, with SmolVLM2's processor and chat template) at a small size, trained
by the project (:mod:`tpo.models.demo_train`) on short synthetic clips (:mod:`tpo.models.demo_data`) to
answer the library's ground-truth question types from the frames: colour, number, how
many, which came first, in what order, multiple choice, and a caption.

Like a real video-LM trained on short clips, it does better on short clips than on long
videos, where an event is one or two of 64 frames: the gap TPO is meant to close. It is
small and briefly trained: docs/demo-model.md says what it can and cannot do.

:func:`ensure_demo_model` writes the model folder, which loads with
``AutoModelForImageTextToText`` / ``AutoProcessor`` and :class:`tpo.models.vlm.VLM` like any hub
checkpoint. By default it installs the weights the package ships
(``tpo/assets/demo_model.safetensors``, trained with the default seed); with
``train=True`` it trains them again from scratch (see :mod:`tpo.models.demo_train` for time and
numbers). Sizes: frames are resized to 96x96 px, 6x6 patches of 16 px merged 2x2 into 9
image tokens (+3 wrapper tokens); text decoder 4 layers of width 128; 1.28M parameters.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from tpo.jobs import job_kind
from tpo.evaluation.mcq import MCQ_INSTRUCTION, MCQ_SUFFIX
from tpo.models.prompts import CAPTION_PROMPT
from tpo.media.synth import COLORS, POSITIONS, SHAPES

# torch and transformers are imported inside the functions that build or load the model:
# the app process checks `is_demo_model` and submits the install job without loading them.

__all__ = ["DEMO_VERSION", "SHIPPED_WEIGHTS", "build_model", "build_processor",
           "ensure_demo_model", "is_demo_model"]

DEMO_VERSION = 2  # bump when the architecture, tokenizer or training recipe changes
SHIPPED_WEIGHTS = Path(__file__).parents[1] / "assets" / "demo_model.safetensors"
DEFAULT_FOLDER = "demo-smolvlm"  # under DATA/models: where the app and `tpo experiment` put it
MARKER = "tpo_demo_model.json"  # written last into the folder: a folder with it is complete

IMAGE_SIZE = 96  # px: every frame is resized to 96x96 (the processor's two-step resize)
PATCH_SIZE = 16  # px: 6x6 = 36 patches a frame
SCALE = 2  # pixel shuffle: 2x2 patches -> 1 token, so 9 image tokens a frame
VOCAB_SIZE = 1024
TEXT = dict(hidden_size=128, intermediate_size=384, num_hidden_layers=4, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=4096, tie_word_embeddings=False)
VISION = dict(hidden_size=96, intermediate_size=192, num_hidden_layers=2, num_attention_heads=4,
              image_size=IMAGE_SIZE, patch_size=PATCH_SIZE)


def _corpus(tiny_corpus: str) -> str:
    """The tokenizer's training text: the prompts, questions and answers of the demo world,
    so they take few tokens (a 64-frame prompt is ~1,200 tokens, most of them image tokens)."""
    words = [*COLORS, *(c.capitalize() for c in COLORS), *SHAPES, *POSITIONS]
    lines = [
        "The video lasts for 120.0 seconds, and 64 frames are sampled from it. These frames are "
        "located at 0.9s, 2.8s, 4.7s, 10.3s, 35.6s, 47.1s, 58.2s, 69.4s, 80.5s, 91.8s, 103.0s. "
        "Please answer the following question related to this video.",
        CAPTION_PROMPT, MCQ_INSTRUCTION.format(letters="A, B, C, or D"), MCQ_SUFFIX,
        "A. red B. blue C. green D. yellow The best answer is: A B C D",
        "How many shapes appear in the video? How many numbers appear in the video?",
        "In what order do the numbers appear? 5, 4, 3, 2, 1. 7, 0, 9.",
        "Which number is shown in red? Which appeared first, the red circle or the green number 7?",
        "The red circle, then the blue square, then the green number 7. Only the grey background.",
        " ".join(f"What colour is the {s} in the {p} of the frame?" for s in SHAPES for p in POSITIONS),
        " ".join(f"the {c} {s}" for c in COLORS for s in SHAPES),
        " ".join(f"the {c} number {n}" for c in COLORS for n in range(10)),
        " ".join(words), " ".join(f"{w}." for w in words),
        " ".join(f"{n}. {n}.{m}s, {n}{m}.{n}s," for n in range(10) for m in range(10)),
        tiny_corpus,
    ]
    return "\n".join(lines)


def build_processor():
    """SmolVLM2's processor and chat template with the demo tokenizer, one 96 px tile a frame."""
    from transformers import SmolVLMImageProcessor, SmolVLMProcessor, SmolVLMVideoProcessor
    from trl.chat_template_utils import smolvlm_chat_template

    from tpo.models import tiny

    tokenizer = tiny._tokenizer(smolvlm_chat_template, tiny.SMOLVLM_SPECIAL,
                                corpus=_corpus(tiny.CORPUS), vocab_size=VOCAB_SIZE)
    sizes = dict(size={"longest_edge": IMAGE_SIZE}, max_image_size={"longest_edge": IMAGE_SIZE})
    return SmolVLMProcessor(
        image_processor=SmolVLMImageProcessor(do_image_splitting=False, **sizes),
        video_processor=SmolVLMVideoProcessor(**sizes),
        tokenizer=tokenizer, chat_template=smolvlm_chat_template,
        image_seq_len=(IMAGE_SIZE // PATCH_SIZE // SCALE) ** 2,
    )


def build_model(processor, seed: int = 0):
    """The untrained demo architecture, a ``SmolVLMForConditionalGeneration`` (same seed,
    same initial weights)."""
    import torch
    from transformers import GenerationConfig, SmolVLMConfig, SmolVLMForConditionalGeneration

    tokenizer = processor.tokenizer
    ids = dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
               pad_token_id=tokenizer.pad_token_id)
    config = SmolVLMConfig(
        text_config=dict(model_type="llama", vocab_size=len(tokenizer), **TEXT, **ids),
        vision_config=VISION, scale_factor=SCALE, image_token_id=processor.image_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = SmolVLMForConditionalGeneration(config)
    model.generation_config = GenerationConfig(**ids)
    return model


# --- fast inputs for training ----------------------------------------------------------------


def pixels(frame: np.ndarray) -> np.ndarray:
    """(3, 96, 96) float32 pixel values of one (H, W, 3) uint8 frame, as the processor makes
    them (Lanczos resize of the longer side to 96, then to 96x96, scaled to [-1, 1]) in
    ~1/10 of its time. Training calls this; inference uses the real processor."""
    image = Image.fromarray(frame)
    w, h = image.size
    s = IMAGE_SIZE / max(w, h)
    image = image.resize((round(w * s), round(h * s)), Image.LANCZOS)
    image = image.resize((IMAGE_SIZE, IMAGE_SIZE), Image.LANCZOS)
    return (np.asarray(image, np.float32) / 127.5 - 1.0).transpose(2, 0, 1)


def image_tokens() -> int:
    """Image tokens a frame takes in the text (9: 6x6 patches merged 2x2)."""
    return (IMAGE_SIZE // PATCH_SIZE // SCALE) ** 2


def image_text(processor) -> str:
    """What the processor puts in place of each ``<image>``: the wrapped global image tokens."""
    tok = processor.tokenizer
    return (f"{tok.fake_image_token}{tok.global_image_token}"
            + tok.image_token * processor.image_seq_len + tok.fake_image_token)


# --- the model folder ----------------------------------------------------------------------------


def is_demo_model(path: str | Path) -> bool:
    """True when ``path`` is a complete demo model folder of this version."""
    try:
        meta = json.loads((Path(path) / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return meta.get("version") == DEMO_VERSION


def save_folder(model, processor, out_dir: str | Path, meta: dict) -> Path:
    """Save model + processor, then the marker (last: a folder with it is complete)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).unlink(missing_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    (out / MARKER).write_text(json.dumps({"version": DEMO_VERSION, **meta}, indent=2),
                              encoding="utf-8")
    return out


def ensure_demo_model(out_dir: str | Path, *, train: bool = False, seed: int = 0,
                      progress: Callable[[int, int, str], None] | None = None) -> Path:
    """The demo model folder at ``out_dir``, made if it is not there yet (or ``train``).

    Default: install the shipped weights (seconds). ``train=True`` (or no shipped weights):
    train from scratch with :func:`tpo.models.demo_train.train_demo_model`, reproducibly for a
    ``seed``; ``progress(step, steps, text)`` follows it. Returns the folder.
    """
    out = Path(out_dir).expanduser()
    if is_demo_model(out) and not train:
        return out
    _check_not_another_model(out)
    if train or not SHIPPED_WEIGHTS.is_file():
        from tpo.models.demo_train import train_recipe

        return train_recipe(out, seed, progress=progress)
    from safetensors.torch import load_file

    processor = build_processor()
    model = build_model(processor)
    state = load_file(str(SHIPPED_WEIGHTS))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or [k for k in missing if "lm_head" not in k]:
        raise RuntimeError(f"the shipped demo weights do not fit the model "
                           f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    info = json.loads(SHIPPED_WEIGHTS.with_suffix(".json").read_text(encoding="utf-8"))
    if progress:
        progress(1, 1, "installed the shipped weights")
    return save_folder(model.float(), processor, out, {"source": "shipped", **info})


def _check_not_another_model(out: Path) -> None:
    """ValueError when ``out`` holds a model that is not a demo model: never overwrite one.
    An empty folder or a demo model of any version is fine."""
    if (out / MARKER).is_file() or not (out / "config.json").is_file():
        return
    raise ValueError(f"{out} holds another model (or a demo model install that was cut "
                     "short): remove it, or give the demo model a folder of its own")


@job_kind("demo-model", gpu=False)
def run_job(ctx) -> dict:
    """The ``demo-model`` job kind (:mod:`tpo.jobs`): params ``{"out": folder}``; installs
    the shipped weights (or trains them, ``"train": true``)."""
    ctx.progress(0.0, "installing the offline demo model")

    def progress(step: int, steps: int, text: str) -> None:
        ctx.check_cancelled()
        ctx.progress(step / steps, text)

    path = ensure_demo_model(ctx.params["out"], train=bool(ctx.params.get("train")),
                             progress=progress)
    ctx.progress(1.0, f"demo model in {path}")
    return {"path": str(path)}
