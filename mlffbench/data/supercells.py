"""Periodic supercells of a dataset configuration (for system-size sweeps), numpy only."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mlffbench.data.structures import StructureSet, from_arrays
from mlffbench.errors import ConfigError


def supercell(ds: StructureSet, index: int, reps: Sequence[int]) -> StructureSet:
    """Configuration ``index`` of ``ds`` repeated ``reps`` times along its lattice vectors.

    Atoms are tiled cell by cell (image (i, j, k) is shifted by i·a1 + j·a2 + k·a3) and the
    cell vectors are multiplied; a direction can only be repeated where the configuration is
    periodic. Energies and forces are left out (a supercell has no reference data).
    """
    reps = tuple(int(r) for r in reps)
    if len(reps) != 3 or any(r < 1 for r in reps):
        raise ConfigError(f"supercell repetitions must be three positive integers, got {reps}")
    if not 0 <= int(index) < ds.n_configs:
        raise ConfigError(f"configuration {index} out of range ({ds.n_configs} configurations)")
    sl = ds.atoms_of(int(index))
    numbers, positions = ds.numbers[sl], ds.positions[sl]
    cell, pbc = np.asarray(ds.cell[index], np.float64), np.asarray(ds.pbc[index], bool)
    for axis, r in enumerate(reps):
        if r > 1 and not pbc[axis]:
            raise ConfigError(
                f"configuration {index} of '{ds.name}' is not periodic along lattice vector {axis}; it cannot be repeated"
            )
    images = np.stack(np.meshgrid(*(np.arange(r) for r in reps), indexing="ij"), axis=-1).reshape(-1, 3)
    shifts = images.astype(np.float64) @ cell  # (M, 3)
    tiled = (positions[None, :, :] + shifts[:, None, :]).reshape(-1, 3)
    big_cell = cell * np.asarray(reps, np.float64)[:, None]
    return from_arrays(
        numbers=np.tile(numbers, len(images)),
        positions=tiled,
        n_atoms=[tiled.shape[0]],
        cell=big_cell[None],
        pbc=pbc[None],
        name=f"{ds.name}[{index}]x{reps[0]}x{reps[1]}x{reps[2]}",
    )
