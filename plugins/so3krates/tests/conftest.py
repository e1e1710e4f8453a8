"""Shared fixtures of the SO3krates plugin tests: where the conformance suite finds its
configurations ($MLFFBENCH_DATA_DIR, else ``shared/data`` beside the repository), and the
datasets by card name."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlffbench.backends.jax.testing import x64  # noqa: F401  (a fixture)
from mlffbench.testing import data_dir, dataset_loader

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def conformance_data_dir() -> Path:
    return data_dir(REPO)


@pytest.fixture(scope="session")
def datasets(tmp_path_factory):
    """Loads datasets by card name (cached for the session, parsed-set cache in a temp dir)."""
    return dataset_loader(data_dir(REPO), tmp_path_factory, "so3krates-cache")
