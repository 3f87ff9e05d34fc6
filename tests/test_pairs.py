"""Pair generation with the tiny real model on real encoded videos: frame provenance of both
pair kinds, question sources, filtering, resumable runs, the question writer and judge
recorded, a judge server dying mid-run."""

from __future__ import annotations

import hashlib
import json
import random

import pytest
from chat_server import MODEL_ID, ChatServer
from media import make_video

from tpo.media import synth
from tpo.models import textlm
from tpo.generation.filters import FilterConfig
from tpo.generation.generate import generate
from tpo.media.library import ingest
from tpo.generation.pairs import (PAIR_FORMAT_VERSION, GenerationConfig, choose_segments, generate_for_video,
                       run_key)
from tpo.media.video import open_video
from tpo.models.vlm import VLM, ModelConfig

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


def test_only_ground_truth_questions_means_fewer_pairs_not_written_ones(model, known_clip):
    path, truth = known_clip
    asked = len(truth["questions"]) + 3
    strict = GenerationConfig(localized=5, comprehensive=asked, questions="ground_truth", **SMALL)
    written = []
    rows = generate_for_video(model, str(path), strict, ground_truth=truth,
                              writer=lambda prompt: written.append(prompt) or "Why?")
    assert not written
    assert all(r["generator"]["question_source"] == "ground_truth" for r in rows)
    assert sum(r["kind"] == "comprehensive" for r in rows) == len(truth["questions"])
    assert sum(r["kind"] == "localized" for r in rows) == len(truth["events"])
    # "auto" fills the rest with written questions
    auto = GenerationConfig(localized=1, comprehensive=asked, questions="auto", **SMALL)
    rows = generate_for_video(model, str(path), auto, ground_truth=truth,
                              writer=lambda prompt: written.append(prompt) or "Why?")
    assert len(written) == 3 and sum(r["kind"] == "comprehensive" for r in rows) == asked


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


ALL_YES = "CORRECT: YES\nBETTER: YES\nCLEAR: YES"


@pytest.fixture(scope="module")
def tiny_writer(tmp_path_factory):
    """A real local text model (tiny, random) as question writer."""
    from tpo.models.tiny import build_tiny_text_model

    folder = build_tiny_text_model(tmp_path_factory.mktemp("models") / "tiny-text")
    with textlm.load(str(folder), role="question writer", max_new_tokens=6) as writer:
        yield writer


def test_writer_and_judge_are_recorded_with_each_pair(model, plain_clip, known_clip, tiny_writer):
    config = GenerationConfig(localized=2, comprehensive=1, questions="model", **SMALL)
    with ChatServer(lambda prompt: ALL_YES) as server, \
            textlm.load(server.url, role="judge") as judge:
        rows = generate_for_video(model, str(plain_clip), config, writer=tiny_writer, judge=judge,
                                  filter_config=FilterConfig(drop_truncated=False))
    assert len(rows) == 3
    for r in rows:
        assert r["generator"]["writer"] == tiny_writer.name == str(tiny_writer.source)
        assert r["generator"]["judge"] == f"{server.url}#{MODEL_ID}"
    # The judge saw exactly the pairs the rules kept, and passed them all.
    judged = [r for r in rows if r["filter_reason"] is None]
    assert len(server.prompts) == len(judged) and all(r["status"] == "pending" for r in judged)
    assert all(r["question"] in p for r, p in zip(judged, server.prompts))
    # Ground-truth questions had no writer; no judge is recorded as none.
    path, truth = known_clip
    truth_rows = generate_for_video(model, str(path), GenerationConfig(localized=2, comprehensive=1,
                                                                       **SMALL),
                                    ground_truth=truth, writer=tiny_writer)
    assert [r["generator"]["writer"] for r in truth_rows] == [None] * 3
    assert [r["generator"]["judge"] for r in truth_rows] == [None] * 3
    # Without a writer the video-LM writes, recorded as "self".
    (own,) = generate_for_video(model, str(plain_clip), GenerationConfig(
        localized=1, comprehensive=0, questions="model", **SMALL))
    assert own["generator"]["writer"] == "self" and own["generator"]["judge"] is None


def test_run_key_tells_writers_and_judges_apart():
    config = GenerationConfig()
    key = run_key("sha", "m", None, config)
    assert key == run_key("sha", "m", None, config, writer="self", judge=None)
    others = {run_key("sha", "m", None, config, writer="smollm2"),
              run_key("sha", "m", None, config, writer="http://h:1#x"),
              run_key("sha", "m", None, config, judge="smollm2"),
              run_key("sha", "m", None, config, writer="smollm2", judge="smollm2")}
    assert len(others) == 4 and key not in others


@pytest.mark.parametrize("change", [{"max_new_tokens": 64}, {"max_side": 224}, {"seed": 1},
                                    {"questions": "model"}, {"overview_chunks": 2}])
def test_run_key_hashes_the_whole_generation_config(change):
    """Any one setting changed (the token limit too) is another run, never "already
    generated"; the same settings give the same key."""
    config = GenerationConfig()
    key = run_key("sha", "m", None, config)
    assert key == run_key("sha", "m", None, GenerationConfig(**config.model_dump()))
    assert key != run_key("sha", "m", None, GenerationConfig(**{**config.model_dump(), **change}))
    # The key covers every field the config declares, so a new field cannot be forgotten.
    fields = {"video": "sha", "model": "m", "adapter": None, "config": config.model_dump(),
              "writer": "self", "judge": None, "filters": FilterConfig().model_dump(),
              "format": PAIR_FORMAT_VERSION}
    assert key == hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:24]


@pytest.mark.parametrize("change", [{"drop_truncated": False}, {"min_answer_chars": 5},
                                    {"near_duplicate_ratio": 0.8}, {"restatement_ratio": 0.7}])
def test_run_key_hashes_the_rule_filter_thresholds(change):
    """Other filter thresholds keep or drop other pairs: another run, not "already generated";
    None and the default thresholds are the same run."""
    config = GenerationConfig()
    key = run_key("sha", "m", None, config)
    assert key == run_key("sha", "m", None, config, filter_config=FilterConfig())
    assert key != run_key("sha", "m", None, config, filter_config=FilterConfig(**change))


def test_a_judge_server_dying_mid_run_stops_it_and_keeps_earlier_videos(store, model, plain_clip,
                                                                        tmp_path):
    # Videos without ground truth: the tiny model's answers to its own questions pass the rules
    # (with truncation allowed), so the judge is asked on both videos.
    other = make_video(tmp_path / "other.mp4", duration_s=24, fps=4, size=(64, 48))
    ingest(store, [plain_clip, other])
    server = ChatServer(lambda prompt: ALL_YES)
    judge = textlm.load(server.url, role="judge")

    def progress(fraction: float, text: str) -> None:
        if text.startswith("video 2/2"):  # the server goes away as the second video starts
            server.close()

    config = GenerationConfig(localized=1, comprehensive=1, **SMALL)
    report = generate(store, model, config, judge=judge, progress=progress,
                      filter_config=FilterConfig(drop_truncated=False))
    judge.close()
    assert report.generated == {1: 2} and server.prompts, "video 1 was judged and stored"
    assert report.stopped and report.failed == {2: report.stopped}
    assert f"The judge '{server.url}#{MODEL_ID}' cannot be used: cannot connect" in report.stopped
    assert "stopped: The judge" in report.summary()
    stored = store.list_pairs()
    assert len(stored) == 2 and {p["video_id"] for p in stored} == {1}
    assert all(p["generator"]["judge"] == f"{server.url}#{MODEL_ID}" for p in stored)
