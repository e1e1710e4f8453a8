"""Revised MD17 ``.npz`` files (one molecule, fixed atom order, free molecule).

Keys: ``nuclear_charges`` (N,), ``coords`` (C, N, 3) Å, ``energies`` (C,), ``forces`` (C, N, 3);
the original-MD17 extras (``old_indices``, ``old_energies``, ``old_forces``) are ignored.
rMD17 stores kcal/mol and kcal/mol/Å; the card's ``[units]`` says so.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mlffbench.data.formats._common import check_finite, check_numbers, check_shape, file_labels
from mlffbench.data.structures import StructureSet, concatenate, from_arrays
from mlffbench.errors import DataError
from mlffbench.plugin.registry import DatasetCard, FormatSpec

KEYS = ("nuclear_charges", "coords", "energies", "forces")


def read(paths: Sequence[Path], card: DatasetCard) -> StructureSet:
    labels = file_labels(paths, card)
    sets = [_read_file(Path(p), labels[i], card.name) for i, p in enumerate(paths)]
    return concatenate(sets, name=card.name).validate(card.name)


def _read_file(path: Path, label: str, name: str) -> StructureSet:
    arrays = {}
    try:
        # open the file here so that it is closed even when numpy fails half-way
        with open(path, "rb") as handle:
            data = np.load(handle, allow_pickle=False)
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise DataError(f"{path}: not an .npz archive")
            with data:
                for key in KEYS:
                    if key not in data.files:
                        raise DataError(f"{path}: missing key '{key}'")
                    arrays[key] = data[key]
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise DataError(f"{path}: cannot be read as .npz (truncated or corrupt: {exc})") from None
    z = check_shape(np.asarray(arrays["nuclear_charges"]), (None,), str(path), "nuclear_charges")
    z = check_numbers(z, f"{path} field 'nuclear_charges'")
    n = z.shape[0]
    coords = check_shape(np.asarray(arrays["coords"], np.float64), (None, n, 3), str(path), "coords")
    c = coords.shape[0]
    if c == 0:
        raise DataError(f"{path}: no configurations")
    energies = np.asarray(arrays["energies"], np.float64)
    if energies.shape == (c, 1):
        energies = energies[:, 0]
    check_shape(energies, (c,), str(path), "energies")
    forces = check_shape(np.asarray(arrays["forces"], np.float64), (c, n, 3), str(path), "forces")
    for key, arr in (("coords", coords), ("energies", energies), ("forces", forces)):
        check_finite(arr, str(path), key)
    return from_arrays(
        numbers=np.tile(z, c),
        positions=coords.reshape(-1, 3),
        n_atoms=np.full(c, n),
        energy=energies,
        forces=forces.reshape(-1, 3),
        origin=np.zeros(c, np.int64),
        origin_names=(label,),
        name=name,
    )


FORMAT = FormatSpec(
    name="rmd17-npz",
    read=read,
    description="revised MD17 .npz (nuclear_charges, coords, energies, forces) — one molecule per file",
)
