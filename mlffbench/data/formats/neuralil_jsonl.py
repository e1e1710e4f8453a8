"""NeuralIL JSON lines (e.g. the EAN ionic-liquid data): one JSON object per configuration.

Keys per line: ``Energy`` (total), ``Positions`` (N×3), ``Forces`` (N×3), ``Cell-Size`` (three
box lengths of an orthorhombic periodic cell, or a 3×3 matrix with lattice vectors as rows);
``Natoms`` is checked when present; other keys (``Charges``, ``Date``) are ignored.

A line may name its elements in ``Types`` (one symbol per atom); lines without it take the atom
order from the card's ``[options]``: either ``symbols = [...]`` (one per atom) or
``species = [{repeat = 15, symbols = [...]}, ...]`` (blocks of repeated molecules, concatenated
in order). A file whose every line has ``Types`` needs no options.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mlffbench.data.formats._common import as_float_array, file_labels, symbols_to_numbers
from mlffbench.data.structures import StructureSet, concatenate, from_arrays
from mlffbench.errors import DataError
from mlffbench.plugin.registry import DatasetCard, FormatSpec

REQUIRED_KEYS = ("Energy", "Positions", "Forces", "Cell-Size")


def atom_symbols(card: DatasetCard) -> list[str]:
    """The per-atom element symbols from the card's options."""
    opts = card.options
    where = f"dataset card '{card.name}'"
    if "symbols" in opts and "species" in opts:
        raise DataError(f"{where}: give either options.symbols or options.species, not both")
    if "symbols" in opts:
        given = opts["symbols"]
        if not isinstance(given, list) or not given or not all(isinstance(s, str) for s in given):
            raise DataError(f"{where}: options.symbols must be a non-empty array of element symbols")
        return list(given)
    if "species" not in opts:
        raise DataError(f"{where}: format 'neuralil-jsonl' needs options.symbols or options.species (atom order)")
    blocks = opts["species"]
    if not isinstance(blocks, list) or not blocks:
        raise DataError(f"{where}: options.species must be a non-empty array of {{repeat, symbols}} tables")
    symbols: list[str] = []
    for i, block in enumerate(blocks):
        ok = (
            isinstance(block, dict)
            and set(block) == {"repeat", "symbols"}
            and isinstance(block["repeat"], int)
            and block["repeat"] > 0
            and isinstance(block["symbols"], list)
            and block["symbols"]
            and all(isinstance(s, str) for s in block["symbols"])
        )
        if not ok:
            raise DataError(f"{where}: options.species[{i}] must be {{repeat = <int>, symbols = [<symbols>]}}")
        symbols.extend(block["symbols"] * block["repeat"])
    return symbols


def read(paths: Sequence[Path], card: DatasetCard) -> StructureSet:
    numbers = None
    if "symbols" in card.options or "species" in card.options:
        numbers = symbols_to_numbers(atom_symbols(card), f"dataset card '{card.name}' options")
    labels = file_labels(paths, card)
    sets = [_read_file(Path(p), i, labels, numbers, card.name) for i, p in enumerate(paths)]
    return concatenate(sets, name=card.name).validate(card.name)


def _line_numbers(record: dict, card_numbers: np.ndarray | None, where: str, name: str) -> np.ndarray:
    """The atomic numbers of one line: its ``Types``, else the card's atom order."""
    if "Types" in record:
        types = record["Types"]
        if not isinstance(types, list) or not types or not all(isinstance(t, str) for t in types):
            raise DataError(f"{where}: field 'Types' must be a non-empty array of element symbols")
        return symbols_to_numbers(types, f"{where} field 'Types'")
    if card_numbers is None:
        raise DataError(
            f"{where}: no field 'Types' and the dataset card '{name}' gives no atom order "
            "(options.symbols or options.species)"
        )
    return card_numbers


def _read_file(path: Path, index: int, labels: list[str], card_numbers: np.ndarray | None, name: str) -> StructureSet:
    energies, positions, forces, cells, all_numbers = [], [], [], [], []
    try:
        handle = path.open("r", encoding="utf-8")
    except OSError as exc:
        raise DataError(f"{path}: cannot be opened ({exc.strerror})") from None
    with handle:
        try:
            lines = list(handle)
        except UnicodeDecodeError:
            raise DataError(f"{path}: not a UTF-8 text file") from None
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path} line {lineno}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}: invalid JSON ({exc.msg}, column {exc.colno}; truncated file?)") from None
        if not isinstance(record, dict):
            raise DataError(f"{where}: expected a JSON object")
        for key in REQUIRED_KEYS:
            if key not in record:
                raise DataError(f"{where}: missing key '{key}'")
        energy = record["Energy"]
        if isinstance(energy, bool) or not isinstance(energy, int | float):
            raise DataError(f"{where}: field 'Energy' is not a number")
        if not np.isfinite(energy):
            raise DataError(f"{where}: field 'Energy' is NaN or infinite")
        numbers = _line_numbers(record, card_numbers, where, name)
        n = numbers.shape[0]
        if "Natoms" in record and record["Natoms"] != n:
            source = "its 'Types'" if "Types" in record else "the card's atom order"
            raise DataError(f"{where}: field 'Natoms' is {record['Natoms']}, but {source} has {n} atoms")
        pos = _per_atom(record, "Positions", where, n)
        frc = _per_atom(record, "Forces", where, n)
        cells.append(_cell(record["Cell-Size"], where))
        energies.append(float(energy))
        all_numbers.append(numbers)
        positions.append(pos)
        forces.append(frc)
    if not energies:
        raise DataError(f"{path}: no configurations (empty file)")
    c = len(energies)
    return from_arrays(
        numbers=np.concatenate(all_numbers),
        positions=np.concatenate(positions),
        n_atoms=np.array([z.shape[0] for z in all_numbers]),
        cell=np.stack(cells),
        pbc=np.ones((c, 3), bool),
        energy=np.array(energies),
        forces=np.concatenate(forces),
        origin=np.zeros(c, np.int64),
        origin_names=(labels[index],),
        name=name,
    )


def _per_atom(record: dict, key: str, where: str, n: int) -> np.ndarray:
    arr = as_float_array(record[key], where, key)
    if arr.shape != (n, 3):
        raise DataError(f"{where}: field '{key}' has shape {arr.shape}, expected ({n}, 3)")
    if not np.isfinite(arr).all():
        raise DataError(f"{where}: field '{key}' contains NaN or infinity")
    return arr


def _cell(value, where: str) -> np.ndarray:
    arr = as_float_array(value, where, "Cell-Size")
    if arr.shape == (3,):
        arr = np.diag(arr)
    elif arr.shape != (3, 3):
        raise DataError(f"{where}: field 'Cell-Size' has shape {arr.shape}, expected (3,) or (3, 3)")
    if not np.isfinite(arr).all() or not (np.linalg.norm(arr, axis=1) > 0).all():
        raise DataError(f"{where}: field 'Cell-Size' must be finite with non-zero lattice vectors")
    return arr


FORMAT = FormatSpec(
    name="neuralil-jsonl",
    read=read,
    description="NeuralIL JSON lines (Energy, Positions, Forces, Cell-Size per line); elements from 'Types' or the card",
)
