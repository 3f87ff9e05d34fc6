"""The ``tpo`` command through click's runner, against real files and a real database."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from media import make_bad_files, make_video

from tpo.cli import cli


@pytest.fixture
def run(tmp_path, monkeypatch):
    """Invoke ``tpo --db <tmp db> ARGS``; returns the result (stdout in ``.stdout``)."""
    monkeypatch.setenv("TPO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TPO_DEMO_SCALE", "0.05")
    db = tmp_path / "cli.db"

    def invoke(*args: str):
        return CliRunner().invoke(cli, ["--db", str(db), *map(str, args)], catch_exceptions=False)

    return invoke


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """10 s at 10 fps: frame k shows at exactly k / 10 s."""
    return make_video(tmp_path_factory.mktemp("cli") / "clip.mp4", duration_s=10, fps=10)


def test_ingest_then_videos_json(run, clip, tmp_path):
    bad = make_bad_files(tmp_path / "bad")
    result = run("ingest", clip, bad["text"], bad["empty"])
    assert result.exit_code == 0
    assert "added 1, updated 0, skipped 0, failed 2" in result.stdout
    videos = json.loads(run("videos", "--json").stdout)
    assert [v["status"] for v in videos] == ["ready", "error", "error"]
    v = videos[0]
    assert {"id", "path", "duration_s", "fps", "n_frames", "width", "height", "status", "error"} <= set(v)
    assert (v["fps"], v["n_frames"], v["duration_s"]) == (10.0, 100, pytest.approx(10.0))
    assert videos[1]["error"]
    again = run("ingest", clip)
    assert "added 0, updated 0, skipped 1, failed 0" in again.stdout


def test_videos_on_empty_library_says_how_to_add(run):
    result = run("videos")
    assert result.exit_code == 0 and "tpo ingest" in result.stdout
    assert json.loads(run("videos", "--json").stdout) == []


def test_sample_by_path_and_by_id(run, clip):
    uniform = json.loads(run("sample", clip, "--frames", "5", "--json").stdout)["timestamps"]
    assert uniform == pytest.approx([0.9, 2.9, 4.9, 6.9, 8.9], abs=0.11)
    run("ingest", clip)
    by_id = json.loads(run("sample", "1", "--frames", "5", "--json").stdout)["timestamps"]
    assert by_id == uniform


def test_sample_segment_exclusion_and_sparse(run, clip):
    inside = json.loads(run("sample", clip, "--frames", "4", "--segment", "2", "4", "--json").stdout)
    outside = json.loads(run("sample", clip, "--frames", "8", "--segment", "2", "4",
                             "--exclude-segment", "--json").stdout)
    assert all(2 <= t < 4 for t in inside["timestamps"])
    assert len(outside["timestamps"]) == 8
    assert all(t < 2 or t >= 4 for t in outside["timestamps"])
    dense = json.loads(run("sample", clip, "--frames", "16", "--json").stdout)["timestamps"]
    sparse = json.loads(run("sample", clip, "--frames", "16", "--sparse", "4", "--json").stdout)
    assert len(sparse["timestamps"]) == 4 and set(sparse["timestamps"]) <= set(dense)


def test_sample_errors_are_clear(run, clip, tmp_path):
    bad = make_bad_files(tmp_path / "bad")
    runner_result = run("sample", bad["text"])
    assert runner_result.exit_code == 1
    assert str(bad["text"]) in runner_result.output
    missing = run("sample", "77")
    assert missing.exit_code == 1 and "no video with id 77" in missing.output
    usage = run("sample", clip, "--exclude-segment")
    assert usage.exit_code == 2 and "--exclude-segment needs --segment" in usage.output
    bad_segment = run("sample", clip, "--segment", "8", "3")
    assert bad_segment.exit_code == 1 and "segment" in bad_segment.output


def test_demo_builds_and_ingests(run):
    result = run("demo")
    assert result.exit_code == 0 and "added 5" in result.stdout
    names = [v["name"] for v in json.loads(run("videos", "--json").stdout)]
    assert "countdown.mp4" in names
