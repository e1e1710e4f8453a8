"""The one columnar container every dataset is turned into.

Arrays for C configurations with A atoms in total (atoms of all configurations
concatenated, in order):

==============  ============  =====================================================
field           shape         meaning
==============  ============  =====================================================
numbers         (A,) int32    atomic numbers
positions       (A, 3) f64    Cartesian positions, Å
n_atoms         (C,) int64    atoms per configuration
cell            (C, 3, 3) f64 lattice vectors as rows, Å (zeros when non-periodic)
pbc             (C, 3) bool   periodic along each lattice vector
energy          (C,) f64      total energy, eV (None when the data has none)
forces          (A, 3) f64    forces, eV/Å (None when the data has none)
stress          (C, 3, 3) f64 stress, eV/Å³ (None when the data has none)
group           (C,) int64    group id (e.g. molecule), index into group_names
origin          (C,) int64    source file, index into origin_names
==============  ============  =====================================================
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlffbench.data import elements
from mlffbench.errors import DataError


@dataclass(frozen=True, eq=False)
class StructureSet:
    numbers: np.ndarray
    positions: np.ndarray
    n_atoms: np.ndarray
    cell: np.ndarray
    pbc: np.ndarray
    energy: np.ndarray | None = None
    forces: np.ndarray | None = None
    stress: np.ndarray | None = None
    group: np.ndarray | None = None
    group_names: tuple[str, ...] = ()
    origin: np.ndarray | None = None
    origin_names: tuple[str, ...] = ()
    name: str = ""

    # ------------------------------------------------------------------ shape
    @property
    def n_configs(self) -> int:
        return int(self.n_atoms.shape[0])

    @property
    def offsets(self) -> np.ndarray:
        """Start index of each configuration's atoms, plus the total at the end: (C+1,)."""
        return np.concatenate([[0], np.cumsum(self.n_atoms)]).astype(np.int64)

    def __len__(self) -> int:
        return self.n_configs

    def atoms_of(self, i: int) -> slice:
        start = int(self.offsets[i])
        return slice(start, start + int(self.n_atoms[i]))

    @property
    def elements(self) -> tuple[int, ...]:
        return tuple(int(z) for z in np.unique(self.numbers))

    @property
    def periodic(self) -> bool:
        return bool(self.pbc.any())

    def formula(self, i: int) -> str:
        return elements.formula(self.numbers[self.atoms_of(i)])

    # -------------------------------------------------------------- selection
    def select(self, indices) -> StructureSet:
        """A new set with the given configurations, in the given order."""
        idx = np.asarray(indices, dtype=np.int64)
        if idx.ndim != 1 or (idx.size and (idx.min() < 0 or idx.max() >= self.n_configs)):
            raise DataError(f"configuration indices out of range for dataset '{self.name}'")
        offsets = self.offsets
        atom_idx = (
            np.concatenate([np.arange(offsets[i], offsets[i + 1]) for i in idx]) if idx.size else np.zeros(0, np.int64)
        )

        def pick(arr, per_atom):
            if arr is None:
                return None
            return arr[atom_idx] if per_atom else arr[idx]

        return dataclasses.replace(
            self,
            numbers=self.numbers[atom_idx],
            positions=self.positions[atom_idx],
            n_atoms=self.n_atoms[idx],
            cell=self.cell[idx],
            pbc=self.pbc[idx],
            energy=pick(self.energy, False),
            forces=pick(self.forces, True),
            stress=pick(self.stress, False),
            group=pick(self.group, False),
            origin=pick(self.origin, False),
        )

    # ------------------------------------------------------------- validation
    def validate(self, where: str = "") -> StructureSet:
        """Check shapes, dtypes and values; raise DataError naming the field otherwise."""
        where = where or self.name or "dataset"
        c = self.n_atoms.shape[0]
        a = int(self.n_atoms.sum()) if c else 0

        def need(cond: bool, message: str) -> None:
            if not cond:
                raise DataError(f"{where}: {message}")

        need(self.n_atoms.ndim == 1 and c > 0, "no configurations")
        need(bool((self.n_atoms > 0).all()), "a configuration has no atoms")
        need(self.numbers.shape == (a,), f"numbers has shape {self.numbers.shape}, expected ({a},)")
        need(self.positions.shape == (a, 3), f"positions has shape {self.positions.shape}, expected ({a}, 3)")
        need(self.cell.shape == (c, 3, 3), f"cell has shape {self.cell.shape}, expected ({c}, 3, 3)")
        need(self.pbc.shape == (c, 3), f"pbc has shape {self.pbc.shape}, expected ({c}, 3)")
        bad = self.numbers[(self.numbers < 1) | (self.numbers >= len(elements.SYMBOLS))]
        need(bad.size == 0, f"unknown atomic number {bad[:1].tolist()[0] if bad.size else ''}")
        need(bool(np.isfinite(self.positions).all()), "positions contain NaN or infinity")
        need(bool(np.isfinite(self.cell).all()), "cell contains NaN or infinity")
        for axis in range(3):
            lengths = np.linalg.norm(self.cell[:, axis], axis=-1)
            need(bool((lengths[self.pbc[:, axis]] > 0).all()), "periodic direction with a zero cell vector")
        if self.energy is not None:
            need(self.energy.shape == (c,), f"energy has shape {self.energy.shape}, expected ({c},)")
            _finite(self.energy, "energy", where, self.offsets, per_atom=False)
        if self.forces is not None:
            need(self.forces.shape == (a, 3), f"forces has shape {self.forces.shape}, expected ({a}, 3)")
            _finite(self.forces, "forces", where, self.offsets, per_atom=True)
        if self.stress is not None:
            need(self.stress.shape == (c, 3, 3), f"stress has shape {self.stress.shape}, expected ({c}, 3, 3)")
            _finite(self.stress, "stress", where, self.offsets, per_atom=False)
        for name, names in (("group", self.group_names), ("origin", self.origin_names)):
            arr = getattr(self, name)
            if arr is not None:
                need(arr.shape == (c,), f"{name} has shape {arr.shape}, expected ({c},)")
                need(bool(((arr >= 0) & (arr < max(len(names), 1))).all()), f"{name} ids out of range")
        return self

    # ------------------------------------------------------------ fingerprint
    def fingerprint(self) -> str:
        """sha256 of the canonical array bytes: identical data gives the same value anywhere."""
        h = hashlib.sha256()
        for name in ("numbers", "positions", "n_atoms", "cell", "pbc", "energy", "forces", "stress", "group", "origin"):
            arr = getattr(self, name)
            h.update(name.encode())
            if arr is None:
                h.update(b"<none>")
                continue
            canonical = np.ascontiguousarray(arr, dtype=_CANONICAL[name]).astype(_CANONICAL[name].newbyteorder("<"))
            h.update(str(canonical.shape).encode())
            h.update(canonical.tobytes())
        for names in (self.group_names, self.origin_names):
            h.update("\x1f".join(names).encode())
        return h.hexdigest()

    # ----------------------------------------------------------- persistence
    def save(self, path: Path) -> None:
        """Write to HDF5 atomically (temp file, then rename)."""
        import h5py

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with h5py.File(tmp, "w") as f:
            for name in (
                "numbers",
                "positions",
                "n_atoms",
                "cell",
                "pbc",
                "energy",
                "forces",
                "stress",
                "group",
                "origin",
            ):
                arr = getattr(self, name)
                if arr is not None:
                    f.create_dataset(name, data=arr)
            f.attrs["group_names"] = "\x1f".join(self.group_names)
            f.attrs["origin_names"] = "\x1f".join(self.origin_names)
            f.attrs["name"] = self.name
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> StructureSet:
        import h5py

        with h5py.File(path, "r") as f:
            arrays = {k: f[k][()] for k in f}
            names: dict[str, Any] = {
                k: tuple(s for s in str(f.attrs[k]).split("\x1f") if s) for k in ("group_names", "origin_names")
            }
            name = str(f.attrs["name"])
        return cls(**arrays, **names, name=name)


_CANONICAL: dict[str, np.dtype] = {
    "numbers": np.dtype(np.int32),
    "positions": np.dtype(np.float64),
    "n_atoms": np.dtype(np.int64),
    "cell": np.dtype(np.float64),
    "pbc": np.dtype(np.bool_),
    "energy": np.dtype(np.float64),
    "forces": np.dtype(np.float64),
    "stress": np.dtype(np.float64),
    "group": np.dtype(np.int64),
    "origin": np.dtype(np.int64),
}


def _finite(arr: np.ndarray, field: str, where: str, offsets: np.ndarray, per_atom: bool) -> None:
    finite = np.isfinite(arr).reshape(arr.shape[0], -1).all(axis=1)
    if finite.all():
        return
    first = int(np.argmin(finite))
    config = int(np.searchsorted(offsets, first, side="right") - 1) if per_atom else first
    raise DataError(f"{where}: {field} contain NaN or infinity (configuration {config})")


def from_arrays(
    numbers,
    positions,
    n_atoms,
    cell=None,
    pbc=None,
    energy=None,
    forces=None,
    stress=None,
    group=None,
    group_names=(),
    origin=None,
    origin_names=(),
    name: str = "",
) -> StructureSet:
    """Build a StructureSet with canonical dtypes; missing cell/pbc mean a free molecule."""
    n_atoms = np.asarray(n_atoms, dtype=np.int64).reshape(-1)
    c = n_atoms.shape[0]

    def opt(x, dtype):
        return None if x is None else np.asarray(x, dtype=dtype)

    cell = np.zeros((c, 3, 3)) if cell is None else np.asarray(cell, dtype=np.float64)
    pbc = np.zeros((c, 3), bool) if pbc is None else np.asarray(pbc, dtype=bool)
    return StructureSet(
        numbers=np.asarray(numbers, dtype=np.int32).reshape(-1),
        positions=np.asarray(positions, dtype=np.float64),
        n_atoms=n_atoms,
        cell=cell,
        pbc=pbc,
        energy=opt(energy, np.float64),
        forces=opt(forces, np.float64),
        stress=opt(stress, np.float64),
        group=opt(group, np.int64),
        group_names=tuple(group_names),
        origin=opt(origin, np.int64),
        origin_names=tuple(origin_names),
        name=name,
    )


def concatenate(sets: list[StructureSet], name: str = "") -> StructureSet:
    """Join sets (e.g. several files of one dataset); group/origin ids are re-based."""
    if not sets:
        raise DataError("no structures to join")

    def cat(field):
        arrs = [getattr(s, field) for s in sets]
        if any(a is None for a in arrs):
            return None
        return np.concatenate(arrs)

    group_names: list[str] = []
    origin_names: list[str] = []
    groups, origins = [], []
    for s in sets:
        if s.group is not None:
            remap = np.array([_index(group_names, n) for n in s.group_names] or [0], dtype=np.int64)
            groups.append(remap[s.group])
        if s.origin is not None:
            remap = np.array([_index(origin_names, n) for n in s.origin_names] or [0], dtype=np.int64)
            origins.append(remap[s.origin])
    return StructureSet(
        numbers=cat("numbers"),
        positions=cat("positions"),
        n_atoms=cat("n_atoms"),
        cell=cat("cell"),
        pbc=cat("pbc"),
        energy=cat("energy"),
        forces=cat("forces"),
        stress=cat("stress"),
        group=np.concatenate(groups) if len(groups) == len(sets) else None,
        group_names=tuple(group_names),
        origin=np.concatenate(origins) if len(origins) == len(sets) else None,
        origin_names=tuple(origin_names),
        name=name or sets[0].name,
    )


def _index(names: list[str], name: str) -> int:
    if name not in names:
        names.append(name)
    return names.index(name)
