"""The video-LM layer on the tiny real models: loading, batched answers, captions, chat, LoRA."""

from __future__ import annotations

import pickle
import shutil
import time

import pytest
import torch
from media import make_video
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForImageTextToText, AutoProcessor

from tpo.models.tiny import ARCHS, IMAGE_SIZE, build_tiny_text_model
from tpo.media.video import probe, sample
from tpo.models.vlm import ModelConfig, ModelLoadError, VideoQuestion, VLM, time_prompt

MAX_NEW_TOKENS = 8


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """(path, duration in s) of a 4 s, 10 fps, 64x48 H.264 clip."""
    path = make_video(tmp_path_factory.mktemp("video") / "clip.mp4", duration_s=4, fps=10)
    return path, probe(path).duration_s


@pytest.fixture(scope="module", params=ARCHS)
def vlm(request):
    folder = request.getfixturevalue(f"tiny_{request.param}_dir")
    return VLM.load(ModelConfig(model=str(folder), max_new_tokens=MAX_NEW_TOKENS, batch_size=2))


def test_time_prompt_states_duration_frame_times_and_question():
    text = time_prompt([0.0, 1.25, 12.349], 20.04, "What falls?")
    assert text == (
        "The video lasts for 20.0 seconds, and 3 frames are sampled from it. These frames are "
        "located at 0.0s, 1.2s, 12.3s. Please answer the following question related to this "
        "video.\nWhat falls?")


def test_config_is_validated():
    with pytest.raises(ValueError, match="dtype"):
        ModelConfig(dtype="int8")
    with pytest.raises(ValueError, match="batch_size"):
        ModelConfig(batch_size=0)


def test_load_resolves_device_and_dtype(vlm):
    assert vlm.device == "cpu" and vlm.dtype == torch.float32  # no GPU on the test machines
    assert not vlm.model.training
    assert vlm.processor.tokenizer.padding_side == "left"


def test_answer_batches_items_with_different_frame_counts(vlm, clip):
    path, duration = clip
    items = [VideoQuestion(sample(path, 4), "What happens?", duration),
             VideoQuestion(sample(path, 8), "What happens at the end?", duration),
             VideoQuestion(sample(path, 4, segment=(1.0, 2.0)), "What moves?", duration)]
    answers = vlm.answer(items)  # batch_size 2: two chunks, the first left-padded
    assert len(answers) == 3 and all(isinstance(a, str) for a in answers)
    assert vlm.answer(items) == answers  # greedy and seeded: reproducible
    assert vlm.answer(items[:1]) == answers[:1]  # left padding leaves the answer as it was
    assert vlm.answer([]) == []


def test_answer_needs_decoded_frames(vlm, clip):
    path, duration = clip
    with pytest.raises(ValueError, match="decode"):
        vlm.answer([VideoQuestion(sample(path, 4, decode=False), "What?", duration)])


def test_max_side_downscales_frames_before_the_processor(tiny_smolvlm_dir, clip):
    path, duration = clip
    vlm = VLM.load(ModelConfig(model=str(tiny_smolvlm_dir), max_side=16, max_new_tokens=2))
    frames = sample(path, 2)
    assert all(max(image.size) == 16 for image in vlm._images(frames))
    assert isinstance(vlm.caption(frames, duration), str)


def test_frames_are_never_split_into_tiles(tiny_smolvlm_dir, tmp_path):
    folder = shutil.copytree(tiny_smolvlm_dir, tmp_path / "splitting")
    processor = AutoProcessor.from_pretrained(folder)
    processor.image_processor.do_image_splitting = True  # as SmolVLM2 ships: tiles + global view
    processor.image_processor.size = {"longest_edge": 4 * IMAGE_SIZE}
    processor.save_pretrained(folder)
    vlm = VLM.load(ModelConfig(model=str(folder)))
    assert vlm.processor.image_processor.do_image_splitting is False


def test_caption_and_text_chat(vlm, clip):
    path, duration = clip
    assert isinstance(vlm.caption(sample(path, 4), duration), str)
    assert isinstance(vlm.chat("Write one question about a cook."), str)
    messages = [{"role": "system", "content": "You are a judge."},
                {"role": "user", "content": [{"type": "text", "text": "Is it correct?"}]}]
    assert isinstance(vlm.chat(messages, max_new_tokens=2), str)


def _text_logits(vlm: VLM) -> torch.Tensor:
    inputs = vlm.processor(text=["The man opens the oven."], return_tensors="pt")
    with torch.inference_mode():
        return vlm.model(**inputs).logits


def test_lora_adapter_changes_the_model(tiny_smolvlm_dir, tmp_path):
    base_model = AutoModelForImageTextToText.from_pretrained(tiny_smolvlm_dir)
    lora = get_peft_model(base_model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    torch.manual_seed(0)
    with torch.no_grad():  # a fresh LoRA is the identity (B = 0): make it matter
        for name, param in lora.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.5)
    lora.save_pretrained(tmp_path / "adapter")

    base = VLM.load(ModelConfig(model=str(tiny_smolvlm_dir)))
    tuned = VLM.load(ModelConfig(model=str(tiny_smolvlm_dir), adapter=str(tmp_path / "adapter")))
    assert isinstance(tuned.model, PeftModel)
    assert not torch.allclose(_text_logits(base), _text_logits(tuned), atol=1e-4)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_cuda_without_a_gpu_is_a_load_error(tiny_smolvlm_dir):
    with pytest.raises(ModelLoadError, match="'cuda' is not available"):
        VLM.load(ModelConfig(model=str(tiny_smolvlm_dir), device="cuda"))


def test_missing_adapter_names_model_and_adapter(tiny_smolvlm_dir, tmp_path):
    with pytest.raises(ModelLoadError) as err:
        VLM.load(ModelConfig(model=str(tiny_smolvlm_dir), adapter=str(tmp_path / "nope")))
    assert str(tmp_path / "nope") in str(err.value) and "adapter_config.json" in str(err.value)


def _load_error(model: str) -> str:
    start = time.monotonic()
    with pytest.raises(ModelLoadError) as err:
        VLM.load(ModelConfig(model=model))
    assert time.monotonic() - start < 5  # fails fast, never waits on the network
    message = str(err.value)
    assert repr(model) in message and "tpo demo-model" in message
    assert str(pickle.loads(pickle.dumps(err.value))) == message  # crosses job processes
    return message


@pytest.mark.parametrize("relative", [False, True])
def test_missing_folder_fails_fast(tmp_path, monkeypatch, relative):
    monkeypatch.chdir(tmp_path)
    model = "./absent" if relative else str(tmp_path / "models" / "absent")
    assert "no such folder" in _load_error(model)


def test_folder_without_a_model_fails(tmp_path):
    (tmp_path / "notes.txt").write_text("not a model")
    assert "no config.json" in _load_error(str(tmp_path))


def test_text_only_model_is_refused(tmp_path):
    folder = build_tiny_text_model(tmp_path / "text")
    assert "not an image-text-to-text" in _load_error(str(folder))


def test_hub_id_offline_fails_fast(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    message = _load_error("nobody-here/no-such-video-model")
    assert "no such folder, it is not in the local Hugging Face cache" in message
    assert "HF_HUB_OFFLINE" in message
