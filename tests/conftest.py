"""Shared fixtures: a real SQLite store in a temporary folder, settings pointing there."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from tpo.config import Settings  # noqa: E402
from tpo.store import Store  # noqa: E402


@pytest.fixture
def settings(tmp_path) -> Settings:
    """Settings with every path under a fresh temporary data folder."""
    return Settings(data_dir=tmp_path / "data", user="tester")


@pytest.fixture
def store(settings) -> Store:
    s = Store(settings.db_path)
    yield s
    s.close()
