"""A JSON-serialisable summary of a loaded dataset (for ``mlffbench datasets`` and run records)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from mlffbench.data import elements
from mlffbench.data.structures import StructureSet
from mlffbench.plugin.registry import DatasetCard

MAX_FORMULAS = 10


def _f(x) -> float:
    return float(x)


def formula_counts(ds: StructureSet) -> Counter:
    """Hill formula → number of configurations (vectorised over compositions)."""
    species, index = np.unique(ds.numbers, return_inverse=True)
    config = np.repeat(np.arange(ds.n_configs), ds.n_atoms)
    counts = np.zeros((ds.n_configs, species.size), np.int64)
    np.add.at(counts, (config, index.reshape(-1)), 1)
    rows, inverse = np.unique(counts, axis=0, return_inverse=True)
    per_row = np.bincount(inverse.reshape(-1), minlength=rows.shape[0])
    out: Counter = Counter()
    for row, k in zip(rows, per_row, strict=True):
        out[elements.formula(np.repeat(species, row))] += int(k)
    return out


def describe(ds: StructureSet, card: DatasetCard) -> dict[str, Any]:
    """Counts, elements, formulas, periodicity, label statistics (eV, Å) and the fingerprint."""
    from mlffbench.data.loading import config_roles

    n = ds.n_atoms
    formulas = formula_counts(ds)
    pbc_any = ds.pbc.any(axis=1)
    periodic = "yes" if pbc_any.all() else "no" if not pbc_any.any() else "mixed"
    cell = None
    if ds.n_configs and np.allclose(ds.cell, ds.cell[0]) and pbc_any.any():
        cell = [_f(x) for x in np.linalg.norm(ds.cell[0], axis=1)]

    out: dict[str, Any] = {
        "name": card.name,
        "format": card.format,
        "configurations": int(ds.n_configs),
        "atoms_min": int(n.min()),
        "atoms_max": int(n.max()),
        "atoms_total": int(n.sum()),
        "elements": [elements.symbol(z) for z in ds.elements],
        "formulas": {k: int(v) for k, v in formulas.most_common(MAX_FORMULAS)},
        "distinct_formulas": len(formulas),
        "periodic": periodic,
        "cell": cell,
        "has_energy": ds.energy is not None,
        "has_forces": ds.forces is not None,
        "has_stress": ds.stress is not None,
        "energy_per_atom_mean": None,
        "energy_per_atom_std": None,
        "energy_min": None,
        "energy_max": None,
        "force_component_std": None,
        "force_mean_abs": None,
        "force_max_norm": None,
    }
    if ds.energy is not None:
        per_atom = ds.energy / n
        out.update(
            energy_per_atom_mean=_f(per_atom.mean()),
            energy_per_atom_std=_f(per_atom.std()),
            energy_min=_f(ds.energy.min()),
            energy_max=_f(ds.energy.max()),
        )
    if ds.forces is not None:
        out.update(
            force_component_std=_f(ds.forces.std()),
            force_mean_abs=_f(np.abs(ds.forces).mean()),
            force_max_norm=_f(np.linalg.norm(ds.forces, axis=1).max()),
        )
    roles = config_roles(ds, card)
    out["files"] = {(role or "all"): int(count) for role, count in sorted(Counter(roles.tolist()).items())}
    out["groups"] = len(ds.group_names) if ds.group is not None else 0
    out["fingerprint"] = ds.fingerprint()
    return out
