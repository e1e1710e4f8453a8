"""Helpers for the tests of JAX model plugins: 64-bit JAX for a test, and an evaluator of a
plugin's potential on plain configurations through the core's prediction path
(:class:`mlffbench.backends.testing.Evaluator` with the JAX backend).

A plugin's ``conftest.py`` imports the ``x64`` fixture from here to make it available.
"""

from __future__ import annotations

from types import SimpleNamespace

import jax
import numpy as np
import pytest

from mlffbench.backends import testing
from mlffbench.backends.jax.precision import float64_scope
from mlffbench.backends.jax.trainer import JaxBackend
from mlffbench.data.stats import SpeciesStats
from mlffbench.testing import EAN_SPECIES, ean_config
from mlffbench.training.config import TrainConfig


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


class Evaluator(testing.Evaluator):
    """A plugin's JAX potential with ``params`` (no reference energies), in its config's
    precision (``config.dtype``), on plain configurations through the JAX backend.

    ``build(config, stats)``: the plugin's potential builder, called as the core builds
    (:meth:`Backend.build_scope`). ``shape`` and ``batch_size``: see
    :class:`mlffbench.backends.testing.Evaluator`; batches are the backend's device batches.
    """

    def __init__(self, build, config, species, params, shape=None, batch_size=None):
        self.config = config
        self.dtype = str(getattr(config, "dtype", "float32"))
        stats = SpeciesStats(species=tuple(species), reference_energies=np.zeros(len(species)))
        with JaxBackend.build_scope(self.dtype):
            potential = build(config, stats)
        backend = JaxBackend(potential, TrainConfig(dtype=self.dtype))
        super().__init__(backend, backend.state_of(params), species, config.cutoff, shape, batch_size)

    @property
    def params(self):
        return self.state.params

    def with_positions(self, batch, positions):
        with float64_scope(self.dtype):
            return with_positions(batch, positions)
