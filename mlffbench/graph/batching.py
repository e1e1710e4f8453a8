"""Packed, padded graph batches with a few static shapes (numpy only).

A batch holds up to ``batch_size`` configurations packed into one graph of N atoms and
E edges (see :class:`GraphBatch`); N and E are rounded up on a geometric grid
(:func:`bucket`) so a dataset meets only a few distinct shapes and JAX compiles a few
times, not once per batch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from mlffbench.data import elements
from mlffbench.errors import ConfigError, DataError
from mlffbench.graph.neighbors import NeighborTable

# the fields of mlffbench.backends.jax.potential.Batch, in its order
BATCH_FIELDS = (
    "positions",
    "species",
    "atom_mask",
    "graph_index",
    "senders",
    "receivers",
    "shifts",
    "edge_mask",
    "cell",
    "energy",
    "forces",
    "graph_mask",
    "n_atoms",
)

MIN_BUCKET = 16


def bucket(x: int, minimum: int = MIN_BUCKET) -> int:
    """Smallest m * 2**k >= max(x, minimum) with m in 8..15: at most 12.5 % above x.

    >>> [bucket(v) for v in (1, 16, 17, 100, 1801, 98305)]
    [16, 16, 18, 104, 1920, 106496]
    """
    x = max(int(x), int(minimum), 1)
    if x <= 8:
        return x
    k = x.bit_length() - 4  # 2**(k+3) <= x < 2**(k+4), so x / 2**k is in [8, 16)
    m = -(-x // (1 << k))
    return m << k


@dataclass(frozen=True, eq=False)
class GraphBatch:
    """One padded batch of G = batch_size + 1 graphs, N atoms, E edges (numpy arrays).

    ============  ==============  ======================================================
    field         shape           meaning
    ============  ==============  ======================================================
    positions     (N, 3) f64      Å; padding atoms at the origin
    species       (N,) int32      index of the atom's element in ``species_table``
                                  (0 for padding atoms, which ``atom_mask`` hides)
    atom_mask     (N,) bool       True for real atoms
    graph_index   (N,) int32      graph of each atom; padding atoms -> G-1
    senders       (E,) int32      global atom index in the batch
    receivers     (E,) int32      global atom index; sorted (padding edges last)
    shifts        (E, 3) f64      integer cell shifts; edge vector =
                                  positions[receivers] - positions[senders] + shifts @ cell
    edge_mask     (E,) bool       True for real edges; padding edges are N-1 -> N-1,
                                  zero shift
    cell          (G, 3, 3) f64   lattice vectors as rows (zeros: free molecule / padding)
    energy        (G,) f64        total energy, eV (0 where missing or padding)
    forces        (N, 3) f64      eV/Å (0 where missing or padding)
    graph_mask    (G,) bool       True for real graphs
    n_atoms       (G,) int32      real atoms per graph; 1 for padding graphs (safe divisor)
    stress        (G, 3, 3) f64   reference stress, eV/Å³, ASE sign (0 where missing or padding)
    stress_mask   (G,) bool       True for real graphs with a reference stress and a periodic
                                  cell (volume > 0): where a stress loss or error counts
    config_index  (G,) int64      configuration index in the StructureSet; -1 for padding
    numbers       (N,) int32      atomic numbers (0 for padding atoms)
    ============  ==============  ======================================================

    Real graphs come first, in the order they were asked for, and the atoms of each are
    contiguous; a partial batch has empty padding graphs (graph_mask False) after them.
    The LAST graph always owns all padding atoms (there is at least one), so
    segment sums over ``graph_index`` never mix padding into a real graph.
    """

    positions: np.ndarray
    species: np.ndarray
    atom_mask: np.ndarray
    graph_index: np.ndarray
    senders: np.ndarray
    receivers: np.ndarray
    shifts: np.ndarray
    edge_mask: np.ndarray
    cell: np.ndarray
    energy: np.ndarray
    forces: np.ndarray
    graph_mask: np.ndarray
    n_atoms: np.ndarray
    config_index: np.ndarray
    numbers: np.ndarray
    stress: np.ndarray
    stress_mask: np.ndarray

    @property
    def n_nodes(self) -> int:
        return int(self.positions.shape[0])

    @property
    def n_edges(self) -> int:
        return int(self.senders.shape[0])

    @property
    def n_graphs(self) -> int:
        return int(self.cell.shape[0])

    @property
    def shape(self) -> tuple[int, int]:
        """(N, E): what a jitted function is compiled for (G is fixed by the batcher)."""
        return self.n_nodes, self.n_edges

    def model_arrays(self) -> tuple[np.ndarray, ...]:
        """The arrays of ``BATCH_FIELDS`` in order: ``Batch(*map(jnp.asarray, b.model_arrays()))``."""
        return tuple(getattr(self, name) for name in BATCH_FIELDS)


def _padded_batch(
    n: int,
    e: int,
    g: int,
    *,
    positions,
    species,
    numbers,
    graph_index,
    forces,
    senders,
    receivers,
    shifts,
    cell,
    energy,
    n_atoms,
    config_index,
    stress=None,
) -> GraphBatch:
    """A :class:`GraphBatch` of N = n atoms, E = e edges and G = g graphs from the real
    atoms', edges' and graphs' values (given without padding; ``forces``/``energy``/``stress``
    None where the data has none), padded as the table in :class:`GraphBatch` says."""
    na, ne, b = len(positions), len(senders), len(cell)

    def pad(values, size, fill, dtype, tail=()):
        out = np.full((size, *tail), fill, dtype)
        if values is not None:
            out[: len(values)] = values
        return out

    return GraphBatch(
        positions=pad(positions, n, 0.0, np.float64, (3,)),
        species=pad(species, n, 0, np.int32),
        atom_mask=pad(np.ones(na, bool), n, False, bool),
        graph_index=pad(graph_index, n, g - 1, np.int32),
        senders=pad(senders, e, n - 1, np.int32),
        receivers=pad(receivers, e, n - 1, np.int32),
        shifts=pad(shifts, e, 0.0, np.float64, (3,)),
        edge_mask=pad(np.ones(ne, bool), e, False, bool),
        cell=pad(cell, g, 0.0, np.float64, (3, 3)),
        energy=pad(energy, g, 0.0, np.float64),
        forces=pad(forces, n, 0.0, np.float64, (3,)),
        graph_mask=pad(np.ones(b, bool), g, False, bool),
        n_atoms=pad(n_atoms, g, 1, np.int32),
        config_index=pad(config_index, g, -1, np.int64),
        numbers=pad(numbers, n, 0, np.int32),
        stress=pad(stress, g, 0.0, np.float64, (3, 3)),
        stress_mask=pad(None if stress is None else stress_counts(cell), g, False, bool),
    )


def stress_counts(cell) -> np.ndarray:
    """Per configuration: whether its stress is defined (a periodic cell of volume > 0)."""
    cell = np.asarray(cell, np.float64).reshape(-1, 3, 3)
    return np.abs(np.linalg.det(cell)) > 1e-9


def split_batch(batch: GraphBatch, size: int) -> list[GraphBatch]:
    """``batch`` as consecutive parts of at most ``size`` real graphs each, every part padded
    as the batcher pads (N and E on the :func:`bucket` grid, G = size + 1): the same
    configurations, atoms and edges, in the same order.

    A batch's graphs, atoms and edges are contiguous and in graph order (edges sorted by
    receiver), so a part is a slice of each with its indices shifted.
    """
    size = _check_batch_size(size)
    n_real = int(batch.graph_mask.sum())
    receivers = batch.receivers[: int(batch.edge_mask.sum())]
    atom_start = np.concatenate([[0], np.cumsum(batch.n_atoms[:n_real])]).astype(np.int64)
    parts = []
    for g0 in range(0, max(n_real, 1), size):
        g1 = min(g0 + size, n_real)
        a0, a1 = int(atom_start[g0]), int(atom_start[g1])
        e0, e1 = (int(v) for v in np.searchsorted(receivers, [a0, a1]))
        atoms, edges, graphs = slice(a0, a1), slice(e0, e1), slice(g0, g1)
        parts.append(
            _padded_batch(
                bucket(a1 - a0 + 1),
                bucket(e1 - e0),
                size + 1,
                positions=batch.positions[atoms],
                species=batch.species[atoms],
                numbers=batch.numbers[atoms],
                graph_index=batch.graph_index[atoms] - g0,
                forces=batch.forces[atoms],
                senders=batch.senders[edges] - a0,
                receivers=receivers[edges] - a0,
                shifts=batch.shifts[edges],
                cell=batch.cell[graphs],
                energy=batch.energy[graphs],
                n_atoms=batch.n_atoms[graphs],
                config_index=batch.config_index[graphs],
                stress=np.where(batch.stress_mask[graphs, None, None], batch.stress[graphs], 0.0)
                if batch.stress_mask[graphs].any()
                else None,
            )
        )
    return parts


def _species_lookup(species_table: Sequence[int]) -> np.ndarray:
    table = tuple(int(z) for z in species_table)
    if not table:
        raise ConfigError("species table is empty")
    if len(set(table)) != len(table):
        raise ConfigError(f"species table has duplicate elements: {table}")
    bad = [z for z in table if not 0 < z < len(elements.SYMBOLS)]
    if bad:
        raise ConfigError(f"species table has an unknown atomic number {bad[0]}")
    lookup = np.full(len(elements.SYMBOLS), -1, dtype=np.int32)
    lookup[list(table)] = np.arange(len(table), dtype=np.int32)
    return lookup


def _check_batch_size(batch_size) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    return int(batch_size)


def _gather_index(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenation of arange(starts[i], starts[i] + counts[i]) for all i, vectorised."""
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, np.int64)
    before = np.cumsum(counts) - counts
    return np.repeat(starts - before, counts) + np.arange(total, dtype=np.int64)


class GraphBatcher:
    """Cuts configurations of one StructureSet into padded :class:`GraphBatch` es.

    Args:
        ds: the StructureSet.
        neighbors: its :class:`NeighborTable` (computed for this very set).
        species_table: atomic numbers; ``species`` is the index into this tuple
            (normally the dataset's sorted element list).
        batch_size: real graphs per batch; every batch has G = batch_size + 1 graphs.
            The methods take a ``batch_size`` override (e.g. a larger one for evaluation).
        n_nodes, n_edges: fixed N and E for every batch instead of buckets (a batch that
            does not fit raises ConfigError naming the size it needs).
    """

    def __init__(
        self,
        ds,
        neighbors: NeighborTable,
        species_table: Sequence[int],
        batch_size: int,
        *,
        n_nodes: int | None = None,
        n_edges: int | None = None,
    ):
        _check_batch_size(batch_size)
        for label, value in (("n_nodes", n_nodes), ("n_edges", n_edges)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1):
                raise ConfigError(f"{label} must be a positive integer, got {value!r}")
        name = ds.name or "dataset"
        if neighbors.n_configs != ds.n_configs:
            raise DataError(
                f"neighbour table has {neighbors.n_configs} configurations, dataset '{name}' has {ds.n_configs}"
            )
        if neighbors.fingerprint and neighbors.fingerprint != ds.fingerprint():
            raise DataError(f"neighbour table was computed for other data than dataset '{name}'")

        self.ds = ds
        self.neighbors = neighbors
        self.batch_size = int(batch_size)
        self.fixed_nodes = None if n_nodes is None else int(n_nodes)
        self.fixed_edges = None if n_edges is None else int(n_edges)
        self.species_table = tuple(int(z) for z in species_table)

        lookup = _species_lookup(self.species_table)
        numbers = np.asarray(ds.numbers, dtype=np.int64)
        in_range = (numbers > 0) & (numbers < lookup.size)
        species = np.where(in_range, lookup[np.where(in_range, numbers, 0)], -1).astype(np.int32)
        if (species < 0).any():
            z = int(numbers[np.argmax(species < 0)])
            label = elements.SYMBOLS[z] if 0 < z < len(elements.SYMBOLS) else "?"
            known = ", ".join(elements.symbol(t) for t in self.species_table)
            raise DataError(f"element {label} (Z={z}) of dataset '{name}' is not in the species table ({known})")
        self._species = species
        self._numbers = numbers.astype(np.int32)
        self._n_atoms = np.asarray(ds.n_atoms, dtype=np.int64)
        self._atom_start = ds.offsets[:-1]
        self._n_edges = np.asarray(neighbors.n_edges, dtype=np.int64)
        self._edge_start = neighbors.offsets[:-1]

    # --------------------------------------------------------------- sizes
    def _size(self, batch_size: int | None) -> int:
        return self.batch_size if batch_size is None else _check_batch_size(batch_size)

    def n_batches(self, n: int, batch_size: int | None = None, drop_remainder: bool = False) -> int:
        """Batches in one pass over n configurations."""
        size = self._size(batch_size)
        return n // size if drop_remainder else -(-n // size)

    def padded_shape(self, real_atoms: int, real_edges: int) -> tuple[int, int]:
        """(N, E) of a batch holding that many real atoms and edges (N keeps >= 1 padding atom)."""
        n = bucket(real_atoms + 1) if self.fixed_nodes is None else self.fixed_nodes
        e = bucket(real_edges) if self.fixed_edges is None else self.fixed_edges
        if n < real_atoms + 1:
            raise ConfigError(f"n_nodes={n} is too small for a batch of {real_atoms} atoms (need {real_atoms + 1})")
        if e < real_edges:
            raise ConfigError(f"n_edges={e} is too small for a batch with {real_edges} edges")
        return n, e

    def _check_indices(self, indices) -> np.ndarray:
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= self.ds.n_configs):
            raise DataError(
                f"configuration index {int(idx.min() if idx.min() < 0 else idx.max())} out of range "
                f"for dataset '{self.ds.name or 'dataset'}' ({self.ds.n_configs} configurations)"
            )
        return idx

    def _order(self, indices, rng: np.random.Generator | None, drop_remainder: bool, size: int) -> np.ndarray:
        idx = self._check_indices(indices)
        if rng is not None:
            idx = idx[rng.permutation(idx.size)]
        if drop_remainder:
            idx = idx[: (idx.size // size) * size]
        return idx

    def bucket_shapes(
        self,
        indices,
        rng: np.random.Generator | None = None,
        drop_remainder: bool = False,
        batch_size: int | None = None,
    ) -> list[tuple[int, int]]:
        """Distinct (N, E) of the batches one pass over ``indices`` gives, sorted.

        Same arguments as :meth:`batches` (an ``rng`` is advanced just as there).
        """
        size = self._size(batch_size)
        idx = self._order(indices, rng, drop_remainder, size)
        if idx.size == 0:
            return []
        starts = np.arange(0, idx.size, size)
        atoms = np.add.reduceat(self._n_atoms[idx], starts)
        edges = np.add.reduceat(self._n_edges[idx], starts)
        return sorted({self.padded_shape(int(a), int(e)) for a, e in zip(atoms, edges, strict=True)})

    # ------------------------------------------------------------- batches
    def batches(
        self,
        indices,
        rng: np.random.Generator | None = None,
        drop_remainder: bool = False,
        batch_size: int | None = None,
    ) -> Iterator[GraphBatch]:
        """Batches over ``indices`` (shuffled with ``rng`` when given), in order.

        The last batch may be partial (fewer real graphs, still G = batch_size + 1)
        unless ``drop_remainder``.
        """
        size = self._size(batch_size)
        idx = self._order(indices, rng, drop_remainder, size)
        for start in range(0, idx.size, size):
            yield self.make_batch(idx[start : start + size], batch_size=size)

    def make_batch(self, indices, batch_size: int | None = None) -> GraphBatch:
        """One batch of the given configurations (1 to batch_size of them), in that order."""
        size = self._size(batch_size)
        idx = self._check_indices(indices)
        b = idx.size
        if not 1 <= b <= size:
            raise ConfigError(f"a batch holds 1 to {size} configurations, got {b}")
        ds, table = self.ds, self.neighbors
        g = size + 1
        na = self._n_atoms[idx]
        ne = self._n_edges[idx]
        real_atoms, real_edges = int(na.sum()), int(ne.sum())
        n, e = self.padded_shape(real_atoms, real_edges)

        atoms = _gather_index(self._atom_start[idx], na)
        base = np.cumsum(na) - na  # first atom of each graph in the batch
        edges = _gather_index(self._edge_start[idx], ne)
        offset = np.repeat(base, ne)
        return _padded_batch(
            n,
            e,
            g,
            positions=ds.positions[atoms],
            species=self._species[atoms],
            numbers=self._numbers[atoms],
            graph_index=np.repeat(np.arange(b, dtype=np.int32), na),
            forces=None if ds.forces is None else ds.forces[atoms],
            senders=table.senders[edges] + offset,
            receivers=table.receivers[edges] + offset,
            shifts=table.shifts[edges],
            cell=ds.cell[idx],
            energy=None if ds.energy is None else ds.energy[idx],
            n_atoms=na,
            config_index=idx,
            stress=None if ds.stress is None else ds.stress[idx],
        )
