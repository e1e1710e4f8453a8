"""Shared fixtures of the JAT plugin tests: real data, the released weights, and a small
evaluator that turns configurations into the core's graph batches.

Data: $MLFFBENCH_DATA_DIR, else ``shared/data`` beside the repository. Reference values and
released weights: $MLFFBENCH_REFERENCE_DIR, else ``shared/reference`` beside the repository.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import jax
import numpy as np
import pytest

from mlffbench.backends.jax.trainer import to_device
from mlffbench.datasets.loading import load_dataset
from mlffbench.graph.batching import GraphBatcher
from mlffbench.graph.neighbors import compute_neighbors
from mlffbench.structures import from_arrays
from mlffbench_jat.config import JatConfig
from mlffbench_jat.model import build
from mlffbench_jat.weights import load_weights

REPO = Path(__file__).resolve().parents[3]
EAN_SPECIES = (1, 6, 7, 8)  # H, C, N, O: the dataset's sorted atomic numbers


def data_dir() -> Path:
    env = os.environ.get("MLFFBENCH_DATA_DIR", "").strip()
    return Path(env) if env else REPO / ".." / "shared" / "data"


def reference_dir() -> Path:
    env = os.environ.get("MLFFBENCH_REFERENCE_DIR", "").strip()
    return Path(env) if env else REPO / ".." / "shared" / "reference"


@pytest.fixture(scope="session")
def datasets(tmp_path_factory):
    """Loads datasets by card name (cached for the session, parsed-set cache in a temp dir)."""
    root = data_dir()
    if not root.is_dir():
        pytest.skip(f"data directory {root} not found (set MLFFBENCH_DATA_DIR)")
    cache = tmp_path_factory.mktemp("jat-cache")
    loaded = {}

    def get(name):
        if name not in loaded:
            loaded[name] = load_dataset(name, data_dir=root, cache_dir=cache, download=False)
        return loaded[name]

    return get


@pytest.fixture(scope="session")
def ean(datasets):
    return datasets("ean")


@pytest.fixture(scope="session")
def weights_path() -> Path:
    path = reference_dir() / "weights" / "jat_ean15_ep3k.npz"
    if not path.is_file():
        pytest.skip(f"released JAT weights {path} not found (set MLFFBENCH_REFERENCE_DIR)")
    return path


@pytest.fixture(scope="session")
def checkpoint_meta(weights_path) -> dict:
    return json.loads(weights_path.with_suffix(".json").read_text())


@pytest.fixture(scope="session")
def reference_values() -> dict:
    path = reference_dir() / "models_reference_values.json"
    if not path.is_file():
        pytest.skip(f"reference values {path} not found (set MLFFBENCH_REFERENCE_DIR)")
    return json.loads(path.read_text())


@pytest.fixture
def x64():
    """Run the test body with 64-bit JAX, restoring the previous setting afterwards."""
    with jax.enable_x64(True):
        yield


def float_dtype():
    return np.float64 if jax.config.jax_enable_x64 else np.float32


class Evaluator:
    """Energies, forces and stress of plain configurations through the core's batches."""

    def __init__(self, config: JatConfig, species, params):
        self.config = config
        self.species = tuple(species)
        self.params = params
        stats = SimpleNamespace(species=self.species, reference_energies=np.zeros(len(self.species)))
        self.potential = build(config, stats)
        pot = self.potential
        # energies, forces and atomic energies in one compiled function
        self.evaluate_fn = jax.jit(lambda p, b: (*pot.energy_and_forces(p, b), pot.atomic_energies(p, b)))
        self.energy_fn = jax.jit(pot.energy)
        self.stress_fn = jax.jit(pot.stress)

    def batch(self, configs, cutoff=None, batch_size=None, shape=None):
        """One device batch of ``configs``: list of (numbers, positions, cell, pbc).

        ``shape``: fixed (n_nodes, n_edges), so that tests share compiled functions.
        """
        cutoff = self.config.cutoff if cutoff is None else cutoff
        numbers = np.concatenate([np.asarray(c[0]) for c in configs])
        positions = np.concatenate([np.asarray(c[1], np.float64) for c in configs])
        ds = from_arrays(
            numbers=numbers,
            positions=positions,
            n_atoms=[len(c[0]) for c in configs],
            cell=np.stack([np.asarray(c[2], np.float64) for c in configs]),
            pbc=np.stack([np.broadcast_to(np.asarray(c[3], bool), (3,)) for c in configs]),
        )
        table = compute_neighbors(ds, cutoff)
        n_nodes, n_edges = shape if shape is not None else (None, None)
        batcher = GraphBatcher(ds, table, self.species, batch_size or len(configs), n_nodes=n_nodes, n_edges=n_edges)
        (graph_batch,) = list(batcher.batches(np.arange(len(configs))))
        return to_device(graph_batch, float_dtype()), int(table.n_edges.sum())

    def evaluate(self, batch):
        """(energies (G_real,), forces (N_real, 3), atomic energies (N_real,))."""
        energy, forces, atomic = self.evaluate_fn(self.params, batch)
        graphs = np.asarray(batch.graph_mask)
        atoms = np.asarray(batch.atom_mask)
        return np.asarray(energy)[graphs], np.asarray(forces)[atoms], np.asarray(atomic)[atoms]

    def energy_forces(self, batch):
        return self.evaluate(batch)[:2]

    def energy(self, batch, positions=None):
        if positions is not None:
            batch = with_positions(batch, positions)
        return np.asarray(self.energy_fn(self.params, batch))[np.asarray(batch.graph_mask)]

    def stress(self, batch):
        return np.asarray(self.stress_fn(self.params, batch))[np.asarray(batch.graph_mask)]


def with_positions(batch, positions):
    """The batch with the first len(positions) atom positions replaced (same graph)."""
    pos = np.array(batch.positions)
    pos[: len(positions)] = positions
    return batch._replace(positions=jax.numpy.asarray(pos, batch.positions.dtype))


def ean_config(ds, i, cell=None):
    sl = ds.atoms_of(i)
    return ds.numbers[sl], ds.positions[sl], ds.cell[i] if cell is None else cell, ds.pbc[i]


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
        key = (config, tuple(species), bool(jax.config.jax_enable_x64))
        if key not in cache:
            params = load_weights(weights_path, config, species=species)
            cache[key] = Evaluator(config, species, params)
        return cache[key]

    return get


@pytest.fixture(scope="session")
def helpers():
    return SimpleNamespace(
        Evaluator=Evaluator,
        with_positions=with_positions,
        ean_config=ean_config,
        EAN_SPECIES=EAN_SPECIES,
        EAN_SHAPE=EAN_SHAPE,
        EAN_PAIR_SHAPE=EAN_PAIR_SHAPE,
    )
