"""The offline demo model: its training data, its inputs, and that it really answers.

The shipped weights are installed once per session (seconds) and asked about clips it never
saw, through the same path every model takes (real H.264 files, tpo.media.video, tpo.models.vlm).
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from PIL import Image

from tpo.media import synth
from tpo.models import demo_data, demo_eval, demo_model, demo_train
from tpo.evaluation.mcq import parse_choice, same_words
from tpo.models.prompts import time_prompt
from tpo.models.vlm import VLM, ModelConfig


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory):
    return demo_model.ensure_demo_model(tmp_path_factory.mktemp("models") / "demo-smolvlm")


def test_render_frames_equal_the_encoded_frames_pixels():
    spec = synth.DEMO_SPECS[1]  # countdown: numbers at known times
    every = list(synth._frames(spec))
    times = [0.0, 5.0, 10.49, 59.9]
    for frame, t in zip(synth.render_frames(spec, times), times):
        assert np.array_equal(frame, every[int(t * spec.fps)])


def test_every_answer_is_in_the_sampled_frames():
    rng = random.Random(3)
    for _ in range(40):
        spec = demo_data.clip_spec(rng)
        times = demo_data.uniform_times(spec.duration_s, 4)
        seen = demo_data.visible(spec, times)
        for event in spec.events:
            shown = any(event.start_s <= int(t * spec.fps) / spec.fps < event.end_s for t in times)
            assert (event in seen.events) == shown
        frames = synth.render_frames(seen, times)
        for event in seen.events:  # the event's colour is really on screen
            colour = np.array(synth.COLORS[event.color])
            assert any((np.abs(f.astype(int) - colour).sum(-1) < 10).sum() > 50 for f in frames)


def test_examples_cover_every_task_and_question_type():
    rng = random.Random(0)
    tasks = {demo_data.sample_example(rng, n_frames=4).task for _ in range(300)}
    assert {"colour", "number", "count", "order", "caption", "mcq/colour", "mcq/count"} <= tasks
    mcq = demo_data.sample_example(random.Random(1), n_frames=4, task="mcq")
    assert mcq.answer in "ABCD" and mcq.question.endswith("The best answer is:")


def test_training_inputs_equal_what_the_processor_makes():
    processor = demo_model.build_processor()
    example = demo_data.sample_example(random.Random(5), n_frames=8)
    batch = demo_train.encode(processor, [example])
    user = [{"role": "user", "content": [{"type": "image"}] * 8 + [
        {"type": "text", "text": time_prompt(example.times, example.duration_s, example.question)}]}]
    text = processor.apply_chat_template(user, add_generation_prompt=True)
    real = processor(text=[text], images=[[Image.fromarray(f) for f in example.frames]],
                     return_tensors="pt")
    n = real["input_ids"].shape[1]
    assert torch.equal(real["input_ids"][0], batch["input_ids"][0, :n])
    assert (batch["labels"][0, :n] == -100).all()  # no loss on the prompt
    answer = processor.tokenizer.decode(batch["input_ids"][0, n:][batch["labels"][0, n:] != -100])
    assert answer.strip() == example.answer + "<end_of_utterance>"
    # the fast resize is the processor's up to rounding: at most 2 of 255 levels (pixel
    # values span [-1, 1], so a level is 2/255), and almost everywhere exact
    diff = (real["pixel_values"] - batch["pixel_values"]).abs()
    assert diff.max() <= 4 / 255 + 1e-6 and diff.mean() < 1e-3


def test_a_few_training_steps_give_a_loadable_folder(tmp_path):
    settings = demo_train.TrainSettings(steps=2, warmup=1, vision_steps=0, freeze_vision=False)
    out = demo_train.train_demo_model(tmp_path / "m", settings)
    assert demo_model.is_demo_model(out)
    assert not demo_model.is_demo_model(tmp_path)
    with VLM.load(ModelConfig(model=str(out), max_new_tokens=4)) as vlm:
        assert vlm.model.__class__.__name__ == "SmolVLMForConditionalGeneration"


def test_vision_pretraining_frames_and_a_few_steps(tmp_path):
    rng = random.Random(3)
    for _ in range(20):
        frame, labels = demo_data.sample_frame(rng)
        assert frame.dtype == np.uint8 and frame.shape[2] == 3
        assert all(0 <= x <= len(names) for x, names in zip(labels, demo_data.FRAME_LABELS))
    settings = demo_train.TrainSettings(steps=1, warmup=1, vision_steps=2, vision_batch=4,
                                        freeze_vision=True)
    out = demo_train.train_demo_model(tmp_path / "m", settings)
    assert demo_model.is_demo_model(out)


def test_installing_twice_reuses_the_folder(demo_dir):
    marker = demo_dir / demo_model.MARKER
    before = marker.stat().st_mtime_ns
    assert demo_model.ensure_demo_model(demo_dir) == demo_dir
    assert marker.stat().st_mtime_ns == before


def test_another_models_folder_is_never_overwritten(tiny_smolvlm_dir):
    config = (tiny_smolvlm_dir / "config.json").read_bytes()
    with pytest.raises(ValueError, match="holds another model"):
        demo_model.ensure_demo_model(tiny_smolvlm_dir)
    assert (tiny_smolvlm_dir / "config.json").read_bytes() == config


def test_the_demo_model_answers_unseen_single_event_clips(demo_dir, tmp_path):
    # What a localized pair's chosen side sees: a short clip around one event. Seeds from
    # the held-out range, rendered to H.264 and decoded like any library video.
    specs = [demo_data.clip_spec(random.Random(demo_eval.HELD_OUT_SEED + 900 + i), 15.0, 1)
             for i in range(10)]
    held_out = demo_eval.HeldOut("single", specs, 16)
    with VLM.load(ModelConfig(model=str(demo_dir), max_new_tokens=16, batch_size=8)) as vlm:
        result = demo_eval.evaluate_model(vlm, held_out, tmp_path)
    events = [k for k in ("free/colour", "free/number") if k in result]
    right = sum(result[k]["accuracy"] * result[k]["n"] for k in events)
    # Chance: 1 in 8 colours, 1 in 10 numbers; a random model never answers in the format.
    assert right >= 6, result


def test_free_form_grading_ignores_case_and_punctuation():
    assert same_words("red", "Red.")
    assert same_words("5, 4, 3", "5, 4, 3.")
    assert not same_words("The red circle.", "Red.")
    assert parse_choice("B", ["x", "y", "z", "w"]) == "B"


def test_open_answers_grade_the_demo_model_on_the_synthetic_suite(demo_dir, tmp_path):
    from tpo.evaluation.evaluate import EvalConfig, answer_items, summarize
    from tpo.evaluation.synthetic_suite import load_synthetic_suite

    for i in range(6):  # single-event clips: the colour or number question, and a count
        spec = demo_data.clip_spec(random.Random(demo_eval.HELD_OUT_SEED + 950 + i), 12.0, 1)
        synth.render_video(spec, tmp_path / f"clip{i}.mp4")
    items = load_synthetic_suite(tmp_path).items
    events = [item for item in items if item.task in ("colour", "number")]
    with VLM.load(ModelConfig(model=str(demo_dir), max_new_tokens=16, batch_size=8)) as vlm:
        records = answer_items(vlm, events, EvalConfig(suite=f"synthetic:{tmp_path}",
                                                       frames=12, answers="open"))
    assert [r["question"] for r in records] == [item.question for item in events]
    assert all("A." not in (r["response"] or "") for r in records)  # asked without options
    assert summarize(records)["accuracy"] >= 0.5, records
    with pytest.raises(ValueError, match="answers: input should be 'letter' or 'open'"):
        EvalConfig(answers="essay")
