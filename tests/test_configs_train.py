"""The training command line through TRL's TrlParser: the paper's presets as YAML files in
configs/, `--config FILE` with command-line options winning, and clear usage errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from tpo import jobs
from tpo.cli import cli
from tpo.training.train import PRESETS, build_parser, hyperparameters, parse_command_line

ROOT = Path(__file__).resolve().parents[1]
REQUIRED = ["--model", "m", "--data", "d", "--output", "o"]


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_each_preset_is_a_yaml_file_with_the_papers_settings(preset):
    path = ROOT / "configs" / f"{preset}.yaml"
    config, _ = parse_command_line(build_parser(), ["--config", str(path), *REQUIRED])
    assert config.preset == preset and config.num_train_epochs == 1.0
    assert hyperparameters(config) == dict(PRESETS[preset])
    assert (config.beta, config.alpha, config.learning_rate) == tuple(
        PRESETS[preset][k] for k in ("beta", "alpha", "learning_rate"))


def test_command_line_options_win_over_the_file(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("model: from-file\nbeta: 0.1\nlora: false\nmax_frames: 8\n")
    config, others = parse_command_line(build_parser(), [
        "--config", str(path), "--data", "d", "--output", "o", "--beta", "0.4", "--use-cpu"])
    assert (config.model, config.beta, config.lora, config.max_frames) == ("from-file", 0.4,
                                                                           False, 8)
    assert config.use_cpu is True and config.options["output_dir"] == "o"  # --output: the alias
    assert config.output_dir == str(Path("o").resolve())
    assert others.job_id is None


@pytest.mark.parametrize("text, message", [
    ("colour: red\n", "Unknown arguments from config file"),
    ("num_train_epochs: 0\n", "num_train_epochs must be > 0"),
    ("warmup_ratio: -1\n", "warmup_steps (--warmup-ratio) must be >= 0"),  # tpo's earlier key
    ("lr_scheduler_type: bogus\n", "is not a valid SchedulerType"),  # DPOConfig's own check
    ("- a list\n", "must contain a YAML mapping"),
])
def test_a_bad_file_is_a_usage_error(tmp_path, capsys, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SystemExit) as caught:
        parse_command_line(build_parser(), ["--config", str(path), *REQUIRED])
    assert caught.value.code == 2 and message in capsys.readouterr().err


def test_missing_required_settings_are_usage_errors(capsys):
    with pytest.raises(SystemExit) as caught:
        parse_command_line(build_parser(), ["--data", "d", "--output", "o"])
    assert caught.value.code == 2 and "model is required" in capsys.readouterr().err


def test_tpo_train_reads_the_config_and_refuses_before_submitting(store, settings, tmp_path,
                                                                  monkeypatch):
    monkeypatch.setenv("TPO_DATA_DIR", str(settings.data_dir))

    def run(*args):
        return CliRunner().invoke(cli, ["--db", str(settings.db_path), "train", *args])

    # Everything but the data from the file; the check that data is given still applies.
    path = tmp_path / "run.yaml"
    path.write_text(f"model: m\noutput_dir: {tmp_path / 'o'}\n")
    no_data = run("--config", str(path))
    assert no_data.exit_code == 2 and "give --data EXPORT_DIR or --from-store" in no_data.output
    bad = run("--config", str(tmp_path / "missing.yaml"), "--model", "m")
    assert bad.exit_code == 2 and "cannot read --config" in bad.output
    assert "Traceback" not in bad.output
    assert jobs.list_jobs(store, kind="train") == []
    help_text = " ".join(run("--help").output.split())
    assert "--config FILE" in help_text and "configs/longva.yaml" in help_text
