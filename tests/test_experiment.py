"""`tpo experiment` for real: the tiny random model through the whole loop (render, ingest,
generate, accept, export, DPO+SFT with TRL, evaluate, report) on a few short synthetic
videos, interrupted once and resumed; the train / held-out split checked in the store and
the training set; and the `synthetic` evaluation suite read from a folder of rendered videos.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import datasets
import pytest
from click.testing import CliRunner

from tpo.evaluation import eval_results as er
from tpo.media import synth
from tpo.cli import cli
from tpo.evaluation.evaluate import EvalConfig, load_suite
from tpo.evaluation.experiment import (HELDOUT_SEED_BASE, STATE_FILE, TRAIN_SEED_BASE, ExperimentConfig,
                            ExperimentError, ExperimentInterrupted, Reporter, run_experiment,
                            video_specs)
from tpo.media.library import file_sha256
from tpo.evaluation.mcq import LETTERS
from tpo.store import Store
from tpo.evaluation.synthetic_suite import length_label, load_synthetic_suite

# A loop that runs in about a minute on 2 CPU cores with the tiny model: 2 + 2 short videos
# at 1 fps, 8 frames, 2 + 2 pairs a video, 2 optimizer steps, a 2 x 2 needle grid. The tiny
# model's answers run to the token limit, so truncated answers are kept (else none is left).
TINY = dict(train_videos=2, train_lengths_s=(20, 30), heldout_videos=2, heldout_lengths_s=(20, 40),
            event_every_s=10, event_min_s=3, event_max_s=6, frames=8, localized=2,
            comprehensive=2, max_new_tokens=12, drop_truncated=False, learning_rate=1e-3,
            max_steps=2, needle_lengths_s=(10, 20), needle_depths=(0, 1))
TINY_ARGS = ["--train-videos", "2", "--train-lengths", "20,30", "--heldout-videos", "2",
             "--heldout-lengths", "20,40", "--event-every-s", "10", "--event-min-s", "3",
             "--event-max-s", "6", "--frames", "8", "--localized", "2", "--comprehensive", "2",
             "--max-new-tokens", "12", "--keep-truncated", "--lr", "1e-3", "--max-steps", "2",
             "--needle-lengths", "10,20", "--needle-depths", "0,1"]


class _Recorder(Reporter):
    """Remembers which stages ran and which were resumed; can raise Ctrl-C mid-stage."""

    def __init__(self, interrupt_when: str | None = None):
        self.ran, self.resumed, self.interrupt_when = [], [], interrupt_when

    def stage_started(self, stage, index, total, resumed):
        (self.resumed if resumed else self.ran).append(stage.name)

    def progress(self, fraction, text):
        if self.interrupt_when and self.interrupt_when in text:
            raise KeyboardInterrupt


def _invoke(db: Path, *args) -> object:
    return CliRunner().invoke(cli, ["--db", str(db), "experiment", *map(str, args)])


@pytest.fixture(scope="module")
def loop(tmp_path_factory, tiny_smolvlm_dir):
    """The loop run twice: Ctrl-C during generation (after the first training video), then
    the same experiment resumed by the CLI with two ablations added."""
    root = tmp_path_factory.mktemp("experiment")
    db, out = root / "tpo.db", root / "exp"
    config = ExperimentConfig(model=str(tiny_smolvlm_dir), out_dir=str(out), **TINY)
    store = Store(db)
    first = _Recorder(interrupt_when="video 2/2")
    with pytest.raises(ExperimentInterrupted) as interrupted:
        run_experiment(config, store, root / "data", reporter=first)
    state_after_interrupt = json.loads((out / STATE_FILE).read_text())
    generations_after_interrupt = store.db.execute("SELECT count(*) FROM generations").fetchone()[0]
    store.close()
    result = _invoke(db, "--model", tiny_smolvlm_dir, "--out", out, *TINY_ARGS,
                     "--ablations", "localized,sft")
    return SimpleNamespace(root=root, db=db, out=out, config=config, first=first,
                           interrupted=interrupted.value,
                           state_after_interrupt=state_after_interrupt,
                           generations_after_interrupt=generations_after_interrupt, result=result,
                           report=json.loads((out / "report.json").read_text()))


def test_interrupt_resumes_from_the_last_finished_stage(loop):
    assert str(loop.interrupted) == ("interrupted during generate pairs; run the same command "
                                     "again to resume")
    assert list(loop.state_after_interrupt["stages"]) == ["model", "render", "ingest"]
    assert loop.generations_after_interrupt == 1  # the first video was stored before Ctrl-C
    assert loop.result.exit_code == 0, loop.result.output
    for stage in ("base model", "render videos", "ingest training videos"):
        assert f"{stage}" in loop.result.output and "done earlier" in loop.result.output
    store = Store(loop.db)
    # generation skipped the video it had finished: 2 runs, 2 + 2 pairs each, never 3 runs
    assert store.db.execute("SELECT count(*) FROM generations").fetchone()[0] == 2
    assert len(store.list_pairs()) == 2 * (TINY["localized"] + TINY["comprehensive"])
    # run again: everything is done, only the report is written; no new evaluation
    evals = len(er.list_evals(store))
    again = _invoke(loop.db, "--model", loop.config.model, "--out", loop.out, *TINY_ARGS,
                    "--ablations", "localized,sft")
    assert again.exit_code == 0, again.output
    assert "done earlier" in again.output and len(er.list_evals(store)) == evals


def test_report_has_both_models_accuracy_and_p_values(loop):
    report = loop.report
    rows = {r["variant"]: r for r in report["results"]}
    assert set(rows) == {"base", "tpo", "localized", "sft"}
    for row in rows.values():
        for suite in ("needle", "synthetic"):
            assert row["suites"][suite]["n"] > 0
            assert 0 <= row["suites"][suite]["accuracy %"] <= 100
    needle_n = len(TINY["needle_lengths_s"]) * len(TINY["needle_depths"])
    assert rows["base"]["suites"]["needle"]["n"] == needle_n
    for variant in ("tpo", "localized", "sft"):
        for key in ("needle", "synthetic", "pooled"):
            assert 0 <= rows[variant]["vs_base"][key]["p"] <= 1
    assert rows["localized"]["variant"] == "localized"
    assert report["training"]["localized"]["by_kind"].keys() == {"localized"}
    assert report["training"]["sft"]["settings"]["dpo_weight"] == 0
    pairs = report["pairs"]
    assert pairs["localized"]["generated"] + pairs["comprehensive"]["generated"] == 8
    assert {s["stage"] for s in report["stages"]} >= {"generate", "train:tpo", "eval:base:needle"}
    assert all(s["seconds"] >= 0 for s in report["stages"])
    md = (loop.out / "report.md").read_text()
    assert "| model | needle | synthetic | both | p needle | p synthetic | p pooled |" in md
    assert "![base](needle_base.png)" in md and (loop.out / "needle_base.png").is_file()
    assert (loop.out / "needle_tpo.png").read_bytes()[:4] == b"\x89PNG"
    assert "train-1000000-20s" in md and "heldout-2000001-40s" in md
    # the evaluations are in the store (the app's Evaluate view), one per model and suite
    store = Store(loop.db)
    suites = sorted(e["suite"] for e in er.list_evals(store))
    assert suites == ["needle"] * 4 + ["synthetic"] * 4
    assert {m["name"] for m in store.list_models()} == {"tpo-tpo", "tpo-localized", "tpo-sft"}


def test_heldout_videos_never_reach_the_library_or_the_training_set(loop):
    store = Store(loop.db)
    heldout = sorted((loop.out / "heldout").glob("*.mp4"))
    assert len(heldout) == 2
    library = store.list_videos()
    assert len(library) == 2 and all("/train/" in v["path"] for v in library)
    shas = {file_sha256(p) for p in heldout}
    assert not shas & {v["sha256"] for v in library}
    rows = datasets.load_dataset(str(loop.out / "dataset"), split="train",
                                 cache_dir=str(loop.root / "hf"))
    state = json.loads((loop.out / STATE_FILE).read_text())
    assert sorted(rows["pair_id"]) == state["stages"]["accept"]["outputs"]["pair_ids"]
    assert not shas & set(rows["video_sha256"])
    assert not {str(p.resolve()) for p in heldout} & set(rows["video"])
    # what was trained on is the model's own answer, never the ground truth it was asked for
    for row in rows:
        pair = store.get_pair(row["pair_id"])
        assert row["chosen"][0]["content"][0]["text"] == pair["chosen"]
        assert "captions" not in row
    # every pair was accepted by "experiment", in the audit trail
    accepted = store.list_pairs(status="accepted")
    assert accepted and all(store.reviews(p["id"])[-1]["user"] == "experiment" for p in accepted)
    checks = loop.report["checks"]
    assert checks["split"]["shared_seeds"] == 0 and checks["training_rows"]["heldout_rows"] == 0


def test_changed_settings_are_refused_without_restart(loop):
    result = _invoke(loop.db, "--model", loop.config.model, "--out", loop.out, *TINY_ARGS,
                     "--frames", "6")
    assert result.exit_code != 0
    assert "other settings (frames: 8 -> 6)" in result.output and "--restart" in result.output
    assert "Traceback" not in result.output


def test_a_folder_that_is_not_a_video_lm_gives_one_clear_line(tmp_path):
    not_a_model = tmp_path / "weights"
    not_a_model.mkdir()
    (not_a_model / "notes.txt").write_text("not a model")
    result = _invoke(tmp_path / "tpo.db", "--model", not_a_model, "--out", tmp_path / "exp",
                     *TINY_ARGS)
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(lines) == 1 and "no config.json" in lines[0]


def test_training_and_heldout_videos_come_from_disjoint_seeds():
    for seed in (0, 1, 999):
        config = ExperimentConfig(model="m", seed=seed, **{**TINY, "train_videos": 1000,
                                                            "heldout_videos": 1000})
        train = {s.seed for s in video_specs(config, "train")}
        heldout = {s.seed for s in video_specs(config, "heldout")}
        assert not train & heldout
        assert min(train) >= TRAIN_SEED_BASE and max(train) < HELDOUT_SEED_BASE <= min(heldout)
    config = ExperimentConfig(model="m", **TINY)
    specs = video_specs(config, "heldout")
    assert [s.duration_s for s in specs] == [20.0, 40.0]
    assert [len(s.events) for s in specs] == [2, 4]  # one event per 10 s, at least 2


def test_validation_videos_come_from_the_training_range_after_the_training_videos():
    config = ExperimentConfig(model="m", validate=True, **{**TINY, "train_videos": 3,
                                                          "heldout_videos": 4})
    train = [s.seed for s in video_specs(config, "train")]
    validation = video_specs(config, "heldout")
    assert [s.seed for s in validation] == [train[-1] + 1 + i for i in range(4)]
    assert all(s.name.startswith("validation-") for s in validation)
    assert max(s.seed for s in validation) < HELDOUT_SEED_BASE
    plain = video_specs(ExperimentConfig(model="m", **{**TINY, "train_videos": 3,
                                                      "heldout_videos": 4}), "heldout")
    assert [s.duration_s for s in plain] == [s.duration_s for s in validation]  # made alike
    with pytest.raises(ValueError, match="train_videos \\+ heldout_videos"):
        ExperimentConfig(model="m", validate=True, **{**TINY, "train_videos": 600,
                                                     "heldout_videos": 500})


@pytest.mark.parametrize("overrides, message", [
    ({"ablations": ("dpo", "nope")}, "unknown ablation"),
    ({"seed": 1000}, "seed must be in 0..999"),
    ({"train_lengths_s": (5,)}, "do not fit"),
    ({"frames": 1}, "frames must be at least 2"),
    ({"name": "../x"}, "name must be"),
])
def test_bad_settings_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        ExperimentConfig(model="m", **{**TINY, **overrides})


def test_quick_and_all_fill_in_sizes_and_ablations():
    quick = ExperimentConfig(quick=True, ablations=("all",))
    assert (quick.train_videos, quick.heldout_videos, quick.frames) == (40, 16, 64)
    assert quick.ablations == ("localized", "comprehensive", "dpo", "sft")
    full = ExperimentConfig(train_videos=3)
    assert (full.train_videos, full.frames, full.heldout_videos) == (3, 64, 32)
    # The demo model (no --model): a full fine-tune, open answers; another model: LoRA, letters
    assert (full.lora, full.learning_rate, full.answers) == (False, 2e-5, "open")
    other = ExperimentConfig(model="some/model")
    assert (other.lora, other.learning_rate, other.answers) == (True, 5e-5, "letter")
    assert ExperimentConfig(model="some/model", lora=False, answers="open").answers == "open"
    with pytest.raises(ValueError, match="answers must be"):
        ExperimentConfig(answers="essay")


def test_reviewed_without_accepted_pairs_says_what_to_do(tmp_path, tiny_smolvlm_dir):
    config = ExperimentConfig(model=str(tiny_smolvlm_dir), out_dir=str(tmp_path / "exp"),
                              reviewed=True, **{**TINY, "train_videos": 1, "localized": 1,
                                                "comprehensive": 1})
    store = Store(tmp_path / "tpo.db")
    with pytest.raises(ExperimentError, match="no accepted pairs of the training videos yet"):
        run_experiment(config, store, tmp_path / "data")
    assert not store.list_pairs(status="accepted")  # nothing was accepted for the reviewer


def test_synthetic_suite_reads_the_ground_truth_of_a_folder(tmp_path):
    spec = synth.VideoSpec("clip", 20, fps=2, width=64, height=48, seed=7, events=(
        synth.shape_event(2, 6, "circle", "red", "top-left"),
        synth.number_event(10, 16, 7, "blue", "center")))
    truth = synth.render_video(spec, tmp_path / "clip.mp4")
    (tmp_path / "stray.mp4").write_bytes(b"no ground truth beside this one")
    suite = load_synthetic_suite(tmp_path)
    items = {i.item_id: i for i in suite.items}
    assert [m[0] for m in suite.missing] == [str(tmp_path / "stray.mp4")]
    questions = truth["questions"]
    assert len(items) == 2 + len(questions)
    circle, number = items["clip/event0"], items["clip/event1"]
    assert circle.options[LETTERS.index(circle.answer)] == "red" and circle.task == "colour"
    assert number.options[LETTERS.index(number.answer)] == "7" and number.task == "number"
    assert circle.meta == {"length_s": 20.0, "start_s": 2.0, "end_s": 6.0, "depth_start": 0.1,
                           "depth_duration": 0.2}
    assert circle.duration_class == "20 s"
    assert circle.video == str((tmp_path / "clip.mp4").resolve())
    for k, q in enumerate(questions):
        item = next(i for i in suite.items if i.question == q["question"])
        assert item.task == q["type"] and item.options[LETTERS.index(item.answer)] == q["answer"]
    # through the evaluation's suite loader, as `tpo eval --suite synthetic:FOLDER`
    loaded = load_suite(EvalConfig(suite=f"synthetic:{tmp_path}"), tmp_path / "cache")
    assert loaded.name == "synthetic" and len(loaded.items) == len(items)
    assert loaded.missing == [("stray", str(tmp_path / "stray.mp4"))]
    with pytest.raises(ValueError, match="needs a path"):
        EvalConfig(suite="synthetic")
    with pytest.raises(ValueError, match="is not a folder"):
        load_synthetic_suite(tmp_path / "nowhere")


@pytest.mark.parametrize("seconds, label", [(20, "20 s"), (60, "60 s"), (90, "90 s"),
                                            (120, "2 min"), (150, "2.5 min"), (7200, "2 h")])
def test_length_labels(seconds, label):
    assert length_label(seconds) == label


def test_the_sft_ablation_is_a_train_option():
    from tpo.training.train import TrainConfig, cli_args

    sft = ExperimentConfig(model="m", **TINY).training("sft", "out", base="m")
    assert (sft.dpo_weight, sft.alpha) == (0.0, 0.5)
    assert "--dpo-weight" in cli_args(sft)  # `tpo train` can repeat the run
    assert ExperimentConfig(model="m", **TINY).training("dpo", "out").alpha == 0.0
    with pytest.raises(ValueError, match="leave no loss"):
        TrainConfig(model="m", data=None, output_dir="out", dpo_weight=0, alpha=0)
