"""Shared fixtures of the ACE plugin tests: where the conformance suite finds its
configurations ($MLFFBENCH_DATA_DIR, else ``shared/data`` beside the repository)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlffbench.testing import data_dir

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def conformance_data_dir() -> Path:
    return data_dir(REPO)
