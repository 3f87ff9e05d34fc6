"""``--backend auto|pyav|torchcodec|decord`` on the commands that read frames: one declaration
(:func:`tpo.cli.common.backend_option`), a backend that cannot run here is one line naming it
and the available ones, and the reader chosen is the one every video of the command - and of
the processes it starts - is decoded with (decord refuses an open-GOP video, PyAV reads it)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner
from media import make_video

from tpo.cli import cli
from tpo.evaluation import eval_results as er
from tpo.media import readers, video
from tpo.media.library import ingest

DECORD_REFUSES = "decord returns wrong frames after seeking in open-GOP streams"


def run(db, *args):
    return CliRunner().invoke(cli, ["--db", str(db), *args])


@pytest.mark.parametrize("command", [
    ["generate", "--all"],
    ["eval", "--model", "m", "--suite", "needle"],
    ["experiment", "--quick"],
    ["export", "out"],
])
def test_a_backend_not_installed_is_one_line_naming_the_available_ones(store, monkeypatch,
                                                                        command):
    monkeypatch.setattr(readers, "decord", None)  # as if decord were not installed
    result = run(store.path, *command, "--backend", "decord")
    assert result.exit_code == 1
    (line,) = result.output.strip().splitlines()
    assert line.startswith("Error: backend decord is not available here (decord is not "
                           "installed); available: auto, pyav")
    assert "decord" not in line.split("available:")[1]
    assert store.list_pairs() == [] and er.list_evals(store) == []  # nothing ran


def test_an_unknown_backend_is_refused_with_the_choices(store):
    result = run(store.path, "generate", "--all", "--backend", "opencv")
    assert result.exit_code == 2
    assert "'opencv' is not one of 'auto', 'pyav', 'torchcodec', 'decord'" in result.output


def test_available_backends_here():
    assert video.available_backends()[:2] == ["auto", "pyav"]
    assert set(video.available_backends()) <= set(video.BACKENDS)


@pytest.fixture
def open_gop_suite(tmp_path):
    """A local Video-MME layout whose one clip is HEVC with open GOPs (x265's default)."""
    root = tmp_path / "Video-MME"
    (root / "videomme").mkdir(parents=True)
    (root / "data").mkdir()
    make_video(root / "data" / "clip.mp4", duration_s=3, fps=4, size=(64, 48),
               codec="libx265", gop=4)
    rows = [{"video_id": "v1", "duration": "short", "domain": "Knowledge",
             "sub_category": "Science", "url": "https://www.youtube.com/watch?v=clip",
             "videoID": "clip", "question_id": f"clip-{n}", "task_type": "Counting Problem",
             "question": f"Question {n}?", "options": ["A. one", "B. two", "C. three", "D. four"],
             "answer": "B"} for n in range(2)]
    pd.DataFrame(rows).to_parquet(root / "videomme" / "test-00000-of-00001.parquet")
    return f"videomme:{root}"


def eval_errors(store, output):
    (stored,) = json.loads(output)
    return [item["meta"].get("error") for item in er.eval_items(store, stored["id"])]


@pytest.mark.parametrize("processes", ["1", "2"])
def test_eval_decodes_with_the_backend_asked_for(store, open_gop_suite, tiny_smolvlm_dir,
                                                 processes):
    """decord refuses the open-GOP clip (the question is an error, not a wrong answer) - in
    this process and in the two it starts; the default reader reads it."""
    args = ["eval", "--model", str(tiny_smolvlm_dir), "--suite", open_gop_suite, "--frames", "4",
            "--max-new-tokens", "2", "--num-processes", processes, "--json"]
    refused = run(store.path, *args, "--backend", "decord")
    assert refused.exit_code == 0, refused.output
    errors = eval_errors(store, refused.stdout)
    assert len(errors) == 2 and all(DECORD_REFUSES in (e or "") for e in errors)
    if processes == "1":
        read = run(store.path, *args)
        assert read.exit_code == 0, read.output
        assert eval_errors(store, read.stdout) == [None, None]


def test_generate_decodes_with_the_backend_asked_for(store, tmp_path, tiny_smolvlm_dir):
    clip = make_video(tmp_path / "hevc.mp4", duration_s=8, fps=4, size=(64, 48),
                      codec="libx265", gop=8)
    ingest(store, [clip])
    args = ["generate", "--all", "--model", str(tiny_smolvlm_dir), "--writer", "self",
            "--judge", "none", "--localized", "1", "--comprehensive", "0", "--dense", "8",
            "--sparse", "2", "--questions", "model", "--json"]
    refused = run(store.path, *args, "--backend", "decord")
    report = json.loads(refused.stdout)
    assert report["generated"] == {}
    (why,) = report["failed"].values()
    assert DECORD_REFUSES in why
    read = run(store.path, *args, "--backend", "pyav")
    assert read.exit_code == 0, read.output
    assert len(json.loads(read.stdout)["generated"]) == 1
