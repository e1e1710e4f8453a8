"""Small helpers shared by the format adapters (not part of the public API)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mlffbench.data import elements
from mlffbench.errors import DataError
from mlffbench.plugin.registry import DatasetCard


def file_labels(paths: Sequence[Path], card: DatasetCard) -> list[str]:
    """A short name per file for ``origin_names``: the card's relative path when the paths
    are the card's files (same order), else the path as given."""
    paths = [Path(p) for p in paths]
    if len(paths) == len(card.files) and all(
        p.as_posix() == f.path or p.as_posix().endswith("/" + f.path) for p, f in zip(paths, card.files, strict=True)
    ):
        return [f.path for f in card.files]
    return [str(p) for p in paths]


def symbols_to_numbers(symbols, where: str) -> np.ndarray:
    """Atomic numbers of element symbols (str or bytes); DataError names ``where`` otherwise."""
    out = np.empty(len(symbols), np.int32)
    cache: dict[str, int] = {}
    for i, s in enumerate(symbols):
        if isinstance(s, bytes | np.bytes_):
            s = s.decode("ascii", errors="replace")
        s = str(s)
        if s not in cache:
            cache[s] = elements.atomic_number(s, where)
        out[i] = cache[s]
    return out


def check_numbers(numbers: np.ndarray, where: str) -> np.ndarray:
    """Atomic numbers must name real elements."""
    numbers = np.asarray(numbers)
    bad = numbers[(numbers < 1) | (numbers >= len(elements.SYMBOLS))]
    if bad.size:
        raise DataError(f"{where}: unknown atomic number {int(bad[0])}")
    return numbers.astype(np.int32)


def check_shape(arr: np.ndarray, expected: tuple, where: str, field: str) -> np.ndarray:
    """``expected`` may hold None for a free axis."""
    ok = arr.ndim == len(expected) and all(e is None or a == e for a, e in zip(arr.shape, expected, strict=True))
    if not ok:
        shown = (
            "(" + ", ".join("n" if e is None else str(e) for e in expected) + ("," if len(expected) == 1 else "") + ")"
        )
        raise DataError(f"{where}: field '{field}' has shape {tuple(arr.shape)}, expected {shown}")
    return arr


def check_finite(arr: np.ndarray, where: str, field: str, what: str = "configuration") -> None:
    """Raise naming the field and the first configuration (leading axis) with NaN or infinity."""
    arr = np.asarray(arr, dtype=np.float64)
    if arr.size == 0:
        return
    finite = np.isfinite(arr.reshape(arr.shape[0], -1)).all(axis=1) if arr.ndim else np.isfinite(arr)
    if not np.all(finite):
        first = int(np.argmin(finite)) if arr.ndim else 0
        raise DataError(f"{where}: field '{field}' contains NaN or infinity ({what} {first})")


def as_float_array(value, where: str, field: str) -> np.ndarray:
    """A JSON/TOML value as a float array; DataError when it is not numeric."""
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{where}: field '{field}' is not an array of numbers") from None


def zero_open_directions(cell: np.ndarray, pbc: np.ndarray) -> np.ndarray:
    """Cell rows of non-periodic directions set to zero (StructureSet's convention)."""
    return np.where(pbc[..., :, None], cell, 0.0)
