"""Shared fixtures of the JAT plugin tests: real data, the released weights, and a small
evaluator of configurations through the core's prediction path (the core's graph batches,
the JAX backend's ``evaluate``: mlffbench.backends.jax.testing).

Data: $MLFFBENCH_DATA_DIR, else ``shared/data`` beside the repository. Reference values and
released weights: $MLFFBENCH_REFERENCE_DIR, else ``shared/reference`` beside the repository.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlffbench.backends.jax import testing as jax_testing
from mlffbench.backends.jax.precision import x64_enabled
from mlffbench.backends.jax.testing import x64  # noqa: F401  (a fixture)
from mlffbench.testing import (
    EAN_SPECIES,
    data_dir,
    dataset_loader,
    load_reference_values,
    reference_dir,
    require_reference_file,
)
from mlffbench_jat.config import JatConfig
from mlffbench_jat.model import build
from mlffbench_jat.weights import load_weights

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def conformance_data_dir() -> Path:
    """Where the conformance suite (mlffbench's pytest plugin) finds its configurations."""
    return data_dir(REPO)


@pytest.fixture(scope="session")
def datasets(tmp_path_factory):
    """Loads datasets by card name (cached for the session, parsed-set cache in a temp dir)."""
    return dataset_loader(data_dir(REPO), tmp_path_factory, "jat-cache")


@pytest.fixture(scope="session")
def ean(datasets):
    return datasets("ean")


@pytest.fixture(scope="session")
def weights_path() -> Path:
    return require_reference_file(reference_dir(REPO) / "weights" / "jat_ean15_ep3k.npz", "released JAT weights")


@pytest.fixture(scope="session")
def checkpoint_meta(weights_path) -> dict:
    return json.loads(weights_path.with_suffix(".json").read_text())


@pytest.fixture(scope="session")
def reference_values() -> dict:
    return load_reference_values(REPO)


class Evaluator(jax_testing.Evaluator):
    """Energies, forces, stress and atomic energies of plain configurations through the core's
    prediction path (``batch(configs, cutoff=None, batch_size=None, shape=None)``)."""

    def __init__(self, config: JatConfig, species, params):
        super().__init__(build, config, species, params)


# Fixed padded shapes (n_nodes, n_edges) shared by tests, so each function compiles once:
# one EAN configuration with a neighbour list up to 5.05 Å (at most ~12,600 edges), and
# two EAN configurations / one 2x1x1 supercell (450 atoms) in a batch of 3 slots.
EAN_SHAPE = (240, 13_312)
EAN_PAIR_SHAPE = (480, 26_624)


@pytest.fixture(scope="session")
def evaluator(weights_path):
    """``evaluator(config, species)``: an Evaluator with the released weights, cached for the
    session (float64 ones must be used with x64 enabled, float32 ones without)."""
    cache = {}

    def get(config, species=EAN_SPECIES):
        key = (config, tuple(species), x64_enabled())
        if key not in cache:
            params = load_weights(weights_path, config, species=species)
            cache[key] = Evaluator(config, species, params)
        return cache[key]

    return get


@pytest.fixture(scope="session")
def helpers():
    return jax_testing.helpers(Evaluator, EAN_SHAPE, EAN_PAIR_SHAPE)
