"""Generation as a background job: a real worker process, the tiny model, a real store, and
question writers / judges behind real (local) OpenAI-style HTTP servers."""

from __future__ import annotations

import pytest
from chat_server import MODEL_ID, ChatServer, closed_port_url
from media import make_video

from tpo import jobs
from tpo.generation.generate import job_params
from tpo.media.library import ingest
from tpo.generation.pairs import GenerationConfig

SMALL = GenerationConfig(localized=1, comprehensive=1, segment_min_s=3, segment_max_s=5,
                         segment_frames=4, dense=8, sparse=2, caption_frames=2, max_side=64)


@pytest.fixture
def library(store, tmp_path):
    ingest(store, [make_video(tmp_path / "clip.mp4", duration_s=12, fps=4, size=(64, 48))])
    return store


def test_generate_job_stores_pairs_and_reports(library, settings, tiny_smolvlm_dir):
    params = job_params(str(tiny_smolvlm_dir), SMALL, writer="self")
    job_id = jobs.submit(library, "generate", params, log_dir=settings.log_dir)
    row = jobs.wait(library, job_id, timeout_s=300)
    assert row["status"] == "succeeded", jobs.log_tail(row)
    assert row["progress"] == 1.0
    assert "1 video generated: 2 pairs" in row["output"]["summary"]
    stored = library.list_pairs()
    assert sorted(p["kind"] for p in stored) == ["comprehensive", "localized"]
    assert {p["run_key"] for p in stored}.__len__() == 1


def test_generate_job_with_missing_model_fails_with_the_reason(library, settings, tmp_path):
    missing = tmp_path / "no-such-model"
    job_id = jobs.submit(library, "generate", job_params(str(missing), SMALL),
                         log_dir=settings.log_dir)
    row = jobs.wait(library, job_id, timeout_s=300)
    assert row["status"] == "failed"
    assert "Cannot load model" in row["error"] and "tpo demo-model" in row["error"]
    assert library.list_pairs() == []


def test_tiny_model_job_builds_a_loadable_model(store, settings, tmp_path):
    out = tmp_path / "models" / "tiny"
    row = jobs.wait(store, jobs.submit(store, "tiny-model", {"out": str(out)},
                                       log_dir=settings.log_dir), timeout_s=300)
    assert row["status"] == "succeeded", jobs.log_tail(row)
    assert (out / "config.json").is_file() and row["output"]["path"] == str(out)


def test_generate_job_with_a_judge_runs_the_judge_checks(library, settings, tiny_smolvlm_dir):
    """The Library panel's judge field reaches the job: pairs the rules keep go to the judge,
    whose (random model's) unreadable verdict drops them, with that reason kept."""
    params = job_params(str(tiny_smolvlm_dir), SMALL, drop_truncated=False, writer="self",
                        judge=str(tiny_smolvlm_dir))
    assert params["judge"] == str(tiny_smolvlm_dir)
    row = jobs.wait(library, jobs.submit(library, "generate", params, log_dir=settings.log_dir),
                    timeout_s=300)
    assert row["status"] == "succeeded", jobs.log_tail(row)
    stored = library.list_pairs()
    assert len(stored) == 2 and {p["status"] for p in stored} == {"filtered"}
    assert all(p["filter_reason"].startswith("judge: ") for p in stored), \
        [p["filter_reason"] for p in stored]
    assert all(p["generator"]["judge"] == str(tiny_smolvlm_dir) for p in stored)
    assert all(p["generator"]["writer"] == "self" for p in stored)


def test_job_params_default_to_the_smollm2_writer_and_no_judge():
    params = job_params("m", SMALL)
    assert params["writer"] == "smollm2" and params["judge"] is None


def test_generate_job_with_a_server_writer_records_it(library, settings, tiny_smolvlm_dir):
    with ChatServer(lambda prompt: "What shape is shown?") as server:
        params = job_params(str(tiny_smolvlm_dir), SMALL, writer=f"{server.url}/v1")
        row = jobs.wait(library, jobs.submit(library, "generate", params, log_dir=settings.log_dir),
                        timeout_s=300)
    assert row["status"] == "succeeded", jobs.log_tail(row)
    stored = library.list_pairs()
    assert len(stored) == 2 and len(server.prompts) == 2
    assert {p["question"] for p in stored} == {"What shape is shown?"}
    assert all(p["generator"]["writer"] == f"{server.url}#{MODEL_ID}" for p in stored)


def test_generate_job_with_an_unreachable_judge_fails_naming_it(library, settings,
                                                                tiny_smolvlm_dir):
    url = closed_port_url()
    params = job_params(str(tiny_smolvlm_dir), SMALL, writer="self", judge=url)
    row = jobs.wait(library, jobs.submit(library, "generate", params, log_dir=settings.log_dir),
                    timeout_s=300)
    assert row["status"] == "failed"
    assert row["error"].startswith(
        f"TextModelError: The judge '{url}' cannot be used: cannot connect")
    assert library.list_pairs() == []
