"""Periodic neighbour lists (vesin) for one configuration and for a whole StructureSet.

Edge convention used everywhere in mlffbench: an edge e goes from ``senders[e]`` to
``receivers[e]`` and its vector is

    positions[receivers] - positions[senders] + shifts @ cell

with integer ``shifts`` (one per lattice vector, zero along non-periodic directions).
Lists are *full* (both directions of every pair), contain every periodic image within
the cutoff (several images of one pair, and self-images ``(i, i, S != 0)``, when the
cutoff exceeds the cell), never the self pair with zero shift, and keep pairs with
distance strictly below the cutoff. Edges are sorted by (receiver, sender, shift), so
segment sums over receivers can use ``indices_are_sorted``.
"""

from __future__ import annotations

import math
import os
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlffbench.errors import ConfigError, DataError

CACHE_VERSION = 1
_SMALL_MOLECULE = 48  # free molecules up to this size: vectorised all-pairs instead of vesin
_PAIRS_PER_CHUNK = 1 << 20


def _check_cutoff(cutoff: float) -> float:
    try:
        value = float(cutoff)
    except (TypeError, ValueError):
        raise ConfigError(f"neighbour cutoff must be a number, got {cutoff!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"neighbour cutoff must be a positive finite length in Å, got {cutoff!r}")
    return value


def neighbor_list(positions, cell, pbc, cutoff: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Full neighbour list of one configuration.

    Args:
        positions: (n, 3) Cartesian positions, Å (need not be wrapped into the cell).
        cell: (3, 3) lattice vectors as rows, Å; rows of non-periodic directions are ignored
            (zeros are fine; an all-zero cell with no periodic direction is a free molecule).
        pbc: (3,) periodic along each lattice vector.
        cutoff: pairs with distance < cutoff (strictly) are kept, Å.

    Returns:
        ``(senders, receivers, shifts)``: int32 (E,), int32 (E,), int32 (E, 3), sorted by
        (receiver, sender, shift).
    """
    cutoff = _check_cutoff(cutoff)
    pos = np.ascontiguousarray(positions, dtype=np.float64)
    box = np.array(cell, dtype=np.float64)
    periodic = np.asarray(pbc, dtype=bool).reshape(-1)
    if pos.ndim != 2 or pos.shape[1] != 3:
        raise DataError(f"positions must have shape (n, 3), got {pos.shape}")
    if box.shape != (3, 3):
        raise DataError(f"cell must have shape (3, 3), got {box.shape}")
    if periodic.shape != (3,):
        raise DataError(f"pbc must have 3 entries, got {periodic.shape[0]}")
    if not (np.isfinite(pos).all() and np.isfinite(box).all()):
        raise DataError("positions or cell contain NaN or infinity")
    empty = (np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros((0, 3), np.int32))
    if pos.shape[0] == 0:
        return empty
    if periodic.any():
        for k in np.flatnonzero(periodic):
            if not np.linalg.norm(box[k]) > 0:
                raise DataError(f"periodic direction {int(k)} has a zero cell vector")
        if abs(np.linalg.det(box[periodic] @ box[periodic].T)) < 1e-12:
            raise DataError("the periodic cell vectors are linearly dependent")
    else:
        box = np.zeros((3, 3))  # vesin: a free system has a zero box

    import vesin  # imported here: the neighbour list is the only user

    calculator = vesin.NeighborList(cutoff=cutoff, full_list=True)
    i, j, shifts, vectors = calculator.compute(pos, box, periodic=[bool(p) for p in periodic], quantities="ijSD")
    # vesin's own test is "<= cutoff" up to rounding; apply the strict definition here
    keep = np.einsum("ij,ij->i", vectors, vectors) < cutoff * cutoff
    keep &= ~((i == j) & ~shifts.any(axis=1))
    senders = i[keep].astype(np.int32)
    receivers = j[keep].astype(np.int32)
    shifts = shifts[keep].astype(np.int32)
    if senders.size == 0:
        return empty
    order = np.lexsort((shifts[:, 2], shifts[:, 1], shifts[:, 0], senders, receivers))
    return senders[order], receivers[order], np.ascontiguousarray(shifts[order])


@dataclass(frozen=True, eq=False)
class NeighborTable:
    """Neighbour lists of all C configurations of a StructureSet, concatenated.

    ==============  ==============  ===================================================
    field           shape           meaning
    ==============  ==============  ===================================================
    senders         (E,) int32      atom index *within its configuration*
    receivers       (E,) int32      atom index within its configuration
    shifts          (E, 3) int32    integer cell shifts (see the module docstring)
    n_edges         (C,) int64      edges of each configuration (contiguous, in order)
    cutoff          float           Å
    fingerprint     str             ``StructureSet.fingerprint()`` of the set ("" unknown)
    ==============  ==============  ===================================================
    """

    senders: np.ndarray
    receivers: np.ndarray
    shifts: np.ndarray
    n_edges: np.ndarray
    cutoff: float
    fingerprint: str = ""

    @property
    def n_configs(self) -> int:
        return int(self.n_edges.shape[0])

    @property
    def offsets(self) -> np.ndarray:
        """Start of each configuration's edges, plus the total at the end: (C+1,) int64."""
        return np.concatenate([[0], np.cumsum(self.n_edges)]).astype(np.int64)

    def edges_of(self, i: int) -> slice:
        """Slice of configuration i's edges in senders/receivers/shifts."""
        if not 0 <= i < self.n_configs:
            raise DataError(f"configuration {i} out of range (table has {self.n_configs})")
        start = int(self.n_edges[:i].sum())
        return slice(start, start + int(self.n_edges[i]))

    def config(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(senders, receivers, shifts) of configuration i, local atom indices."""
        sl = self.edges_of(i)
        return self.senders[sl], self.receivers[sl], self.shifts[sl]

    def degrees(self, n_atoms: np.ndarray) -> np.ndarray:
        """Edges received by each atom, (A,) int64, for atoms laid out as in the StructureSet.

        ``n_atoms`` is the set's per-configuration atom count; with a full list this is
        also the number of neighbours (images counted separately) of each atom.
        """
        n_atoms = np.asarray(n_atoms, dtype=np.int64)
        if n_atoms.shape != self.n_edges.shape:
            raise DataError(f"n_atoms has {n_atoms.shape[0]} configurations, the neighbour table {self.n_configs}")
        atom_offsets = np.concatenate([[0], np.cumsum(n_atoms)[:-1]]).astype(np.int64)
        global_receivers = self.receivers.astype(np.int64) + np.repeat(atom_offsets, self.n_edges)
        return np.bincount(global_receivers, minlength=int(n_atoms.sum()))


def _cache_path(cache_dir: Path, fingerprint: str, cutoff: float) -> Path:
    # repr of a float round-trips exactly, so equal cutoffs share a file and different ones never do
    return Path(cache_dir) / f"neighbors-v{CACHE_VERSION}-{fingerprint[:32]}-rc{cutoff!r}.npz"


def _read_cache(path: Path, fingerprint: str, cutoff: float, n_configs: int) -> NeighborTable | None:
    """The cached table, or None when the file is missing, unreadable or for other data."""
    try:
        with np.load(path, allow_pickle=False) as f:
            if (
                int(f["version"]) != CACHE_VERSION
                or str(f["fingerprint"]) != fingerprint
                or float(f["cutoff"]) != cutoff
                or f["n_edges"].shape != (n_configs,)
            ):
                return None
            table = NeighborTable(
                senders=f["senders"],
                receivers=f["receivers"],
                shifts=f["shifts"],
                n_edges=f["n_edges"],
                cutoff=cutoff,
                fingerprint=fingerprint,
            )
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
        return None
    total = int(table.n_edges.sum())
    if table.senders.shape != (total,) or table.receivers.shape != (total,) or table.shifts.shape != (total, 3):
        return None
    return table


def _write_cache(path: Path, table: NeighborTable) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(
                f,
                version=np.int64(CACHE_VERSION),
                fingerprint=np.str_(table.fingerprint),
                cutoff=np.float64(table.cutoff),
                senders=table.senders,
                receivers=table.receivers,
                shifts=table.shifts,
                n_edges=table.n_edges,
            )
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def compute_neighbors(
    ds,
    cutoff: float,
    cache_dir: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> NeighborTable:
    """Neighbour lists of every configuration of ``ds`` (a StructureSet).

    With ``cache_dir`` the table is stored as ``.npz`` there, keyed by the set's
    fingerprint and the cutoff (written to a temporary file, then renamed), and read back
    on the next call. ``progress(done, total)`` is called as configurations are done
    (``done`` counts up to ``total``; not called when the table comes from the cache).
    Small free molecules are handled by a vectorised all-pairs search, many at a time;
    everything else (periodic or large) by vesin, one configuration at a time.
    """
    cutoff = _check_cutoff(cutoff)
    fingerprint = ds.fingerprint()
    n_configs = ds.n_configs
    path = _cache_path(Path(cache_dir), fingerprint, cutoff) if cache_dir is not None else None
    if path is not None and path.exists():
        cached = _read_cache(path, fingerprint, cutoff, n_configs)
        if cached is not None:
            return cached

    offsets = ds.offsets
    n_atoms = np.asarray(ds.n_atoms, dtype=np.int64)
    where = ds.name or "dataset"
    if not (np.isfinite(ds.positions).all() and np.isfinite(ds.cell).all()):
        raise DataError(f"{where}: positions or cell contain NaN or infinity")
    # pieces of (configuration ids, senders, receivers, shifts), each sorted within a configuration
    pieces: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    done = 0

    # small free molecules: all pairs at once, many configurations per numpy call
    small = ~np.asarray(ds.pbc, bool).any(axis=1) & (n_atoms <= _SMALL_MOLECULE)
    for size in np.unique(n_atoms[small]).tolist():
        n = int(size)
        configs = np.flatnonzero(small & (n_atoms == n))
        per_chunk = max(1, _PAIRS_PER_CHUNK // (n * n))
        for lo in range(0, configs.size, per_chunk):
            chunk = configs[lo : lo + per_chunk]
            atoms = offsets[chunk][:, None] + np.arange(n)[None, :]
            pos = ds.positions[atoms]  # (k, n, 3)
            vec = pos[:, :, None, :] - pos[:, None, :, :]  # [k, receiver, sender]
            within = np.einsum("krsx,krsx->krs", vec, vec) < cutoff * cutoff
            within[:, np.arange(n), np.arange(n)] = False
            k, r, snd = np.nonzero(within)  # row-major: by configuration, receiver, sender
            pieces.append((chunk[k], snd.astype(np.int32), r.astype(np.int32), np.zeros((k.size, 3), np.int32)))
            done += chunk.size
            if progress is not None:
                progress(done, n_configs)

    for c in np.flatnonzero(~small).tolist():
        start, stop = int(offsets[c]), int(offsets[c + 1])
        try:
            snd, r, sh = neighbor_list(ds.positions[start:stop], ds.cell[c], ds.pbc[c], cutoff)
        except DataError as err:
            raise DataError(f"{where}, configuration {c}: {err}") from None
        pieces.append((np.full(snd.shape[0], c, np.int64), snd, r, sh))
        done += 1
        if progress is not None:
            progress(done, n_configs)

    if pieces:
        config_of = np.concatenate([p[0] for p in pieces])
        order = np.argsort(config_of, kind="stable")
        senders = np.concatenate([p[1] for p in pieces])[order]
        receivers = np.concatenate([p[2] for p in pieces])[order]
        shifts = np.concatenate([p[3] for p in pieces])[order]
        n_edges = np.bincount(config_of, minlength=n_configs).astype(np.int64)
    else:
        senders = receivers = np.zeros(0, np.int32)
        shifts = np.zeros((0, 3), np.int32)
        n_edges = np.zeros(n_configs, np.int64)
    table = NeighborTable(
        senders=np.ascontiguousarray(senders, dtype=np.int32),
        receivers=np.ascontiguousarray(receivers, dtype=np.int32),
        shifts=np.ascontiguousarray(shifts, dtype=np.int32),
        n_edges=n_edges,
        cutoff=cutoff,
        fingerprint=fingerprint,
    )
    if path is not None:
        _write_cache(path, table)
    return table
