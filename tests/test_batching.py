"""Packed graph batches: static bucket shapes, padding invariants, fidelity to the neighbour list."""

from __future__ import annotations

import ast
import sys
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _raw

from mlffbench.errors import ConfigError, DataError
from mlffbench.graph.batching import BATCH_FIELDS, GraphBatch, GraphBatcher, bucket
from mlffbench.graph.neighbors import compute_neighbors, neighbor_list

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ean():
    ds = _raw.ean()
    return ds, compute_neighbors(ds, 5.0)


@pytest.fixture(scope="module")
def ani():
    ds = _raw.ani1()
    return ds, compute_neighbors(ds, 5.0)


def test_bucket_grid():
    values = np.unique(np.geomspace(1, 3e6, 4000).astype(int))
    previous = 0
    for x in values:
        b = bucket(int(x))
        assert b >= max(x, 16) and b >= previous
        if x >= 16:
            assert b <= 1.125 * x
        k = max(0, b.bit_length() - 4)
        assert b % (1 << k) == 0 and 8 <= b >> k <= 15
        previous = b
    assert len({bucket(x) for x in range(1025, 2049)}) == 8  # 1152, 1280, ..., 2048
    assert [bucket(x) for x in (1, 16, 17, 100, 1801, 98304, 98305)] == [16, 16, 18, 104, 1920, 98304, 106496]


def check_batch(batch: GraphBatch, ds, table, batch_size, species_table):
    """Every documented invariant of a batch, and its edges against the neighbour table."""
    n, e, g = batch.n_nodes, batch.n_edges, batch.n_graphs
    assert g == batch_size + 1
    for name in ("positions", "forces"):
        assert getattr(batch, name).shape == (n, 3) and getattr(batch, name).dtype == np.float64
    for name in ("species", "graph_index", "numbers"):
        assert getattr(batch, name).shape == (n,) and getattr(batch, name).dtype == np.int32
    for name in ("senders", "receivers"):
        assert getattr(batch, name).shape == (e,) and getattr(batch, name).dtype == np.int32
    assert batch.shifts.shape == (e, 3) and batch.shifts.dtype == np.float64
    assert batch.cell.shape == (g, 3, 3) and batch.energy.shape == (g,)
    assert batch.n_atoms.dtype == np.int32 and batch.config_index.dtype == np.int64
    assert batch.atom_mask.dtype == batch.edge_mask.dtype == batch.graph_mask.dtype == np.bool_

    real = batch.config_index[batch.graph_mask]
    b = real.size
    assert (batch.config_index[b:] == -1).all() and batch.graph_mask[:b].all() and not batch.graph_mask[b:].any()
    # the last graph is padding and owns every padding atom (there is at least one)
    assert not batch.graph_mask[-1] and not batch.atom_mask[-1]
    assert (batch.graph_index[~batch.atom_mask] == g - 1).all()
    n_real = int(ds.n_atoms[real].sum())
    assert batch.atom_mask[:n_real].all() and not batch.atom_mask[n_real:].any()
    assert np.array_equal(batch.graph_index[:n_real], np.repeat(np.arange(b), ds.n_atoms[real]))
    assert np.array_equal(batch.n_atoms[:b], ds.n_atoms[real]) and (batch.n_atoms[b:] == 1).all()
    # padding edges: N-1 -> N-1, zero shift, after the real ones
    e_real = int(table.n_edges[real].sum())
    assert batch.edge_mask[:e_real].all() and not batch.edge_mask[e_real:].any()
    assert (batch.senders[e_real:] == n - 1).all() and (batch.receivers[e_real:] == n - 1).all()
    assert not batch.shifts[e_real:].any()
    assert (batch.senders >= 0).all() and (batch.senders < n).all() and (batch.receivers < n).all()
    assert (np.diff(batch.receivers) >= 0).all()
    assert np.array_equal(batch.shifts, np.round(batch.shifts))
    # edges stay inside their graph
    assert np.array_equal(batch.graph_index[batch.senders[:e_real]], batch.graph_index[batch.receivers[:e_real]])

    lookup = {z: i for i, z in enumerate(species_table)}
    start = 0
    edge_start = 0
    for k, c in enumerate(real):
        sl = ds.atoms_of(int(c))
        count = sl.stop - sl.start
        atoms = slice(start, start + count)
        assert np.array_equal(batch.positions[atoms], ds.positions[sl])
        assert np.array_equal(batch.numbers[atoms], ds.numbers[sl])
        assert np.array_equal(batch.species[atoms], [lookup[int(z)] for z in ds.numbers[sl]])
        assert np.array_equal(batch.cell[k], ds.cell[c])
        if ds.energy is not None:
            assert batch.energy[k] == ds.energy[c]
        if ds.forces is not None:
            assert np.array_equal(batch.forces[atoms], ds.forces[sl])
        # every real edge's vector equals the neighbour list's vector
        s, r, sh = table.config(int(c))
        edges = slice(edge_start, edge_start + s.size)
        pos = ds.positions[sl]
        expected = pos[r] - pos[s] + sh @ ds.cell[c]
        got = (
            batch.positions[batch.receivers[edges]]
            - batch.positions[batch.senders[edges]]
            + np.einsum("ei,eij->ej", batch.shifts[edges], batch.cell[batch.graph_index[batch.senders[edges]]])
        )
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
        start += count
        edge_start += s.size
    assert start == n_real and edge_start == e_real
    assert not batch.positions[n_real:].any() and not batch.forces[n_real:].any()
    assert not batch.energy[b:].any() and not batch.cell[b:].any()


def test_ean_batches_have_few_shapes_and_are_valid(ean):
    ds, table = ean
    batcher = GraphBatcher(ds, table, ds.elements, batch_size=8)
    assert batcher.n_batches(75, drop_remainder=True) == 9 and batcher.n_batches(75) == 10
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(3):
        batches = list(batcher.batches(np.arange(75), rng=rng, drop_remainder=True))
        assert len(batches) == 9
        used = np.concatenate([bt.config_index[bt.graph_mask] for bt in batches])
        assert used.size == 72 and np.unique(used).size == 72
        seen |= {bt.shape for bt in batches}
    check_batch(batches[0], ds, table, 8, ds.elements)
    assert len(seen) <= 2
    assert set(batcher.bucket_shapes(np.arange(75), rng=np.random.default_rng(0), drop_remainder=True)) <= seen
    n, e = batches[0].shape
    assert n == 1920 and n > 8 * 225 and e >= 8 * 12000 and e <= 1.125 * int(table.n_edges.max()) * 8


def test_ean_partial_last_batch(ean):
    ds, table = ean
    batcher = GraphBatcher(ds, table, ds.elements, batch_size=8)
    batches = list(batcher.batches(np.arange(75)))
    last = batches[-1]
    assert len(batches) == 10 and last.n_graphs == 9 and int(last.graph_mask.sum()) == 3
    check_batch(last, ds, table, 8, ds.elements)
    assert list(last.config_index) == [72, 73, 74] + [-1] * 6
    assert len(batcher.bucket_shapes(np.arange(75))) == 2  # full batches and the short last one


def test_build_time_is_milliseconds(ean):
    ds, table = ean
    batcher = GraphBatcher(ds, table, ds.elements, batch_size=8)
    best = np.inf
    for _ in range(3):
        t0 = time.perf_counter()
        batch = batcher.make_batch(np.arange(8, 16))
        best = min(best, time.perf_counter() - t0)
    assert batch.n_edges > 95_000
    assert best < 0.25, f"building a batch of 8 EAN configurations took {best:.3f} s"


def test_molecule_batches_have_one_shape():
    ds = _raw.rmd17("ethanol")
    table = compute_neighbors(ds, 5.0)
    batcher = GraphBatcher(ds, table, ds.elements, batch_size=32)
    shapes = batcher.bucket_shapes(np.arange(1000), rng=np.random.default_rng(3), drop_remainder=True)
    assert shapes == [(bucket(32 * 9 + 1), bucket(32 * 72))]
    batch = next(batcher.batches(np.arange(1000), rng=np.random.default_rng(3)))
    check_batch(batch, ds, table, 32, ds.elements)


def test_ani1_mixed_molecules(ani):
    ds, table = ani
    batcher = GraphBatcher(ds, table, (1, 6, 7, 8), batch_size=16)
    idx = np.array([0, 5400, 9000, 17, 5401, 10799, 3])
    batch = batcher.make_batch(idx)
    check_batch(batch, ds, table, 16, (1, 6, 7, 8))
    assert not batch.cell.any() and not batch.forces.any()


def test_batch_of_one_reproduces_the_neighbour_list(ean):
    ds, table = ean
    batcher = GraphBatcher(ds, table, ds.elements, batch_size=1)
    batch = batcher.make_batch([42])
    s, r, sh = neighbor_list(ds.positions[ds.atoms_of(42)], ds.cell[42], ds.pbc[42], 5.0)
    m = batch.edge_mask
    assert np.array_equal(batch.senders[m], s) and np.array_equal(batch.receivers[m], r)
    assert np.array_equal(batch.shifts[m], sh.astype(np.float64))
    assert batch.n_graphs == 2 and batch.n_nodes > 225


def test_shuffling_is_seeded_and_complete(ani):
    ds, table = ani
    batcher = GraphBatcher(ds, table, ds.elements, batch_size=64)
    idx = np.arange(0, 10800, 7)

    def order(seed):
        return np.concatenate(
            [b.config_index[b.graph_mask] for b in batcher.batches(idx, rng=np.random.default_rng(seed))]
        )

    a, b, c = order(1), order(1), order(2)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.array_equal(np.sort(a), idx)
    plain = np.concatenate([bt.config_index[bt.graph_mask] for bt in batcher.batches(idx)])
    assert np.array_equal(plain, idx)
    dropped = list(batcher.batches(idx, rng=np.random.default_rng(1), drop_remainder=True))
    assert len(dropped) == idx.size // 64
    assert all(bt.graph_mask[:64].all() for bt in dropped)


def test_batch_size_override(ani):
    ds, table = ani
    batcher = GraphBatcher(ds, table, ds.elements, batch_size=4)
    idx = np.arange(0, 10800, 100)  # 108 configurations
    assert batcher.n_batches(108, 32) == 4 and batcher.n_batches(108, 32, drop_remainder=True) == 3
    big = list(batcher.batches(idx, batch_size=32, drop_remainder=True))
    assert len(big) == 3 and all(b.n_graphs == 33 for b in big)
    check_batch(big[0], ds, table, 32, ds.elements)
    assert {b.shape for b in big} <= set(batcher.bucket_shapes(idx, batch_size=32))
    assert next(batcher.batches(idx)).n_graphs == 5  # the default still applies
    with pytest.raises(ConfigError, match="batch_size"):
        batcher.n_batches(10, True)


def test_fixed_shape_override(ean):
    ds, table = ean
    batcher = GraphBatcher(ds, table, ds.elements, batch_size=2, n_nodes=500, n_edges=30000)
    shapes = {b.shape for b in batcher.batches(np.arange(75))}
    assert shapes == {(500, 30000)}
    check_batch(batcher.make_batch([5]), ds, table, 2, ds.elements)
    small = GraphBatcher(ds, table, ds.elements, batch_size=2, n_nodes=450)
    with pytest.raises(ConfigError, match="n_nodes=450"):
        small.make_batch([0, 1])


def test_errors(ean):
    ds, table = ean
    with pytest.raises(DataError, match=r"element O \(Z=8\)"):
        GraphBatcher(ds, table, (1, 6, 7), batch_size=4)
    with pytest.raises(ConfigError, match="batch_size"):
        GraphBatcher(ds, table, ds.elements, batch_size=0)
    with pytest.raises(DataError, match="other data"):
        GraphBatcher(ds.select(np.arange(75)[::-1]), table, ds.elements, batch_size=4)
    with pytest.raises(DataError, match="configurations"):
        GraphBatcher(ds.select(np.arange(10)), table, ds.elements, batch_size=4)
    batcher = GraphBatcher(ds, table, ds.elements, batch_size=4)
    with pytest.raises(DataError, match="out of range"):
        next(batcher.batches([0, 75]))
    with pytest.raises(ConfigError, match="1 to 4"):
        batcher.make_batch(np.arange(5))


def test_fields_follow_the_jax_batch():
    """GraphBatch carries every field of backends.jax.potential.Batch, in its order (no jax import)."""
    source = (REPO / "mlffbench" / "backends" / "jax" / "potential.py").read_text()
    tree = ast.parse(source)
    batch = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Batch")
    fields = tuple(s.target.id for s in batch.body if isinstance(s, ast.AnnAssign))
    assert fields == BATCH_FIELDS
    assert set(fields) <= set(GraphBatch.__dataclass_fields__)
