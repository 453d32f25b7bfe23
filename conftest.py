"""Fixtures for every test folder (tests/ and each plugin's tests/)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest  # noqa: E402


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    """Stage caches go to a temporary folder."""
    path = tmp_path / "cache"
    monkeypatch.setenv("KERAS_EDGE_CACHE", str(path))
    return path
