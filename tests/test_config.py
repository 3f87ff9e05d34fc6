"""Settings: defaults derived from the data folder, env overrides, validation messages."""

from pathlib import Path

import pytest

from tpo.config import Settings


def test_paths_default_under_data_dir():
    s = Settings(data_dir=Path("somewhere"))
    assert s.db_path == Path("somewhere/tpo.db")
    assert s.demo_dir == Path("somewhere/demo")
    assert s.thumb_dir == Path("somewhere/thumbs")


def test_default_data_dir_is_data_in_working_directory():
    assert Settings.from_env({}).db_path == Path("data/tpo.db")


def test_env_overrides_and_explicit_overrides_win(tmp_path):
    env = {"TPO_DB": str(tmp_path / "x.db"), "TPO_DEMO": "0", "TPO_DEMO_SCALE": "0.5",
           "TPO_STRIP_FRAMES": "4"}
    s = Settings.from_env(env)
    assert s.db_path == tmp_path / "x.db"
    assert s.demo_on_start is False and s.demo_scale == 0.5 and s.strip_frames == 4
    assert Settings.from_env(env, db_path=tmp_path / "y.db").db_path == tmp_path / "y.db"


@pytest.mark.parametrize("env, message", [
    ({"TPO_DEMO_SCALE": "2"}, "TPO_DEMO_SCALE"),
    ({"TPO_STRIP_FRAMES": "many"}, "TPO_STRIP_FRAMES='many' is not a valid value"),
    ({"TPO_DEMO": "maybe"}, "TPO_DEMO='maybe'"),
])
def test_bad_values_name_the_variable(env, message):
    with pytest.raises(ValueError, match=message):
        Settings.from_env(env)


def test_auth_pairs_are_parsed_and_checked():
    s = Settings.from_env({"TPO_AUTH": "ana:s3cret, bo:pw:with:colons"})
    assert s.logins() == [("ana", "s3cret"), ("bo", "pw:with:colons")]
    assert Settings.from_env({}).logins() == []
    with pytest.raises(ValueError, match="TPO_AUTH entries must be user:password"):
        Settings.from_env({"TPO_AUTH": "ana"})
