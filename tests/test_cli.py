"""The ``tpo`` command through click's runner, against real files and a real database."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from chat_server import closed_port_url
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


PAIR_FIELDS = {"id", "video_id", "kind", "strategy", "question", "chosen", "rejected",
               "segment_start", "segment_end", "chosen_timestamps", "rejected_timestamps",
               "status", "filter_reason"}


def test_tiny_model_generate_pairs_restore(run, tmp_path):
    model = tmp_path / "tiny"
    assert run("tiny-model", model).exit_code == 0 and (model / "config.json").is_file()
    clip = make_video(tmp_path / "clip.mp4", duration_s=12, fps=4, size=(64, 48))
    run("ingest", clip)
    args = ["generate", "--model", model, "--all", "--localized", "2", "--comprehensive", "1",
            "--dense", "8", "--sparse", "2", "--max-new-tokens", "16", "--writer", "self"]
    result = run(*args)
    assert result.exit_code == 0, result.output
    assert "1 video generated: 3 pairs" in result.stdout
    pairs = json.loads(run("pairs", "--json").stdout)
    assert len(pairs) == 3 and PAIR_FIELDS <= set(pairs[0])
    localized = [p for p in pairs if p["kind"] == "localized"]
    for p in localized:
        assert all(p["segment_start"] <= t < p["segment_end"] for t in p["chosen_timestamps"])
    # Same settings again: nothing new; the run is resumable.
    assert "0 videos generated" in run(*args).stdout
    filtered = [p["id"] for p in pairs if p["status"] == "filtered"]
    assert filtered, "the random model's answers run to the token limit"
    assert f"pair {filtered[0]}: filtered -> pending" in run("restore", filtered[0]).stdout
    assert json.loads(run("pairs", "--status", "pending", "--json").stdout)[0]["id"] == filtered[0]


def test_generate_errors_are_clear(run, tmp_path):
    usage = run("generate", "--localized", "1")
    assert usage.exit_code == 2 and "--video ID" in usage.output
    missing_video = run("generate", "--video", "9", "--model", tmp_path)
    assert missing_video.exit_code == 1 and "no video with id 9" in missing_video.output
    clip = make_video(tmp_path / "clip.mp4", duration_s=2, fps=4, size=(64, 48))
    run("ingest", clip)
    missing = run("generate", "--all", "--model", tmp_path / "nope")
    assert missing.exit_code == 1
    assert "Cannot load model" in missing.output and "tpo demo-model" in missing.output
    # Writer and judge are checked before any model loads: one line, no traceback.
    down = closed_port_url()
    for args, message in [
            (["--judge", down], f"Error: The judge '{down}' cannot be used: cannot connect to"),
            (["--writer", down], f"Error: The question writer '{down}' cannot be used"),
            (["--judge", "self"], "Error: The judge 'self' cannot be used: the video-LM does not"),
            (["--writer", tmp_path / "nope.gguf"], "there is no such GGUF file")]:
        result = run("generate", "--all", "--model", tmp_path / "nope", *args)
        assert result.exit_code == 1 and message in result.output, result.output
        assert "Traceback" not in result.output and "Cannot load model" not in result.output


def test_generate_with_a_server_writer_and_judge(run, tmp_path, tiny_smolvlm_dir):
    """--writer and --judge reach the run: the server writes every question, and a second
    run that adds a judge is another run (not skipped as already done)."""
    from chat_server import ChatServer

    run("ingest", make_video(tmp_path / "clip.mp4", duration_s=12, fps=4, size=(64, 48)))
    args = ["generate", "--model", tiny_smolvlm_dir, "--all", "--localized", "1",
            "--comprehensive", "1", "--dense", "8", "--sparse", "2", "--max-new-tokens", "8"]
    with ChatServer(lambda prompt: "CORRECT: NO" if "Answer A" in prompt else "Which shape?") as s:
        first = run(*args, "--writer", s.url)
        assert first.exit_code == 0 and "1 video generated: 2 pairs" in first.stdout, first.output
        judged = run(*args, "--writer", s.url, "--judge", f"{s.url}#judge", "--json")
    assert judged.exit_code == 0 and json.loads(judged.stdout)["generated"] == {"1": 2}
    questions = [p for p in s.prompts if "Answer A" not in p]
    assert len(questions) == 4  # two per run: the judge run was not skipped as already done
    pairs = json.loads(run("pairs", "--json").stdout)
    assert {p["question"] for p in pairs} == {"Which shape?"}


def test_review_actions_and_conflict(run, tmp_path):
    from tpo.store import Store

    db = tmp_path / "cli.db"
    run("videos")  # creates the database
    store = Store(db)
    video_id = store.add_video({"path": "/v/a.mp4", "name": "a.mp4", "sha256": "a" * 64,
                                "status": "ready"})
    (pair_id,) = store.save_generation(video_id, "k", [{
        "kind": "localized", "strategy": "irrelevant", "question": "Q?", "chosen": "yes",
        "rejected": "no", "chosen_timestamps": [1.0], "rejected_timestamps": [5.0],
        "status": "pending"}], params={}, seconds=0)
    edited = run("review", pair_id, "--edit-chosen", "Yes, a red one.", "--user", "ana", "--json")
    assert edited.exit_code == 0, edited.output
    view = json.loads(edited.stdout)
    assert view["chosen"] == "Yes, a red one." and view["version"] == 2
    assert "swap -> pending (version 3)" in run("review", pair_id, "--swap").stdout
    stale = run("review", pair_id, "--accept", "--version", "2", "--user", "bo")
    assert stale.exit_code == 1 and "was changed by" in stale.output and "now version 3" in stale.output
    assert "accept -> accepted (version 4)" in run("review", pair_id, "--accept", "--note", "ok").stdout
    assert run("review", pair_id).exit_code == 2
    assert [r["user"] for r in store.reviews(pair_id)][0] == "ana"


def accepted_library(run, tmp_path):
    """Through the CLI only: the tiny model, one clip, two generated pairs, all accepted.
    Returns the model folder."""
    model = tmp_path / "tiny"
    run("tiny-model", model)
    run("ingest", make_video(tmp_path / "clip.mp4", duration_s=12, fps=4, size=(64, 48)))
    run("generate", "--model", model, "--all", "--localized", "1", "--comprehensive", "1",
        "--dense", "8", "--sparse", "2", "--max-new-tokens", "8", "--writer", "self")
    for p in json.loads(run("pairs", "--json").stdout):
        if p["status"] == "filtered":
            run("restore", p["id"])
        run("review", p["id"], "--accept")
    return model


def test_export_import_round_trip_and_bad_file(run, tmp_path):
    from datasets import load_dataset

    accepted_library(run, tmp_path)
    out = tmp_path / "export"
    result = run("export", out, "--frames", "4")
    assert result.exit_code == 0, result.output
    assert "exported 2 pairs" in result.stdout
    ds = load_dataset(str(out), split="train")
    assert len(ds) == 2 and len(ds[0]["images"]) == len(ds[0]["frame_times"]) == 4

    tpo_json = tmp_path / "tpo.json"
    assert run("export", tmp_path / "tpo-export", "--format", "tpo-json").exit_code == 0
    (tmp_path / "tpo-export" / "tpo_pairs.json").rename(tpo_json)
    again = run("import", tpo_json)
    assert again.exit_code == 0 and "imported 2 pairs" in again.stdout
    assert "already imported" in run("import", tpo_json).stdout

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1}\nnot json\n')
    failed = run("import", bad)
    assert failed.exit_code == 1 and f"{bad}:1:" in failed.output and f"{bad}:2:" in failed.output
    assert "nothing imported" in failed.output
    assert len(json.loads(run("pairs", "--json").stdout)) == 4


def test_train_from_store_registers_a_model(run, tmp_path):
    from tpo.store import Store

    model = accepted_library(run, tmp_path)
    out = tmp_path / "run"
    result = run("train", "--model", model, "--from-store", "--output", out, "--max-steps", "2",
                 "--max-frames", "4")
    assert result.exit_code == 0, result.output
    assert "trained 2 steps on 1 process(es)" in result.stdout and "registered as model #1" in result.stdout
    assert (out / "adapter_config.json").is_file() and (out / "command.txt").is_file()
    (row,) = Store(tmp_path / "cli.db").db["models"].rows
    assert row["base"] == str(model) and row["adapter_path"] == str(out) and row["job_id"]
    assert run("train", "--model", model, "--output", out).exit_code == 2  # no data given


# -- eval and models ---------------------------------------------------------------------

NEEDLE_ARGS = ("--suite", "needle", "--needle-lengths", "10,20", "--needle-depths", "0,1",
               "--frames", "4", "--max-new-tokens", "4")


def test_eval_needle_prints_a_table_and_writes_a_heatmap(run, tmp_path, tiny_smolvlm_dir):
    from PIL import Image

    result = run("eval", "--model", tiny_smolvlm_dir, *NEEDLE_ARGS)
    assert result.exit_code == 0, result.output
    header, first = result.stdout.splitlines()[:2]
    assert "model" in header and "accuracy %" in header and "10 s %" in header
    assert "tiny-smolvlm" in first and "needle" in first
    heatmaps = list((tmp_path / "data" / "evals").glob("*.png"))
    assert len(heatmaps) == 1
    assert f"heatmap (tiny-smolvlm): {heatmaps[0]}" in result.stdout
    with Image.open(heatmaps[0]) as image:
        assert image.format == "PNG"

    as_json = run("eval", "--model", tiny_smolvlm_dir, *NEEDLE_ARGS, "--json")
    assert as_json.exit_code == 0, as_json.output
    (stored,) = json.loads(as_json.stdout)
    assert stored["model"] == "tiny-smolvlm" and stored["n_items"] == 4
    assert 0 <= stored["accuracy"] <= 1
    assert stored["accuracy"] == pytest.approx(stored["n_correct"] / 4)
    assert stored["id"] == 2  # both runs are stored

    listed = run("evals")
    assert listed.exit_code == 0 and listed.stdout.count("tiny-smolvlm") == 2
    assert [e["id"] for e in json.loads(run("evals", "--suite", "needle", "--json").stdout)] == [2, 1]
    assert run("evals", "--suite", "mlvu").stdout.startswith("no evaluations yet")
    one = run("evals", "2")
    assert one.exit_code == 0, one.output
    assert one.stdout.startswith(f"eval #2: tiny-smolvlm on needle, 4 frames: {stored['n_correct']}/4")
    assert "What colour" in one.stdout or "Which number" in one.stdout
    detail = json.loads(run("evals", "2", "--json").stdout)
    assert len(detail["items"]) == 4 and {i["answer"] for i in detail["items"]} <= set("ABCD")
    missing = run("evals", "99")
    assert missing.exit_code == 1 and "no evaluation 99" in missing.output
    # the same model twice: the same answers (greedy), nothing changes
    both = run("evals", "1", "2")
    assert both.exit_code == 0, both.output
    assert "first: #1 tiny-smolvlm   second: #2 tiny-smolvlm   (4 shared questions" in both.stdout
    assert "only the first right: 0 · only the second right: 0 · McNemar exact p = 1" in both.stdout
    assert json.loads(run("evals", "1", "2", "--json").stdout)["overall"][0]["change"] == 0
    assert run("evals", "1", "2", "3").exit_code == 2


def test_eval_errors_are_clear(run, tmp_path, tiny_smolvlm_dir):
    missing = tmp_path / "no-such-benchmark"
    result = run("eval", "--model", tiny_smolvlm_dir, "--suite", f"videomme:{missing}")
    assert result.exit_code == 1
    assert "does not exist" in result.output and str(missing) in result.output
    assert "Traceback" not in result.output
    bogus = run("eval", "--model", tiny_smolvlm_dir, "--suite", "bogus")
    assert bogus.exit_code == 2 and "unknown suite 'bogus'" in bogus.output
    no_path = run("eval", "--model", tiny_smolvlm_dir, "--suite", "mlvu")
    assert no_path.exit_code == 2 and "needs a path" in no_path.output
    bad_lengths = run("eval", "--model", tiny_smolvlm_dir, "--suite", "needle",
                      "--needle-lengths", "10,x")
    assert bad_lengths.exit_code == 2 and "--needle-lengths" in bad_lengths.output
    bad_depths = run("eval", "--model", tiny_smolvlm_dir, "--suite", "needle",
                     "--needle-depths", "0,3")
    assert bad_depths.exit_code == 2 and "depths" in bad_depths.output
    unknown_model = run("eval", "--model", "#4", "--suite", "needle")
    assert unknown_model.exit_code == 2 and "no registered model #4" in unknown_model.output
    no_model = run("eval", "--model", tmp_path / "nope", *NEEDLE_ARGS)
    assert no_model.exit_code == 1 and "Cannot load model" in no_model.output
    assert json.loads(run("models", "--json").stdout) == []  # nothing was registered


def test_models_lists_registered_runs(run, tmp_path):
    from tpo.store import Store, now

    empty = run("models")
    assert empty.exit_code == 0 and "no registered models yet" in empty.stdout
    assert json.loads(run("models", "--json").stdout) == []
    Store(tmp_path / "cli.db").db["models"].insert({
        "name": "run-1", "base": "base/model", "adapter_path": str(tmp_path / "run-1"),
        "created_at": now()})
    listed = run("models")
    assert listed.exit_code == 0
    assert f"#1  run-1  base base/model  ({tmp_path / 'run-1'})" in listed.stdout
    (row,) = json.loads(run("models", "--json").stdout)
    assert (row["id"], row["name"], row["base"]) == (1, "run-1", "base/model")


def test_eval_on_a_local_videomme_layout_reports_missing_videos(run, tmp_path, tiny_smolvlm_dir):
    import pandas as pd

    root = tmp_path / "vmme"
    (root / "data").mkdir(parents=True)
    make_video(root / "data" / "clipA.mp4", duration_s=2, fps=4, size=(64, 48))
    rows = [{"videoID": video, "duration": duration, "question_id": f"{video}-1",
             "task_type": "Counting Problem", "question": "How many?",
             "options": ["A. one", "B. two", "C. three", "D. four"], "answer": "B"}
            for video, duration in (("clipA", "short"), ("absent", "long"))]
    pd.DataFrame(rows).to_json(root / "annotations.json", orient="records")
    result = run("eval", "--model", tiny_smolvlm_dir, "--suite", f"videomme:{root}",
                 "--frames", "2", "--max-new-tokens", "2", "--json")
    assert result.exit_code == 0, result.output
    (stored,) = json.loads(result.stdout)
    assert stored["suite"] == "videomme" and stored["n_items"] == 1
    assert list(stored["summary"]["by_duration"]) == ["short"]
    assert [m["item_id"] for m in stored["summary"]["missing"]] == ["absent-1"]
    table = run("eval", "--model", tiny_smolvlm_dir, "--suite", f"videomme:{root}",
                "--frames", "2", "--max-new-tokens", "2")
    assert table.exit_code == 0 and "short %" in table.stdout
    assert "1 question(s) not asked, their video file is missing" in table.stderr


def test_leaderboard_from_votes(run, tmp_path):
    from tpo.store import Store, now

    assert "no votes yet" in run("leaderboard").stdout
    store = Store(tmp_path / "cli.db")
    video = store.add_video({"path": str(tmp_path / "v.mp4"), "name": "v.mp4", "sha256": "x",
                             "status": "ready", "added_at": now()})
    with store.transaction() as db:
        for k, vote in enumerate(["a", "a", "b", "tie"]):
            # the same two models, in both A/B orders: "base" wins 2 of 3 decided + a tie
            a, b = ("base", "tuned") if k % 2 == 0 else ("tuned", "base")
            cid = db["comparisons"].insert({"video_id": video, "question": "q?", "model_a": a,
                                            "model_b": b, "status": "done",
                                            "created_at": now()}).last_pk
            db["votes"].insert({"comparison_id": cid, "user": "u", "vote": vote, "at": now()})
    out = run("leaderboard")
    assert out.exit_code == 0
    # k=0 a: base wins; k=1 a: tuned wins; k=2 b: tuned wins; k=3 tie -> base 1 W, 2 L, 1 T
    assert "base vs tuned: win rate 38% [" in out.stdout and "(1 won, 2 lost, 1 ties, 0 both bad)" in out.stdout
    (row,) = json.loads(run("leaderboard", "--json").stdout)
    assert (row["model"], row["wins"], row["losses"], row["ties"]) == ("base", 1, 2, 1)
    assert row["win_rate"] == 1.5 / 4
