"""Generation sharded over two processes under ``accelerate launch`` (gloo on the CPU): every
video is generated exactly once, by one rank, into the shared store; a rerun resumes (skips
what is done); the CLI and the job both take ``--num-processes``; a rank that cannot load its
model gives one clear message."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from media import make_video

from tpo import jobs
from tpo.cli import cli
from tpo.generation.generate import GenerationRequest
from tpo.generation.pairs import GenerationConfig
from tpo.generation.shard import PROGRESS_PREFIX, ShardError, launch, progress_events, shard
from tpo.media.library import ingest

SMALL = GenerationConfig(localized=1, comprehensive=0, segment_min_s=3, segment_max_s=5,
                         segment_frames=4, dense=8, sparse=2, caption_frames=2, max_side=64,
                         questions="model")


@pytest.fixture
def library(store, tmp_path):
    clips = [make_video(tmp_path / f"clip{k}.mp4", duration_s=10 + k, fps=4, size=(64, 48))
             for k in range(3)]
    ingest(store, clips)
    return store


def test_shard_gives_every_video_to_exactly_one_rank():
    ids = list(range(1, 8))
    parts = [shard(ids, rank, 3) for rank in range(3)]
    assert sorted(i for part in parts for i in part) == ids
    assert parts[0] == [1, 4, 7]


def test_progress_lines_of_two_ranks_on_one_line_are_both_read():
    a = PROGRESS_PREFIX + json.dumps({"rank": 0, "fraction": 0.5, "text": "video 1/2"})
    b = PROGRESS_PREFIX + json.dumps({"rank": 1, "fraction": 1.0, "text": "done"})
    assert [e["rank"] for e in progress_events(a + b + "\n")] == [0, 1]
    assert progress_events(a[:30] + "\n") == [] and progress_events("Loading weights\n") == []


def test_two_processes_generate_every_video_once_and_resume(library, tiny_smolvlm_dir):
    request = GenerationRequest(model=str(tiny_smolvlm_dir), writer="self", config=SMALL)
    seen = []
    report = launch(library, request, 2, progress=lambda f, text: seen.append(text))
    videos = [v["id"] for v in library.list_videos()]
    assert sorted(report.generated) == videos and report.failed == {}
    pairs = library.list_pairs()
    assert sorted(p["video_id"] for p in pairs) == videos  # one localized pair per video
    assert {p["id"] for p in pairs} == set(report.pair_ids)
    assert any(text.startswith("rank 0:") for text in seen), seen
    assert any(text.startswith("rank 1:") for text in seen), seen
    again = launch(library, request, 2)  # the same request: every video is skipped
    assert again.generated == {} and sorted(again.skipped) == videos
    assert len(library.list_pairs()) == len(pairs)


def test_a_model_that_cannot_load_is_one_clear_error(library, tmp_path):
    missing = tmp_path / "no-model"
    request = GenerationRequest(model=str(missing), writer="self", config=SMALL)
    with pytest.raises(ShardError, match="Cannot load model"):
        launch(library, request, 2)
    assert library.list_pairs() == []


def test_cli_takes_num_processes(library, tiny_smolvlm_dir):
    result = CliRunner().invoke(cli, [
        "--db", str(library.path), "generate", "--all", "--model", str(tiny_smolvlm_dir),
        "--num-processes", "2", "--writer", "self", "--localized", "1", "--comprehensive", "0",
        "--dense", "8", "--sparse", "2", "--questions", "model", "--json"])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["generated"]) == 3


def test_a_generate_job_takes_num_processes(library, settings, tiny_smolvlm_dir):
    params = GenerationRequest(model=str(tiny_smolvlm_dir), writer="self", config=SMALL,
                               num_processes=2).model_dump()
    job_id = jobs.submit(library, "generate", params, log_dir=settings.log_dir)
    row = jobs.wait(library, job_id, timeout_s=300)
    assert row["status"] == "succeeded", jobs.log_tail(row)
    assert "3 videos generated" in row["output"]["summary"]
