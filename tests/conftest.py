"""Shared fixtures: a real SQLite store in a temporary folder, settings pointing there, and
the tiny random models of real architectures (built once per test session, offline)."""

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


@pytest.fixture
def stop_workers(store):
    """Kill the job workers a test left running: they are in sessions of their own, so they
    would outlive it (use with ``pytestmark = pytest.mark.usefixtures("stop_workers")``)."""
    from tpo import jobs

    yield
    for row in jobs.list_jobs(store, status=jobs.ACTIVE_STATUSES):
        jobs.cancel(store, row["id"], force=True)


@pytest.fixture(scope="session")
def tiny_smolvlm_dir(tmp_path_factory):
    from tpo.models.tiny import build_tiny_model  # torch: imported only by tests that need a model

    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-smolvlm", "smolvlm")


@pytest.fixture(scope="session")
def tiny_qwen2vl_dir(tmp_path_factory):
    from tpo.models.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-qwen2vl", "qwen2vl")
