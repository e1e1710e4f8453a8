"""Shared fixtures of the NeuralIL plugin tests: real data, the released weights, and a small
evaluator of configurations through the core's prediction path (the core's graph batches,
the JAX backend's ``evaluate``: mlffbench.backends.jax.testing).

Data: $MLFFBENCH_DATA_DIR, else ``shared/data`` beside the repository. Reference values and
released weights: $MLFFBENCH_REFERENCE_DIR, else ``shared/reference`` beside the repository.
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
import pytest

from mlffbench.backends.jax import testing as jax_testing
from mlffbench.backends.jax.potential import edge_vectors, make_graph
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
from mlffbench_neuralil.config import NeuralilConfig
from mlffbench_neuralil.model import build
from mlffbench_neuralil.weights import load_weights

REPO = Path(__file__).resolve().parents[3]
WEIGHTS = "neuralil_optax_2b25114.npz"
# Fixed padded shapes (n_nodes, n_edges) shared by tests, so each function compiles once:
# one EAN configuration (≈3,800 edges at 3.5 Å, ≈4,100 at 3.6 Å), and a 2x1x1 supercell
# or two configurations in a batch of 3 slots.
EAN_SHAPE = (240, 4_608)
EAN_PAIR_SHAPE = (480, 9_216)


@pytest.fixture(scope="session")
def conformance_data_dir() -> Path:
    """Where the conformance suite (mlffbench's pytest plugin) finds its configurations."""
    return data_dir(REPO)


@pytest.fixture(scope="session")
def datasets(tmp_path_factory):
    """Loads datasets by card name (cached for the session, parsed-set cache in a temp dir)."""
    return dataset_loader(data_dir(REPO), tmp_path_factory, "neuralil-cache")


@pytest.fixture(scope="session")
def ean(datasets):
    return datasets("ean")


@pytest.fixture(scope="session")
def weights_path() -> Path:
    return require_reference_file(reference_dir(REPO) / "weights" / WEIGHTS, "released NeuralIL weights")


@pytest.fixture(scope="session")
def reference_values() -> dict:
    return load_reference_values(REPO)


class Evaluator(jax_testing.Evaluator):
    """Energies, forces and stress of plain configurations through the core's prediction path,
    with fixed padded shapes (one compilation per function and shape); and the model's parts
    (its own decomposition, not a prediction: atomic energies, Morse part, descriptors)."""

    def __init__(self, config: NeuralilConfig, species, params, shape=EAN_SHAPE, batch_size=1):
        super().__init__(build, config, species, params, shape=shape, batch_size=batch_size)
        module = self.potential.module

        def parts(p, b):
            graph = make_graph(b, edge_vectors(b, b.positions, b.cell))
            return module.apply({"params": p}, graph, method=module.energies)

        self.parts_fn = jax.jit(parts)

    def parts(self, batch):
        """(atomic energies, Morse atomic energies, descriptors) of the real atoms."""
        atoms = np.asarray(batch.atom_mask)
        e, morse, p = self.parts_fn(self.params, batch)
        return np.asarray(e)[atoms], np.asarray(morse)[atoms], np.asarray(p)[atoms]


@pytest.fixture(scope="session")
def evaluator(weights_path):
    """``evaluator(config, shape=..., batch_size=...)``: an Evaluator with the released
    weights, cached for the session (float64 ones must be used with x64 enabled)."""
    cache = {}

    def get(config=None, species=EAN_SPECIES, shape=EAN_SHAPE, batch_size=1):
        config = NeuralilConfig(dtype="float64") if config is None else config
        key = (config, tuple(species), shape, batch_size, x64_enabled())
        if key not in cache:
            params = load_weights(weights_path, config, species=species)
            cache[key] = Evaluator(config, species, params, shape=shape, batch_size=batch_size)
        return cache[key]

    return get


@pytest.fixture(scope="session")
def helpers():
    return jax_testing.helpers(Evaluator, EAN_SHAPE, EAN_PAIR_SHAPE)
