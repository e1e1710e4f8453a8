"""Shared fixtures of the mlip plugin tests: real data (EAN, rMD17) and small model configs.

Data: $MLFFBENCH_DATA_DIR, else ``shared/data`` beside the repository.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mlffbench.backends.jax.testing import x64  # noqa: F401  (a fixture)
from mlffbench.testing import data_dir, dataset_loader
from mlffbench_mlip.config import MaceJaxConfig, NequipJaxConfig, VisnetJaxConfig

REPO = Path(__file__).resolve().parents[3]

# Small (CPU, test-sized) configs of the three models, float64.
SMALL = {
    "mace-jax": MaceJaxConfig(
        num_channels=8, l_max=1, correlation=2, radial_mlp_hidden=(16,), readout_hidden=8, dtype="float64"
    ),
    "nequip-jax": NequipJaxConfig(
        target_irreps="8x0e + 8x0o + 4x1o + 4x1e", l_max=1, radial_mlp_hidden=(16,), dtype="float64"
    ),
    "visnet-jax": VisnetJaxConfig(num_channels=16, num_heads=4, num_rbf=8, dtype="float64"),
}


@pytest.fixture(scope="session")
def small() -> dict:
    """The small float64 configs by model name."""
    return dict(SMALL)


@pytest.fixture(scope="session")
def conformance_data_dir() -> Path:
    """Where the conformance suite (mlffbench's pytest plugin) finds its configurations."""
    return data_dir(REPO)


@pytest.fixture(scope="session")
def datasets(tmp_path_factory):
    """Loads datasets by card name (cached for the session, parsed-set cache in a temp dir)."""
    return dataset_loader(data_dir(REPO), tmp_path_factory, "mlip-cache")
