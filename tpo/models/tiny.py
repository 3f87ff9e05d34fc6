"""Tiny, randomly initialised models of real video-LM architectures, built offline.

Machines that build and test TPO Studio have no GPU and no model hub, yet the project's code
paths (processor, chat template, ``generate``, DPO step, LoRA save/load) must run for real.
:func:`build_tiny_model` writes a folder that ``AutoModelForImageTextToText`` and
``AutoProcessor`` load like any hub checkpoint: the real classes
(``SmolVLMForConditionalGeneration`` / ``Qwen2VLForConditionalGeneration``) with the family's
real processor and chat template, only every dimension is tiny and the weights are random, so
it answers nonsense, fast, on a CPU.

Nothing is downloaded: the tokenizer is a byte-level BPE trained here on a built-in English
corpus plus every special token the processor needs, and the chat templates are the families'
own, as TRL stores them to recognise models (so TRL's training-template patches apply too).

Every frame is resized to 64x64 px and becomes 16 patches of 16 px, merged 2x2 into 4 image
tokens (plus 3 wrapper tokens for SmolVLM, 2 for Qwen2-VL): 16 frames take 96-112 tokens of
a 4096-token context. About 0.2M parameters, < 1 MB on disk.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    GenerationConfig,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen2VLConfig,
    Qwen2VLForConditionalGeneration,
    Qwen2VLImageProcessor,
    Qwen2VLProcessor,
    Qwen2VLVideoProcessor,
    SmolVLMConfig,
    SmolVLMForConditionalGeneration,
    SmolVLMImageProcessor,
    SmolVLMProcessor,
    SmolVLMVideoProcessor,
)
from trl.chat_template_utils import qwen2_5_vl_chat_template, smolvlm_chat_template

from tpo.jobs import job_kind

__all__ = ["ARCHS", "IMAGE_SIZE", "RANDOM_PRESETS", "build_random_model", "build_tiny_model",
           "build_tiny_text_model"]

ARCHS = ("smolvlm", "qwen2vl")
IMAGE_SIZE = 64  # px: side of the square every frame is resized to
PATCH_SIZE = 16  # px: vision patch, so a frame is (64 / 16)^2 = 16 patches
MERGE = 2  # SmolVLM pixel-shuffle scale factor / Qwen2-VL spatial merge: 2x2 patches -> 1 token
VOCAB_SIZE = 512  # 256 byte symbols + BPE merges + special tokens
COMMON_SPECIAL = ("bos_token", "eos_token", "pad_token", "unk_token")
# Text decoder of every tiny model: head_dim = 64 / 4 = 16.
TEXT = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=4096)
# Qwen2-VL's M-RoPE splits each head's 8 rotary frequencies into (time, height, width).
MROPE_SECTION = [2, 3, 3]  # sums to head_dim / 2
VISION = dict(width=32, heads=2, layers=1)

# Sentences in the register of the project's prompts (video questions, captions, answers), so
# common words become single tokens and prompts stay short.
CORPUS = """\
The video lasts for 12.5 seconds, and 8 frames are sampled from it.
These frames are located at 0.0s, 1.5s, 3.0s, 4.5s, 6.0s, 7.5s, 9.0s, 10.5s.
Please answer the following question related to this video.
Describe what happens in these frames. What does the man put in the oven after washing the tray?
He puts the tray of bread into the oven, then he closes the door and sets the timer.
A woman opens the fridge, takes out a bottle of milk and pours it into a glass.
How many times does the red ball bounce before it stops? It bounces three times.
What happens first, second and last? First a car arrives, then a dog runs across the road,
and at the end the light turns green. The person is walking, running, sitting or standing.
Which color is the square in the middle of the screen? The square is blue, then it turns yellow.
Summarize the video in one sentence. A cook prepares a meal in a small kitchen.
Why does the child laugh? Because the cat jumps onto the table and knocks over a cup.
Is the answer correct? Yes. No. None. The question is ambiguous. The answer is better.
You are a helpful assistant. User: Assistant: System:
0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 20 30 32 40 50 60 64 100 one two three four five
"""


def _tokenizer(chat_template: str, special: dict[str, str], corpus: str = CORPUS,
               vocab_size: int = VOCAB_SIZE) -> PreTrainedTokenizerFast:
    """Byte-level BPE trained on `corpus`, with `special` ({attribute: token}) as special tokens.

    Attributes other than bos/eos/pad/unk (e.g. "image_token") become tokenizer attributes,
    which is where the processors look for their placeholder tokens.
    """
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=list(dict.fromkeys(special.values())),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # any text stays encodable
        show_progress=False)
    bpe.train_from_iterator(corpus.splitlines(), trainer=trainer)
    common = {k: v for k, v in special.items() if k in COMMON_SPECIAL}
    named = {k: v for k, v in special.items() if k not in COMMON_SPECIAL}
    return PreTrainedTokenizerFast(tokenizer_object=bpe, chat_template=chat_template,
                                   extra_special_tokens=named, **common)


# Special tokens as SmolVLM2's tokenizer: a turn ends with <end_of_utterance>, <|im_end|> pads.
SMOLVLM_SPECIAL = {
    "bos_token": "<|im_start|>", "eos_token": "<end_of_utterance>",
    "pad_token": "<|im_end|>", "unk_token": "<|endoftext|>",
    "end_of_utterance_token": "<end_of_utterance>", "image_token": "<image>",
    "fake_image_token": "<fake_token_around_image>", "global_image_token": "<global-img>",
    "video_token": "<video>",
}


def _smolvlm_processor() -> SmolVLMProcessor:
    tokenizer = _tokenizer(smolvlm_chat_template, SMOLVLM_SPECIAL)
    # No splitting into tiles: each frame is one IMAGE_SIZE x IMAGE_SIZE "global" image.
    sizes = dict(size={"longest_edge": IMAGE_SIZE}, max_image_size={"longest_edge": IMAGE_SIZE})
    return SmolVLMProcessor(
        image_processor=SmolVLMImageProcessor(do_image_splitting=False, **sizes),
        video_processor=SmolVLMVideoProcessor(**sizes),
        tokenizer=tokenizer, chat_template=smolvlm_chat_template,
        image_seq_len=(IMAGE_SIZE // PATCH_SIZE // MERGE) ** 2,  # tokens per frame
    )


def _qwen2vl_processor() -> Qwen2VLProcessor:
    tokenizer = _tokenizer(qwen2_5_vl_chat_template, {  # Qwen2-VL ships this very template
        "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "im_start_token": "<|im_start|>",
        "vision_start_token": "<|vision_start|>", "vision_end_token": "<|vision_end|>",
        "image_token": "<|image_pad|>", "video_token": "<|video_pad|>",
    })
    # min = max pixels: every frame is resized to IMAGE_SIZE^2 px (sides multiples of 32)
    sizes = dict(min_pixels=IMAGE_SIZE**2, max_pixels=IMAGE_SIZE**2, patch_size=PATCH_SIZE,
                 merge_size=MERGE)
    return Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(**sizes),
        video_processor=Qwen2VLVideoProcessor(**sizes),
        tokenizer=tokenizer, chat_template=qwen2_5_vl_chat_template,
    )


def _token_ids(tokenizer: PreTrainedTokenizerFast) -> dict:
    return dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id)


def _smolvlm_model(processor: SmolVLMProcessor) -> SmolVLMForConditionalGeneration:
    tokenizer = processor.tokenizer
    return SmolVLMForConditionalGeneration(SmolVLMConfig(
        text_config=dict(model_type="llama", vocab_size=len(tokenizer), **TEXT,
                         **_token_ids(tokenizer)),
        vision_config=dict(hidden_size=VISION["width"], intermediate_size=2 * VISION["width"],
                           num_hidden_layers=VISION["layers"], num_attention_heads=VISION["heads"],
                           image_size=IMAGE_SIZE, patch_size=PATCH_SIZE),
        scale_factor=MERGE, image_token_id=processor.image_token_id,
        pad_token_id=tokenizer.pad_token_id,
    ))


def _qwen2vl_model(processor: Qwen2VLProcessor) -> Qwen2VLForConditionalGeneration:
    tokenizer = processor.tokenizer
    rope = {"rope_type": "default", "rope_theta": 1e6, "mrope_section": MROPE_SECTION}
    return Qwen2VLForConditionalGeneration(Qwen2VLConfig(
        text_config=dict(vocab_size=len(tokenizer), rope_parameters=rope, **TEXT,
                         **_token_ids(tokenizer)),
        vision_config=dict(depth=VISION["layers"], embed_dim=VISION["width"],
                           num_heads=VISION["heads"], mlp_ratio=2,
                           hidden_size=TEXT["hidden_size"],  # output: into the text model
                           patch_size=PATCH_SIZE, spatial_merge_size=MERGE, temporal_patch_size=2),
        image_token_id=processor.image_token_id, video_token_id=processor.video_token_id,
        vision_start_token_id=tokenizer.vision_start_token_id,
        vision_end_token_id=tokenizer.vision_end_token_id,
    ))


def _save(model: torch.nn.Module, processor, out_dir: str | Path) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = getattr(processor, "tokenizer", processor)
    # generate() stops at the family's end-of-turn token and pads with its pad token
    model.generation_config = GenerationConfig(**_token_ids(tokenizer))
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def build_tiny_model(out_dir: str | Path, arch: str = "smolvlm", seed: int = 0) -> Path:
    """Build a tiny random video-LM with its processor into `out_dir`; returns the folder.

    arch: "smolvlm" (SmolVLM2 layout) or "qwen2vl" (Qwen2-VL). The same seed gives the same
    weights (the tokenizer never varies). The folder loads with ``AutoModelForImageTextToText``
    and ``AutoProcessor``; files already in it are overwritten.
    """
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {', '.join(ARCHS)}, got {arch!r}")
    processor = _smolvlm_processor() if arch == "smolvlm" else _qwen2vl_processor()
    with torch.random.fork_rng(devices=[]):  # seed the init without touching the caller's RNG
        torch.manual_seed(seed)
        model = _smolvlm_model(processor) if arch == "smolvlm" else _qwen2vl_model(processor)
    return _save(model, processor, out_dir)


def build_tiny_text_model(out_dir: str | Path, seed: int = 0) -> Path:
    """A tiny random text-only chat model (Qwen2 causal LM, ChatML template) into `out_dir`.

    For code paths that take a local text model (question writing, judging); it loads with
    ``AutoModelForCausalLM`` and ``AutoTokenizer``, not as an image-text-to-text model.
    """
    tokenizer = _qwen2vl_processor().tokenizer
    config = Qwen2Config(vocab_size=len(tokenizer), **TEXT, **_token_ids(tokenizer))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(config)
    return _save(model, tokenizer, out_dir)


# Real-size presets for build_random_model: the published checkpoint's dimensions, random weights.
RANDOM_PRESETS = {
    # HuggingFaceTB/SmolVLM2-256M-Video-Instruct, dimensions as in the published SmolVLM-256M
    # configs it derives from: a SmolLM2-135M text model with SmolVLM's 49280-token vocabulary
    # and an untied output head, and SigLIP base patch-16/512 as vision encoder. A 512x512
    # frame is (512 / 16)^2 = 1024 patches, merged 4x4 by the pixel shuffle into 64 tokens.
    "smolvlm2-256m": dict(
        text=dict(vocab_size=49280, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                  num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=8192,
                  rms_norm_eps=1e-5, rope_parameters={"rope_type": "default", "rope_theta": 1e5}),
        vision=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                    num_attention_heads=12, image_size=512, patch_size=16),
        scale_factor=4,
    ),
    # HuggingFaceTB/SmolVLM2-2.2B-Instruct: a SmolLM2-1.7B text model (2048 wide, 24 layers,
    # 32 heads without grouped KV, rope theta 130k, 16k context) with the same vocabulary, and
    # SigLIP so400m patch-14/384 as vision encoder. A 384x384 frame is 27 x 27 = 729 patches,
    # merged 3x3 into 81 tokens. ~2.2B parameters (4.5 GB in bf16).
    "smolvlm2-2.2b": dict(
        text=dict(vocab_size=49280, hidden_size=2048, intermediate_size=8192, num_hidden_layers=24,
                  num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=16384,
                  rms_norm_eps=1e-5, rope_parameters={"rope_type": "default", "rope_theta": 1.3e5}),
        vision=dict(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27,
                    num_attention_heads=16, image_size=384, patch_size=14),
        scale_factor=3,
    ),
}


def _preset_processor(preset: dict) -> SmolVLMProcessor:
    """The offline SmolVLM processor at the preset's frame size: one tile per frame."""
    side = preset["vision"]["image_size"]  # px: every frame is resized to side x side
    sizes = dict(size={"longest_edge": side}, max_image_size={"longest_edge": side})
    return SmolVLMProcessor(
        image_processor=SmolVLMImageProcessor(do_image_splitting=False, **sizes),
        video_processor=SmolVLMVideoProcessor(**sizes),
        tokenizer=_smolvlm_processor().tokenizer,  # the tiny model's offline BPE and specials
        chat_template=smolvlm_chat_template,
        image_seq_len=(side // preset["vision"]["patch_size"] // preset["scale_factor"]) ** 2,
    )


def _preset_config(preset: dict, processor: SmolVLMProcessor) -> SmolVLMConfig:
    """The preset's model config; token ids come from `processor`'s (small) tokenizer, while
    vocab_size stays the real one, so the embedding and output head have their real size."""
    tokenizer = processor.tokenizer
    return SmolVLMConfig(
        text_config=dict(model_type="llama", **preset["text"], **_token_ids(tokenizer)),
        vision_config=preset["vision"], scale_factor=preset["scale_factor"],
        image_token_id=processor.image_token_id, pad_token_id=tokenizer.pad_token_id,
    )


def build_random_model(out_dir: str | Path, preset: str = "smolvlm2-256m", seed: int = 0,
                       device: str | None = None, dtype: torch.dtype | None = None) -> Path:
    """Build a randomly initialised model of a real checkpoint's size into `out_dir`.

    preset: a key of RANDOM_PRESETS ("smolvlm2-256m": SmolVLM2-256M-Video-Instruct, ~256M
    parameters, ~1 GB of float32 on disk). For measuring speed and memory at the real size
    without the hub: it answers nonsense. The tokenizer is the tiny model's (a few hundred
    tokens; ids past it decode to nothing), the processor resizes every frame to the preset's
    image size without splitting it into tiles. Same seed, same weights. Loads like a
    checkpoint (``tpo.models.vlm.VLM.load``, ``AutoModelForImageTextToText``); files already in
    `out_dir` are overwritten. ``device`` ("cuda") initialises the weights there (minutes
    faster for the 2.2B preset), ``dtype`` (torch.bfloat16) halves what is written; the same
    seed gives other weights on another device.
    """
    if preset not in RANDOM_PRESETS:
        raise ValueError(f"preset must be one of {', '.join(RANDOM_PRESETS)}, got {preset!r}")
    processor = _preset_processor(RANDOM_PRESETS[preset])
    config = _preset_config(RANDOM_PRESETS[preset], processor)
    with torch.random.fork_rng(devices=[]):  # seed the init without touching the caller's RNG
        torch.manual_seed(seed)
        if device is not None and device.startswith("cuda"):
            torch.cuda.manual_seed_all(seed)
        default_dtype = torch.get_default_dtype()
        try:
            torch.set_default_dtype(dtype or default_dtype)
            with torch.device(device or "cpu"):
                model = SmolVLMForConditionalGeneration(config)
        finally:
            torch.set_default_dtype(default_dtype)
    return _save(model, processor, out_dir)


@job_kind("tiny-model", gpu=False)
def run_job(ctx) -> dict:
    """The ``tiny-model`` job kind (:mod:`tpo.jobs`): params ``{"out": folder, "arch": ...}``."""
    arch = ctx.params.get("arch", "smolvlm")
    ctx.progress(0.0, f"building a tiny {arch} model")
    path = build_tiny_model(ctx.params["out"], arch=arch, seed=ctx.params.get("seed", 0))
    ctx.progress(1.0, f"built {path}")
    return {"path": str(path)}
