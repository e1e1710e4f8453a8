"""Training-set statistics handed to a model builder: reference energies and scales."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from mlffbench.errors import DataError


class ModelStats(Protocol):
    """What a model builder (``ModelSpec.build(config, stats)``) reads of the statistics:
    the species table and the per-species reference energies. :class:`DatasetStats` (the
    training statistics) and :class:`SpeciesStats` (a restored or test model's species
    alone) are such statistics."""

    @property
    def species(self) -> Sequence[int]:
        """Atomic numbers; model species index i is ``species[i]``."""
        ...

    @property
    def reference_energies(self) -> Sequence[float] | np.ndarray:
        """eV per atom of each species (a builder uses them where its config shifts energies)."""
        ...


@dataclass(frozen=True)
class SpeciesStats:
    """The statistics a model is built from when there is no training set at hand (a
    restored model, a test): its species and their reference energies, unchecked."""

    species: tuple[int, ...]
    reference_energies: Sequence[float] | np.ndarray


@dataclass(frozen=True)
class DatasetStats:
    """Statistics of the training configurations of one dataset.

    ======================  ==========================================================
    field                   meaning
    ======================  ==========================================================
    species                 atomic numbers of the dataset's elements, sorted (the
                            species table: model species index i is ``species[i]``)
    reference_energies      eV per atom of each species: least squares of the total
                            energy on the composition counts (zeros without energies)
    energy_per_atom_mean    mean of (E - sum of reference energies) / n_atoms, eV
    energy_per_atom_std     its standard deviation, eV (1.0 without energies)
    force_rms               root mean square force component, eV/Å (1.0 without forces)
    mean_neighbors          mean number of edges per atom at ``cutoff`` (0.0 without
                            a neighbour table)
    max_atoms               largest configuration (atoms)
    cutoff                  Å, of the neighbour table (0.0 without one)
    n_configs               configurations the statistics were taken over
    energy_offsets          eV per atom of each species, fitted after training when the
                            energies were not trained (empty: none); every restored
                            model adds them to its reference energies
    ======================  ==========================================================
    """

    species: tuple[int, ...]
    reference_energies: tuple[float, ...]
    energy_per_atom_mean: float
    energy_per_atom_std: float
    force_rms: float
    mean_neighbors: float
    max_atoms: int
    cutoff: float = 0.0
    n_configs: int = 0
    energy_offsets: tuple[float, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values."""
        out = dataclasses.asdict(self)
        out["species"] = list(self.species)
        out["reference_energies"] = list(self.reference_energies)
        out["energy_offsets"] = list(self.energy_offsets)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DatasetStats:
        names = [f.name for f in dataclasses.fields(cls)]
        required = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING]
        missing = [k for k in required if k not in data]
        if missing:
            raise DataError(f"dataset statistics: missing field '{missing[0]}'")
        unknown = [k for k in data if k not in names]
        if unknown:
            raise DataError(f"dataset statistics: unknown field '{unknown[0]}'")
        try:
            stats = cls(
                species=tuple(int(z) for z in data["species"]),
                reference_energies=tuple(float(e) for e in data["reference_energies"]),
                energy_per_atom_mean=float(data["energy_per_atom_mean"]),
                energy_per_atom_std=float(data["energy_per_atom_std"]),
                force_rms=float(data["force_rms"]),
                mean_neighbors=float(data["mean_neighbors"]),
                max_atoms=int(data["max_atoms"]),
                cutoff=float(data.get("cutoff", 0.0)),
                n_configs=int(data.get("n_configs", 0)),
                energy_offsets=tuple(float(e) for e in data.get("energy_offsets", ())),
            )
        except (TypeError, ValueError) as err:
            raise DataError(f"dataset statistics: malformed value ({err})") from None
        if stats.energy_offsets and (
            len(stats.energy_offsets) != len(stats.species) or not all(math.isfinite(e) for e in stats.energy_offsets)
        ):
            raise DataError(f"dataset statistics: energy_offsets must hold {len(stats.species)} finite values")
        if len(stats.reference_energies) != len(stats.species):
            raise DataError(
                f"dataset statistics: {len(stats.reference_energies)} reference energies "
                f"for {len(stats.species)} species"
            )
        return stats

    def reference_energy_of(self, numbers) -> float:
        """Sum of the reference energies of the given atoms (atomic numbers), eV."""
        lookup = {z: e for z, e in zip(self.species, self.reference_energies, strict=True)}
        try:
            return float(sum(lookup[int(z)] for z in np.asarray(numbers).reshape(-1)))
        except KeyError as err:
            raise DataError(f"element Z={err.args[0]} is not among the species {self.species}") from None


def composition_counts(ds, indices: np.ndarray, species: tuple[int, ...]) -> np.ndarray:
    """(len(indices), len(species)) atoms of each species in each chosen configuration."""
    idx = np.asarray(indices, dtype=np.int64)
    n_atoms = np.asarray(ds.n_atoms, dtype=np.int64)
    offsets = ds.offsets
    counts_per_config = n_atoms[idx]
    before = np.cumsum(counts_per_config) - counts_per_config
    atoms = np.repeat(offsets[idx] - before, counts_per_config) + np.arange(int(counts_per_config.sum()))
    column = np.searchsorted(np.asarray(species), ds.numbers[atoms])
    row = np.repeat(np.arange(idx.size), counts_per_config)
    counts = np.zeros((idx.size, len(species)), np.float64)
    np.add.at(counts, (row, column), 1.0)
    return counts


def compute_stats(ds, indices, neighbors=None) -> DatasetStats:
    """Statistics over the configurations ``indices`` (the train split) of ``ds``.

    ``species`` are all elements of the dataset (not just of ``indices``), so the species
    table also covers validation and test; a species absent from ``indices`` gets a
    reference energy of 0. ``neighbors`` is the dataset's NeighborTable (or None).
    """
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    name = ds.name or "dataset"
    if idx.size == 0:
        raise DataError(f"no configurations to compute statistics of dataset '{name}' from")
    if idx.min() < 0 or idx.max() >= ds.n_configs:
        raise DataError(f"configuration indices out of range for dataset '{name}'")
    species = ds.elements
    n_atoms = np.asarray(ds.n_atoms, dtype=np.int64)[idx]
    counts = composition_counts(ds, idx, species)

    if ds.energy is not None:
        energy = np.asarray(ds.energy, dtype=np.float64)[idx]
        # shift by a mean per-atom energy first: better conditioned, same least-squares answer
        shift = float(energy.sum() / n_atoms.sum())
        solution, *_ = np.linalg.lstsq(counts, energy - shift * n_atoms, rcond=None)
        present = counts.sum(axis=0) > 0
        reference = np.where(present, solution + shift, 0.0)
        residual = (energy - counts @ reference) / n_atoms
        e_mean, e_std = float(residual.mean()), float(residual.std())
    else:
        reference = np.zeros(len(species))
        e_mean, e_std = 0.0, 1.0

    if ds.forces is not None:
        offsets = ds.offsets
        before = np.cumsum(n_atoms) - n_atoms
        atoms = np.repeat(offsets[idx] - before, n_atoms) + np.arange(int(n_atoms.sum()))
        force_rms = float(np.sqrt(np.mean(np.square(ds.forces[atoms]))))
    else:
        force_rms = 1.0

    if neighbors is not None:
        if neighbors.n_configs != ds.n_configs:
            raise DataError(
                f"neighbour table has {neighbors.n_configs} configurations, dataset '{name}' has {ds.n_configs}"
            )
        mean_neighbors = float(np.asarray(neighbors.n_edges)[idx].sum() / n_atoms.sum())
        cutoff = float(neighbors.cutoff)
    else:
        mean_neighbors, cutoff = 0.0, 0.0

    for label, value in (("energy", e_mean), ("energy", e_std), ("forces", force_rms)):
        if not math.isfinite(value):
            raise DataError(f"dataset '{name}': {label} statistics are not finite")
    return DatasetStats(
        species=tuple(int(z) for z in species),
        reference_energies=tuple(float(e) for e in reference),
        energy_per_atom_mean=e_mean,
        energy_per_atom_std=e_std,
        force_rms=force_rms,
        mean_neighbors=mean_neighbors,
        max_atoms=int(n_atoms.max()),
        cutoff=cutoff,
        n_configs=int(idx.size),
    )
