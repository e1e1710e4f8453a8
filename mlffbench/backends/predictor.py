"""Energy, forces and stress of plain configurations, whatever the framework of the model.

A :class:`Predictor` takes :class:`Configuration` s (atomic numbers, positions, cell, pbc),
builds their neighbour lists with the core (:mod:`mlffbench.graph.neighbors`) at every call
(so a moving structure always gets a fresh list), packs them into the core's padded graph
batches (:mod:`mlffbench.graph.batching`) and evaluates a backend potential on them. The
conformance suite, the ASE calculator, ``md`` and ``scan`` all go through it.

A model's predictor is :class:`BackendPredictor` (``Backend.predictor`` /
``TrainedModel.predictor``): it evaluates through the backend's own ``evaluate``, the function
training's evaluation and the plugins' tests use too (:mod:`mlffbench.backends.testing`), for
every framework.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from mlffbench.data.structures import from_arrays
from mlffbench.graph.batching import GraphBatcher, bucket
from mlffbench.graph.neighbors import compute_neighbors, neighbor_list

if TYPE_CHECKING:
    from mlffbench.backends.base import Backend


class Configuration(NamedTuple):
    """One structure: atomic numbers (n,), positions (n, 3) Å, cell (3, 3) rows Å, pbc (3,)."""

    numbers: np.ndarray
    positions: np.ndarray
    cell: np.ndarray
    pbc: np.ndarray

    @classmethod
    def of(cls, numbers, positions, cell=None, pbc=False) -> Configuration:
        return cls(
            np.asarray(numbers, np.int64).reshape(-1),
            np.asarray(positions, np.float64).reshape(-1, 3),
            np.zeros((3, 3)) if cell is None else np.asarray(cell, np.float64).reshape(3, 3),
            np.broadcast_to(np.asarray(pbc, bool), (3,)).copy(),
        )

    @classmethod
    def from_dataset(cls, ds, index: int) -> Configuration:
        """Configuration ``index`` of a :class:`mlffbench.data.structures.StructureSet`."""
        sl = ds.atoms_of(int(index))
        return cls.of(ds.numbers[sl], ds.positions[sl], ds.cell[index], ds.pbc[index])

    @classmethod
    def from_atoms(cls, atoms) -> Configuration:
        """From an ``ase.Atoms``."""
        return cls.of(atoms.numbers, atoms.positions, np.asarray(atoms.cell), atoms.pbc)

    def replace(self, **changes) -> Configuration:
        return self._replace(**changes)

    @property
    def n_atoms(self) -> int:
        return len(self.numbers)

    @property
    def periodic(self) -> bool:
        return bool(np.any(self.pbc))


@dataclass
class Prediction:
    """Energy (eV), forces (n, 3) eV/Å, stress (3, 3) eV/Å³ and atomic energies (n,) eV (None
    unless asked for)."""

    energy: float
    forces: np.ndarray
    stress: np.ndarray | None = None
    atomic_energies: np.ndarray | None = None


class Predictor(ABC):
    """Evaluates one model (fixed parameters) on plain configurations.

    ``species``: the atomic numbers the model knows (its species table); ``cutoff``: the
    radius of the neighbour lists it is given, Å; ``dtype``: "float32" or "float64".
    """

    species: tuple[int, ...]
    cutoff: float
    dtype: str

    @abstractmethod
    def predict(self, configs: Sequence[Configuration], stress: bool = False, shape=None) -> list[Prediction]:
        """Predictions for ``configs``, evaluated together in one padded batch (of the padded
        ``shape`` (n_nodes, n_edges) when given, so that many structures share one compiled
        function; see :meth:`common_shape`)."""

    def predict_one(self, config: Configuration, stress: bool = False, shape=None) -> Prediction:
        return self.predict([config], stress=stress, shape=shape)[0]

    def energy(self, config: Configuration) -> float:
        return self.predict_one(config).energy

    def graph_batch(self, configs: Sequence[Configuration], shape=None):
        """The core's numpy GraphBatch of ``configs`` (one slot per configuration)."""
        return graph_batch(configs, self.species, self.cutoff, shape)

    def common_shape(self, configs: Sequence[Configuration]) -> tuple[int, int]:
        """A padded (n_nodes, n_edges) that fits each of ``configs`` alone in a batch."""

        atoms = max(c.n_atoms for c in configs) + 1
        edges = max(len(neighbor_list(c.positions, c.cell, c.pbc, self.cutoff)[0]) for c in configs)
        return bucket(atoms), bucket(edges)


def graph_batch(
    configs: Sequence[Configuration], species: Sequence[int], cutoff: float, shape=None, batch_size: int | None = None
):
    """One numpy :class:`mlffbench.graph.batching.GraphBatch` holding ``configs``: ``batch_size``
    slots (default: one per configuration) of the padded ``shape`` (n_nodes, n_edges) when given,
    so that batches of different structures share one compiled function.

    Unknown elements raise :class:`mlffbench.errors.DataError` naming the element.
    """

    ds = from_arrays(
        numbers=np.concatenate([np.asarray(c.numbers) for c in configs]),
        positions=np.concatenate([np.asarray(c.positions, np.float64) for c in configs]),
        n_atoms=[len(c.numbers) for c in configs],
        cell=np.stack([np.asarray(c.cell, np.float64) for c in configs]),
        pbc=np.stack([np.broadcast_to(np.asarray(c.pbc, bool), (3,)) for c in configs]),
        name="the structure",  # errors read "element X of dataset 'the structure' is not in the species table"
    )
    table = compute_neighbors(ds, cutoff)
    n_nodes, n_edges = shape if shape is not None else (None, None)
    batcher = GraphBatcher(ds, table, tuple(species), batch_size or len(configs), n_nodes=n_nodes, n_edges=n_edges)
    return batcher.make_batch(np.arange(len(configs)))


def per_configuration(batch, energy, forces, stress=None, atomic=None) -> list[Prediction]:
    """Per-configuration predictions from padded batch outputs (numpy arrays)."""
    graph_mask = np.asarray(batch.graph_mask)
    n_atoms = np.asarray(batch.n_atoms)[graph_mask]
    out = []
    start = 0
    for g, n in enumerate(n_atoms):
        out.append(
            Prediction(
                energy=float(energy[g]),
                forces=np.asarray(forces[start : start + n], np.float64).copy(),
                stress=None if stress is None else np.asarray(stress[g], np.float64).copy(),
                atomic_energies=None if atomic is None else np.asarray(atomic[start : start + n], np.float64).copy(),
            )
        )
        start += int(n)
    return out


class BackendPredictor(Predictor):
    """A backend's model with fixed parameters (``state``) on plain configurations, in the
    backend's precision (``TrainConfig.dtype``)."""

    def __init__(self, backend: Backend, state, species: Sequence[int], cutoff: float) -> None:
        self.backend = backend
        self.state = state
        self.species = tuple(int(z) for z in species)
        self.cutoff = float(cutoff)
        self.dtype = str(backend.config.dtype)

    @property
    def potential(self):
        """The backend's potential (the model's architecture, output scale and reference energies)."""
        return self.backend.potential

    def predict(
        self, configs: Sequence[Configuration], stress: bool = False, shape=None, *, atomic: bool = False
    ) -> list[Prediction]:
        """As :meth:`Predictor.predict`; with ``atomic`` the atomic energies too."""
        batch = self.graph_batch(configs, shape)
        out = self.backend.evaluate(self.state, batch, stress=stress, atomic=atomic)
        return per_configuration(batch, out.energy, out.forces, out.stress, out.atomic)
