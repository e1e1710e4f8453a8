"""Helpers for the tests of JAX model plugins: 64-bit JAX for a test, and an evaluator of a
plugin's potential on plain configurations through the core's graph batches.

A plugin's ``conftest.py`` imports the ``x64`` fixture from here to make it available.
"""

from __future__ import annotations

from types import SimpleNamespace

import jax
import numpy as np
import pytest

from mlffbench.backends.jax.precision import float64_scope, float_dtype
from mlffbench.backends.jax.trainer import to_device
from mlffbench.data.stats import SpeciesStats
from mlffbench.testing import EAN_SPECIES, ean_config, graph_batch


@pytest.fixture
def x64():
    """Run the test body with 64-bit JAX, restoring the previous setting afterwards."""
    with float64_scope(True):
        yield


def with_positions(batch, positions):
    """The batch with the first len(positions) atom positions replaced (same graph)."""
    pos = np.array(batch.positions)
    pos[: len(positions)] = positions
    return batch._replace(positions=jax.numpy.asarray(pos, batch.positions.dtype))


def flat_params(tree) -> dict[str, np.ndarray]:
    """Flat ``path → array`` of a parameter pytree (paths joined by '/')."""
    return {
        "/".join(k.key for k in path): np.asarray(leaf) for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]
    }


def helpers(evaluator_class, ean_shape, ean_pair_shape) -> SimpleNamespace:
    """What a JAX plugin's ``helpers`` fixture hands its tests: its Evaluator class, the
    EAN helpers and its fixed padded shapes for one and for two EAN configurations."""
    return SimpleNamespace(
        Evaluator=evaluator_class,
        with_positions=with_positions,
        ean_config=ean_config,
        EAN_SPECIES=EAN_SPECIES,
        EAN_SHAPE=ean_shape,
        EAN_PAIR_SHAPE=ean_pair_shape,
    )


class Evaluator:
    """Energies, forces and stress of plain configurations through the core's batches.

    ``build(config, stats)``: the plugin's potential builder (no reference energies here).
    ``shape`` (fixed padded (n_nodes, n_edges), so that tests share compiled functions) and
    ``batch_size``: what :meth:`batch` uses when its call does not say.
    """

    def __init__(self, build, config, species, params, shape=None, batch_size=None):
        self.config = config
        self.species = tuple(species)
        self.params = params
        self.shape = shape
        self.batch_size = batch_size
        stats = SpeciesStats(species=self.species, reference_energies=np.zeros(len(self.species)))
        self.potential = pot = build(config, stats)
        # energies, forces and atomic energies in one compiled function
        self.evaluate_fn = jax.jit(lambda p, b: (*pot.energy_and_forces(p, b), pot.atomic_energies(p, b)))
        self.energy_fn = jax.jit(pot.energy)
        self.stress_fn = jax.jit(pot.stress)

    def batch(self, configs, cutoff=None, batch_size=None, shape=None):
        """(one device batch of ``configs``: list of (numbers, positions, cell, pbc), number of
        real edges)."""
        cutoff = self.config.cutoff if cutoff is None else cutoff
        shape = self.shape if shape is None else shape
        batch, n_edges = graph_batch(configs, self.species, cutoff, batch_size or self.batch_size, shape)
        return to_device(batch, float_dtype()), n_edges

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
