"""The offline tiny models: real architectures, real processors, loadable by the Auto classes."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from transformers import (
    AutoModelForCausalLM,
    AutoModelForImageTextToText,
    AutoProcessor,
    AutoTokenizer,
)
from trl.chat_template_utils import get_training_chat_template

from tpo.models.tiny import ARCHS, IMAGE_SIZE, build_tiny_model, build_tiny_text_model

# Placeholders the chat template writes per image, and what a frame expands to in the prompt.
PLACEHOLDER = {"smolvlm": "<image>", "qwen2vl": "<|vision_start|><|image_pad|><|vision_end|>"}
IMAGE_TOKEN = {"smolvlm": "<image>", "qwen2vl": "<|image_pad|>"}
TOKENS_PER_FRAME = 4  # (64 / 16)^2 patches, merged 2x2


@pytest.fixture(params=ARCHS)
def arch_dir(request):
    """(arch, folder) for each tiny architecture."""
    return request.param, request.getfixturevalue(f"tiny_{request.param}_dir")


def test_reloads_with_auto_classes_and_is_tiny(arch_dir):
    arch, folder = arch_dir
    model = AutoModelForImageTextToText.from_pretrained(folder)
    processor = AutoProcessor.from_pretrained(folder)
    names = {"smolvlm": ("SmolVLMForConditionalGeneration", "SmolVLMProcessor"),
             "qwen2vl": ("Qwen2VLForConditionalGeneration", "Qwen2VLProcessor")}
    assert (type(model).__name__, type(processor).__name__) == names[arch]
    assert sum(p.numel() for p in model.parameters()) < 2_000_000
    assert model.config.text_config.vocab_size == len(processor.tokenizer) <= 512
    assert model.generation_config.eos_token_id == processor.tokenizer.eos_token_id


def test_chat_template_renders_frames_as_image_tokens(arch_dir):
    arch, folder = arch_dir
    processor = AutoProcessor.from_pretrained(folder)
    conversation = [{"role": "user", "content": [{"type": "image"}, {"type": "image"},
                                                 {"type": "text", "text": "What happens?"}]}]
    text = processor.apply_chat_template(conversation, add_generation_prompt=True)
    assert text.count(PLACEHOLDER[arch]) == 2 and "What happens?" in text

    frame = Image.fromarray(np.full((48, 80, 3), 100, np.uint8))  # any size is resized
    inputs = processor(text=[text], images=[[frame, frame]], return_tensors="pt")
    tokens = processor.tokenizer.convert_ids_to_tokens(inputs["input_ids"][0])
    assert tokens.count(IMAGE_TOKEN[arch]) == 2 * TOKENS_PER_FRAME
    if arch == "smolvlm":
        assert inputs["pixel_values"].shape[-2:] == (IMAGE_SIZE, IMAGE_SIZE)


def test_chat_template_is_the_family_template_trl_knows(arch_dir):
    """TRL recognises it, so its training template (assistant masks) applies to the tiny model."""
    processor = AutoProcessor.from_pretrained(arch_dir[1])
    assert get_training_chat_template(processor) is not None


def test_same_seed_same_model(tmp_path):
    a = build_tiny_model(tmp_path / "a", "qwen2vl", seed=1)
    b = build_tiny_model(tmp_path / "b", "qwen2vl", seed=1)
    c = build_tiny_model(tmp_path / "c", "qwen2vl", seed=2)
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    assert (a / "model.safetensors").read_bytes() != (c / "model.safetensors").read_bytes()


def test_unknown_arch_is_refused(tmp_path):
    with pytest.raises(ValueError, match="smolvlm, qwen2vl"):
        build_tiny_model(tmp_path, "llava")


def test_text_model_is_a_chat_causal_lm(tmp_path):
    folder = build_tiny_text_model(tmp_path / "text")
    model = AutoModelForCausalLM.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    text = tokenizer.apply_chat_template([{"role": "user", "content": "Hello"}],
                                         tokenize=False, add_generation_prompt=True)
    assert "<|im_start|>user\nHello<|im_end|>" in text
    inputs = tokenizer(text, return_tensors="pt")
    output = model.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert output.shape[1] <= inputs["input_ids"].shape[1] + 3


def test_random_preset_has_smolvlm2_256m_real_size():
    """The preset's config and processor, checked without writing the ~1 GB of weights:
    the model is instantiated on the meta device (shapes only) to count its parameters.
    (build_random_model itself takes ~6 s and writes 1 GB; bench/generate_bench.py runs it.)"""
    import torch
    from transformers import SmolVLMForConditionalGeneration

    from tpo.models.tiny import RANDOM_PRESETS, _preset_config, _preset_processor

    preset = RANDOM_PRESETS["smolvlm2-256m"]
    processor = _preset_processor(preset)
    config = _preset_config(preset, processor)
    text, vision = config.text_config, config.vision_config
    assert (text.vocab_size, text.hidden_size, text.num_hidden_layers, text.num_attention_heads,
            text.num_key_value_heads, text.intermediate_size, text.max_position_embeddings) == (
        49280, 576, 30, 9, 3, 1536, 8192)
    assert (vision.hidden_size, vision.num_hidden_layers, vision.num_attention_heads,
            vision.intermediate_size, vision.patch_size, vision.image_size) == (
        768, 12, 12, 3072, 16, 512)
    assert config.scale_factor == 4 and not config.tie_word_embeddings
    with torch.device("meta"):
        model = SmolVLMForConditionalGeneration(config)
    assert 255e6 < sum(p.numel() for p in model.parameters()) < 258e6  # "256M"

    # A 320x180 frame becomes one 512x512 tile of 64 image tokens: (512 / 16 / 4)^2.
    text_in = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What?"}]}],
        add_generation_prompt=True)
    frame = Image.fromarray(np.zeros((180, 320, 3), np.uint8))
    inputs = processor(text=[text_in], images=[[frame]], return_tensors="pt")
    assert inputs["pixel_values"].shape[-2:] == (512, 512)
    assert (inputs["input_ids"] == processor.image_token_id).sum() == 64


def test_unknown_random_preset_is_refused(tmp_path):
    from tpo.models.tiny import build_random_model

    with pytest.raises(ValueError, match="smolvlm2-256m"):
        build_random_model(tmp_path, "llava-7b")
