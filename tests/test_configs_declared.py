"""Stage configs validated by declaration: errors name the field, and the CLI's options and
the app's widget defaults come from the same declaration (no default written twice)."""

from __future__ import annotations

import click
from click.testing import CliRunner
import pytest

from tpo.cli import cli
from tpo.configs import ConfigError, click_option, field_spec, widget_args
from tpo.errors import TPOError
from tpo.evaluation.evaluate import EvalConfig
from tpo.generation.filters import FilterConfig
from tpo.generation.pairs import GenerationConfig


@pytest.mark.parametrize("config, values, message", [
    (GenerationConfig, {"localized": -1}, "localized must be at least 0, got -1"),
    (GenerationConfig, {"dense": 1}, "dense must be at least 2, got 1"),
    (GenerationConfig, {"strategy": "random"}, "strategy: input should be 'irrelevant'"),
    (GenerationConfig, {"segment_min_s": 0}, "segment_min_s must be more than 0"),
    (GenerationConfig, {"sparse": 64}, "sparse (64) must be fewer frames than dense (64)"),
    (GenerationConfig, {"localized": 0, "comprehensive": 0}, "at least one localized"),
    (GenerationConfig, {"segment_min_s": 40}, "segment_min_s <= segment_max_s"),
    (GenerationConfig, {"colour": "red"}, "colour: extra inputs are not permitted"),
    (FilterConfig, {"restatement_ratio": 0}, "restatement_ratio must be more than 0"),
    (EvalConfig, {"batch_size": 0}, "batch_size must be at least 1, got 0"),
    (EvalConfig, {"answers": "essay"}, "answers: input should be 'letter' or 'open'"),
])
def test_a_bad_value_is_one_clear_error_naming_the_field(config, values, message):
    with pytest.raises(ConfigError) as caught:
        config(**values)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    # Callers that caught the hand-written checks' ValueError still do; the shells see a TPOError.
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, TPOError)


def test_configs_keep_attribute_access_and_a_plain_dict():
    config = GenerationConfig(localized=2, segment_min_s=3)
    assert config.localized == 2 and config.segment_min_s == 3.0
    assert GenerationConfig(**config.model_dump()) == config
    assert EvalConfig(needle_lengths=[10, 20]).needle_lengths == (10.0, 20.0)  # JSON lists too


def test_field_spec_reads_bounds_choices_and_help():
    dense = field_spec(GenerationConfig, "dense")
    assert (dense.kind, dense.default, dense.minimum, dense.maximum) == (int, 64, 2, None)
    ratio = field_spec(FilterConfig, "near_duplicate_ratio")
    assert (ratio.minimum, ratio.min_open, ratio.maximum, ratio.max_open) == (0, True, 1, False)
    assert field_spec(GenerationConfig, "strategy").choices == ("irrelevant", "incomplete", "mixed")
    assert field_spec(EvalConfig, "limit").kind is int  # Optional unwrapped
    assert "comprehensive" in field_spec(GenerationConfig, "dense").help


def _options(command: click.Command) -> dict[str, click.Option]:
    return {p.name: p for p in command.params if isinstance(p, click.Option)}


@pytest.mark.parametrize("command, config, names", [
    ("generate", GenerationConfig, ("localized", "comprehensive", "strategy", "dense", "sparse",
                                    "questions", "max_new_tokens", "seed")),
    ("eval", EvalConfig, ("frames", "limit", "max_new_tokens", "answers")),
])
def test_cli_options_come_from_the_config(command, config, names):
    options = _options(cli.commands[command])
    for name in names:
        spec, option = field_spec(config, name), options[name]
        assert option.default == spec.default and option.help == spec.help, name
        assert option.opts == ["--" + name.replace("_", "-")]
        if spec.choices:
            assert tuple(option.type.choices) == spec.choices
        elif spec.minimum is not None:
            assert option.type.min == spec.minimum


def test_click_option_enforces_the_declared_bounds():
    @click.command()
    @click_option(FilterConfig, "near_duplicate_ratio")
    @click_option(FilterConfig, "drop_truncated")
    def show(near_duplicate_ratio, drop_truncated):
        click.echo(f"{near_duplicate_ratio} {drop_truncated}")

    runner = CliRunner()
    assert runner.invoke(show, []).output == "0.9 True\n"
    bad = runner.invoke(show, ["--near-duplicate-ratio", "0"])
    assert bad.exit_code == 2 and "0<x<=1" in bad.output


def test_widget_args_carry_default_limits_and_info():
    assert widget_args(GenerationConfig, "sparse") == {
        "value": 8, "info": field_spec(GenerationConfig, "sparse").help, "minimum": 1}
    strategy = widget_args(GenerationConfig, "strategy")
    assert strategy["choices"] == ["irrelevant", "incomplete", "mixed"]
    assert strategy["value"] == "irrelevant"
    assert widget_args(FilterConfig, "drop_truncated")["value"] is True
