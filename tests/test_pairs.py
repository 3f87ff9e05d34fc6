"""Pair generation with the tiny real model on real encoded videos: frame provenance of both
pair kinds, question sources, filtering, resumable runs."""

from __future__ import annotations

import random

import pytest
from media import make_video

from tpo import synth
from tpo.generate import generate
from tpo.library import ingest
from tpo.pairs import GenerationConfig, choose_segments, generate_for_video
from tpo.video import open_video
from tpo.vlm import VLM, ModelConfig

SMALL = dict(segment_min_s=3, segment_max_s=6, segment_frames=4, incomplete_frames=2, dense=8,
             sparse=2, caption_frames=2, overview_chunks=2, max_side=64)


@pytest.fixture(scope="module")
def model(tiny_smolvlm_dir):
    with VLM.load(ModelConfig(model=str(tiny_smolvlm_dir), max_new_tokens=8, batch_size=8)) as vlm:
        yield vlm


@pytest.fixture(scope="module")
def plain_clip(tmp_path_factory):
    """30 s at 4 fps without ground truth: questions come from the model."""
    return make_video(tmp_path_factory.mktemp("pairs") / "plain.mp4", duration_s=30, fps=4,
                      size=(64, 48))


@pytest.fixture(scope="module")
def known_clip(tmp_path_factory):
    """A synthetic video with two known events and their questions."""
    spec = synth.VideoSpec("known", 40, fps=4, width=64, height=48, events=(
        synth.shape_event(5, 9, "circle", "red", "top-left"),
        synth.number_event(25, 31, 7, "blue", "center")))
    path = tmp_path_factory.mktemp("pairs") / "known.mp4"
    truth = synth.render_video(spec, path)
    return path, truth


def test_localized_irrelevant_sides_never_overlap(model, plain_clip):
    config = GenerationConfig(localized=3, comprehensive=0, questions="model", **SMALL)
    rows = generate_for_video(model, str(plain_clip), config)
    assert [r["kind"] for r in rows] == ["localized"] * 3
    with open_video(plain_clip) as vid:
        all_times = set(vid.times.tolist())
    for r in rows:
        start, end = r["segment_start"], r["segment_end"]
        assert 3 <= end - start <= 6
        assert len(r["chosen_timestamps"]) == 4 and all(start <= t < end for t in r["chosen_timestamps"])
        assert len(r["rejected_timestamps"]) == 4
        assert all(t < start or t >= end for t in r["rejected_timestamps"])
        assert set(r["chosen_timestamps"]) | set(r["rejected_timestamps"]) <= all_times
        # The model wrote the question from its caption of the segment.
        assert "writer_prompt" in r["captions"] and r["captions"]["segment"] in r["captions"]["writer_prompt"]
        assert r["strategy"] == "irrelevant"
        assert r["status"] in ("pending", "filtered") and (r["status"] == "filtered") == bool(r["filter_reason"])
        assert r["generator"]["model"] == model.model_id and r["generator"]["config"]["seed"] == 0


def test_localized_incomplete_is_a_sparse_subset_of_the_segment(model, plain_clip):
    config = GenerationConfig(localized=2, comprehensive=0, strategy="incomplete", questions="model", **SMALL)
    for r in generate_for_video(model, str(plain_clip), config):
        assert r["strategy"] == "incomplete"
        assert len(r["rejected_timestamps"]) == 2
        assert set(r["rejected_timestamps"]) < set(r["chosen_timestamps"])


def test_comprehensive_dense_and_sparse(model, plain_clip):
    config = GenerationConfig(localized=0, comprehensive=2, questions="model", **SMALL)
    rows = generate_for_video(model, str(plain_clip), config)
    assert [r["kind"] for r in rows] == ["comprehensive"] * 2
    for r in rows:
        assert len(r["chosen_timestamps"]) == 8 and len(r["rejected_timestamps"]) == 2
        assert set(r["rejected_timestamps"]) <= set(r["chosen_timestamps"])
        assert r["segment_start"] is None
        assert "Part 1:" in r["captions"]["overview"] and "Part 2:" in r["captions"]["overview"]
        assert r["prompt"].startswith("The video lasts for 30.0 seconds, and 8 frames")


def test_ground_truth_questions_and_segments(model, known_clip):
    path, truth = known_clip
    config = GenerationConfig(localized=2, comprehensive=1, **SMALL)
    rows = generate_for_video(model, str(path), config, ground_truth=truth)
    loc = [r for r in rows if r["kind"] == "localized"]
    assert [r["question"] for r in loc] == [e["question"] for e in truth["events"]]
    for r, event in zip(loc, truth["events"]):
        assert r["segment_start"] <= event["start_s"] and r["segment_end"] >= event["end_s"]
        assert r["generator"]["question_source"] == "ground_truth"
        assert r["captions"]["reference"] == event["answer"]
    (comp,) = [r for r in rows if r["kind"] == "comprehensive"]
    assert comp["question"] == truth["questions"][0]["question"]


def test_writer_saying_none_is_filtered_with_reason(model, plain_clip):
    config = GenerationConfig(localized=2, comprehensive=1, questions="model", **SMALL)
    rows = generate_for_video(model, str(plain_clip), config, writer=lambda prompt: "None")
    assert [r["status"] for r in rows] == ["filtered"] * 3
    assert all(r["filter_reason"].startswith("no question") for r in rows)
    assert all(r["chosen"] == "" for r in rows)  # nothing was asked, nothing answered


def test_tiny_model_answers_are_cut_at_the_limit_and_filtered(model, known_clip):
    path, truth = known_clip
    config = GenerationConfig(localized=1, comprehensive=0, **SMALL)
    (row,) = generate_for_video(model, str(path), config, ground_truth=truth)
    # A random model never says end-of-sequence within 8 tokens (or says only unprintables).
    assert row["status"] == "filtered"
    assert row["filter_reason"].startswith(("truncated", "near-identical", "empty answer"))


def test_choose_segments_spreads_and_respects_lengths():
    config = GenerationConfig(segment_min_s=5, segment_max_s=30)
    segments = choose_segments(600, 5, config, random.Random(1))
    assert len(segments) == 5
    for i, (start, end) in enumerate(segments):
        assert 5 <= end - start <= 30 and 120 * i <= start and end <= 120 * (i + 1)
    assert choose_segments(12, 5, config, random.Random(1)).__len__() == 2  # 12 s fits two
    assert choose_segments(4, 5, config, random.Random(1)) == []


def test_run_is_resumable_and_force_redoes(store, model, plain_clip, known_clip):
    ingest(store, [plain_clip, known_clip[0]])
    config = GenerationConfig(localized=1, comprehensive=1, **SMALL)
    first = generate(store, model, config)
    assert sorted(first.generated) == [1, 2] and all(n == 2 for n in first.generated.values())
    pairs = store.list_pairs()
    assert len(pairs) == 4 and {p["run_key"] for p in pairs if p["video_id"] == 1}.__len__() == 1
    again = generate(store, model, config)
    assert again.generated == {} and set(again.skipped) == {1, 2}
    assert len(store.list_pairs()) == 4
    redo = generate(store, model, config, video_ids=[2], force=True)
    assert redo.generated == {2: 2} and len(store.list_pairs()) == 4
    other = generate(store, model, GenerationConfig(localized=1, comprehensive=0, seed=1, **SMALL),
                     video_ids=[1])
    assert other.generated == {1: 1} and len(store.list_pairs()) == 5


def test_unreadable_video_is_reported_not_raised(store, model, tmp_path, plain_clip):
    ingest(store, [plain_clip])
    bad = tmp_path / "gone.mp4"
    make_video(bad, duration_s=6, fps=4, size=(64, 48))
    ingest(store, [bad])
    bad.write_bytes(b"")  # the file broke after ingest
    report = generate(store, model, GenerationConfig(localized=1, comprehensive=0, **SMALL))
    assert 1 in report.generated and "empty file" in report.failed[2]
