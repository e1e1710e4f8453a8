"""Helpers for the tests of model plugins, whatever their framework: a model with fixed parameters
on plain configurations, evaluated through the core's prediction path.

A test's configurations ``(numbers, positions, cell, pbc)`` become the core's graph batches
(:func:`mlffbench.backends.predictor.graph_batch`, the batches the :class:`Predictor` builds) and
are evaluated by the backend's :meth:`~mlffbench.backends.base.Backend.evaluate`, the function
training, evaluation, the conformance suite, ``md``, ``scan`` and the ASE calculator use: a plugin's
tests check the numbers every command gets. The framework's helpers build the backend and the state
(:mod:`mlffbench.backends.jax.testing`, :mod:`mlffbench.backends.torch.testing`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mlffbench.backends.base import Backend, Outputs
from mlffbench.backends.predictor import Configuration, graph_batch


class Evaluator:
    """``backend``'s model with the parameters of ``state`` on plain configurations.

    ``species``: the model's species table; ``cutoff``: the radius of its neighbour lists, Å;
    ``shape`` (fixed padded (n_nodes, n_edges), so that tests share compiled functions) and
    ``batch_size`` (slots): what :meth:`batch` uses when its call does not say.
    """

    def __init__(
        self,
        backend: Backend,
        state: Any,
        species: Sequence[int],
        cutoff: float,
        shape: tuple[int, int] | None = None,
        batch_size: int | None = None,
    ) -> None:
        self.backend = backend
        self._state = state
        self.species = tuple(int(z) for z in species)
        self.cutoff = float(cutoff)
        self.shape = shape
        self.batch_size = batch_size

    @property
    def state(self) -> Any:
        """The backend state evaluated (its parameters)."""
        return self._state

    @property
    def potential(self) -> Any:
        return self.backend.potential

    def graph_batch(self, configs, cutoff=None, batch_size=None, shape=None):
        """The core's numpy GraphBatch of ``configs`` (list of (numbers, positions, cell, pbc))."""
        return graph_batch(
            [Configuration.of(*c) for c in configs],
            self.species,
            self.cutoff if cutoff is None else cutoff,
            self.shape if shape is None else shape,
            batch_size or self.batch_size,
        )

    def batch(self, configs, cutoff=None, batch_size=None, shape=None):
        """(``configs`` as one batch on the device, in the model's precision; its number of real edges)."""
        batch = self.graph_batch(configs, cutoff, batch_size, shape)
        return self.backend.device_batch(batch), int(np.asarray(batch.edge_mask).sum())

    def outputs(self, batch, forces: bool = True, stress: bool = False, atomic: bool = False) -> Outputs:
        """The backend's :class:`~mlffbench.backends.base.Outputs` of the real graphs and atoms."""
        out = self.backend.evaluate(self.state, batch, forces=forces, stress=stress, atomic=atomic)
        graphs, atoms = np.asarray(batch.graph_mask), np.asarray(batch.atom_mask)
        return Outputs(
            out.energy[graphs],
            None if out.forces is None else out.forces[atoms],
            None if out.stress is None else out.stress[graphs],
            None if out.atomic is None else out.atomic[atoms],
        )

    def evaluate(self, batch):
        """(energies (G_real,), forces (N_real, 3), atomic energies (N_real,))."""
        out = self.outputs(batch, atomic=True)
        return out.energy, out.forces, out.atomic

    def energy_forces(self, batch):
        """(energies, forces) of :meth:`evaluate` (the same compiled function)."""
        return self.evaluate(batch)[:2]

    def energy(self, batch, positions=None):
        """Energies of the real graphs, the first ``len(positions)`` atoms moved to ``positions``
        (the same edges: for finite differences)."""
        if positions is not None:
            batch = self.with_positions(batch, positions)
        return self.outputs(batch, forces=False).energy

    def stress(self, batch):
        """Stress of the real graphs, (G_real, 3, 3) eV/Å³."""
        return self.outputs(batch, forces=False, stress=True).stress

    def with_positions(self, batch, positions):
        """The device batch with its first ``len(positions)`` atom positions replaced."""
        raise NotImplementedError
