"""Reader for the ANI-style HDF5 layout shared by ANI-1 and COMP6.

Every group that holds a ``coordinates`` dataset is one molecule (or one dimer curve):
``species`` (n_atoms,) element symbols as bytes, ``coordinates`` (n_conf, n_atoms, 3) Å,
``energies`` (n_conf,), optionally ``forces`` (n_conf, n_atoms, 3). Each such group becomes one
group of the StructureSet; its name is the HDF5 group's own name (e.g. ``gdb11_s01-0``, ``mol00``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mlffbench.data.formats._common import check_finite, check_shape, file_labels, symbols_to_numbers
from mlffbench.data.structures import StructureSet, concatenate, from_arrays
from mlffbench.errors import DataError
from mlffbench.plugin.registry import DatasetCard


def _natural_key(name: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def read_ani_layout(paths: Sequence[Path], card: DatasetCard, forces: bool, force_sign: float = 1.0) -> StructureSet:
    labels = file_labels(paths, card)
    sets = [_read_file(Path(p), labels[i], forces, force_sign, card.name) for i, p in enumerate(paths)]
    return concatenate(sets, name=card.name).validate(card.name)


def _molecule_groups(h5file) -> list:
    """Groups holding a ``coordinates`` dataset, depth first, children in natural name order."""
    import h5py

    found = []

    def walk(group):
        if isinstance(group.get("coordinates"), h5py.Dataset):
            found.append(group)
            return
        for key in sorted(group.keys(), key=_natural_key):
            child = group.get(key, getclass=True)
            if child is h5py.Group:
                walk(group[key])

    walk(h5file)
    return found


def _read_file(path: Path, label: str, forces: bool, force_sign: float, name: str) -> StructureSet:
    import h5py

    try:
        h5 = h5py.File(path, "r")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as exc:
        raise DataError(f"{path}: not a readable HDF5 file (truncated or corrupt: {exc})") from None
    numbers, positions, frc, energy, group, group_names = [], [], [], [], [], []
    n_atoms = []
    with h5:
        try:
            groups = _molecule_groups(h5)
        except (OSError, RuntimeError, KeyError) as exc:
            raise DataError(f"{path}: HDF5 structure cannot be read (truncated or corrupt: {exc})") from None
        if not groups:
            raise DataError(f"{path}: no group holds a 'coordinates' dataset (not an ANI-style HDF5 file)")
        for g in groups:
            where = f"{path} group '{g.name}'"
            need = ("species", "coordinates", "energies", *(("forces",) if forces else ()))
            for key in need:
                if key not in g:
                    raise DataError(f"{where}: missing dataset '{key}'")
            try:
                species = np.asarray(g["species"][()]).reshape(-1)
                coords = np.asarray(g["coordinates"][()], dtype=np.float64)
                e = np.asarray(g["energies"][()], dtype=np.float64)
                f = np.asarray(g["forces"][()], dtype=np.float64) if forces else None
            except (OSError, RuntimeError, ValueError, TypeError) as exc:
                raise DataError(f"{where}: dataset cannot be read (truncated or corrupt: {exc})") from None
            z = symbols_to_numbers(species, f"{where} field 'species'")
            n = z.shape[0]
            check_shape(coords, (None, n, 3), where, "coordinates")
            c = coords.shape[0]
            if c == 0:
                continue
            check_shape(e, (c,), where, "energies")
            check_finite(coords, where, "coordinates", "conformation")
            check_finite(e, where, "energies", "conformation")
            if f is not None:
                check_shape(f, (c, n, 3), where, "forces")
                check_finite(f, where, "forces", "conformation")
                frc.append(force_sign * f.reshape(-1, 3))
            leaf = g.name.rsplit("/", 1)[-1]
            group_names.append(leaf if leaf not in group_names else g.name.lstrip("/"))
            numbers.append(np.tile(z, c))
            positions.append(coords.reshape(-1, 3))
            energy.append(e)
            n_atoms.append(np.full(c, n))
            group.append(np.full(c, len(group_names) - 1))
    if not energy:
        raise DataError(f"{path}: no conformations")
    c = sum(len(e) for e in energy)
    return from_arrays(
        numbers=np.concatenate(numbers),
        positions=np.concatenate(positions),
        n_atoms=np.concatenate(n_atoms),
        energy=np.concatenate(energy),
        forces=np.concatenate(frc) if forces else None,
        group=np.concatenate(group),
        group_names=group_names,
        origin=np.zeros(c, np.int64),
        origin_names=(label,),
        name=name,
    )
