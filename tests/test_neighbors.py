"""Neighbour lists against a brute-force O(N²) reference on real and hand-made systems."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _raw
from brute_force import as_triples, brute_force_neighbors

from mlffbench.data.structures import from_arrays
from mlffbench.errors import ConfigError, DataError
from mlffbench.graph.neighbors import NeighborTable, compute_neighbors, neighbor_list


def check_against_brute_force(positions, cell, pbc, cutoff):
    senders, receivers, shifts = neighbor_list(positions, cell, pbc, cutoff)
    assert senders.dtype == receivers.dtype == shifts.dtype == np.int32
    assert shifts.shape == (senders.size, 3)
    reference = brute_force_neighbors(positions, cell, pbc, cutoff)
    got = as_triples(senders, receivers, shifts)
    assert len(got) == senders.size, "duplicate edges"
    assert got == reference, f"{len(got - reference)} extra, {len(reference - got)} missing edges"
    # sorted by (receiver, sender) and the documented edge vector is within the cutoff
    key = receivers.astype(np.int64) * (senders.max(initial=0) + 1) + senders
    assert (np.diff(key) >= 0).all()
    vec = positions[receivers] - positions[senders] + shifts @ np.asarray(cell)
    assert (np.linalg.norm(vec, axis=1) < cutoff).all()
    assert not ((senders == receivers) & ~shifts.any(axis=1)).any()
    return senders, receivers, shifts


def config(ds, i):
    sl = ds.atoms_of(i)
    return ds.positions[sl], ds.cell[i], ds.pbc[i]


@pytest.mark.parametrize("i", [0, 74])
def test_ean_equals_brute_force(i):
    ds = _raw.ean()
    check_against_brute_force(*config(ds, i), 5.0)


def test_ean_neighbour_counts_match_models_md():
    ds = _raw.ean()
    table = compute_neighbors(ds, 5.0)
    assert table.n_configs == 75
    degrees = table.degrees(ds.n_atoms)
    assert degrees.max() == 74
    # docs/models/data.md §3 counts 225 self loops too: max 12,513 and mean 12,422 per configuration
    assert table.n_edges.max() + 225 == 12513
    assert round(float(table.n_edges.mean()) + 225) == 12422
    # full list: every atom sends as many edges as it receives
    senders_global = table.senders + np.repeat(ds.offsets[:-1], table.n_edges)
    assert np.array_equal(np.bincount(senders_global, minlength=degrees.size), degrees)
    # without periodic images the maximum drops to 69; at 3.5 Å it is 29 (26 without images)
    free = dataclasses.replace(ds, pbc=np.zeros_like(ds.pbc))
    assert compute_neighbors(free, 5.0).degrees(ds.n_atoms).max() == 69
    assert compute_neighbors(ds, 3.5).degrees(ds.n_atoms).max() == 29
    assert compute_neighbors(free, 3.5).degrees(ds.n_atoms).max() == 26


def test_water_equals_brute_force():
    ds = _raw.water()
    check_against_brute_force(*config(ds, 123), 6.0)


@pytest.mark.parametrize("i", [0, 104])  # one of each file: triclinic slab cells with vacuum
def test_hfo2_slab_equals_brute_force(i):
    ds = _raw.hfo2()
    positions, cell, pbc = config(ds, i)
    assert abs(np.linalg.det(cell)) > 0 and np.count_nonzero(cell - np.diag(np.diag(cell))) > 0
    check_against_brute_force(positions, cell, pbc, 6.0)


def test_hfo2_slab_with_open_surface_direction():
    ds = _raw.hfo2()
    positions, cell, _ = config(ds, 3)
    pbc = np.array([True, True, False])
    check_against_brute_force(positions, cell, pbc, 6.0)
    # the non-periodic lattice vector may as well be zero
    flat = cell.copy()
    flat[2] = 0.0
    s, r, sh = check_against_brute_force(positions, flat, pbc, 6.0)
    assert (sh[:, 2] == 0).all()
    assert as_triples(s, r, sh) == as_triples(*neighbor_list(positions, cell, pbc, 6.0))


def test_skewed_cell_with_cutoff_beyond_half_the_box():
    cell = np.array([[3.0, 0.0, 0.0], [1.9, 2.6, 0.0], [-0.8, 1.1, 2.4]])
    volume = abs(np.linalg.det(cell))
    widths = [volume / np.linalg.norm(np.cross(cell[(k + 1) % 3], cell[(k + 2) % 3])) for k in range(3)]
    cutoff = 1.5 * min(widths)
    positions = np.array([[0.1, 0.2, 0.3], [1.7, 1.4, 0.9], [2.9, 3.1, 2.2]])
    s, r, sh = check_against_brute_force(positions, cell, [True, True, True], cutoff)
    self_images = (s == r) & sh.any(axis=1)
    assert self_images.any()
    _pairs, counts = np.unique(np.stack([s, r], axis=1), axis=0, return_counts=True)
    assert counts.max() > 1, "several images of one pair expected"
    # positions far outside the cell give the same list
    shifted = positions + np.array([2, -3, 1]) @ cell
    s2, r2, sh2 = neighbor_list(shifted, cell, [True, True, True], cutoff)
    vec1 = positions[r] - positions[s] + sh @ cell
    vec2 = shifted[r2] - shifted[s2] + sh2 @ cell
    assert np.array_equal(np.stack([s, r], 1), np.stack([s2, r2], 1))
    np.testing.assert_allclose(np.sort(np.linalg.norm(vec1, axis=1)), np.sort(np.linalg.norm(vec2, axis=1)))


def test_single_atom_sees_its_own_images_only_with_nonzero_shift():
    s, r, sh = neighbor_list(np.zeros((1, 3)), np.eye(3) * 2.0, [True, True, True], 2.5)
    assert s.size == 6 and (s == 0).all() and (r == 0).all()
    assert sorted(map(tuple, sh.tolist())) == sorted(
        [(1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1)]
    )


def test_free_molecule_equals_brute_force_and_is_strict():
    ds = _raw.rmd17("aspirin")
    positions, cell, pbc = config(ds, 10)
    assert not pbc.any() and not cell.any()
    _s, _r, sh = check_against_brute_force(positions, cell, pbc, 4.0)
    assert not sh.any()
    # a pair at exactly the cutoff is not an edge
    two = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 2.0]])
    assert neighbor_list(two, np.zeros((3, 3)), [False] * 3, 2.0)[0].size == 0
    assert neighbor_list(two, np.zeros((3, 3)), [False] * 3, 2.0000001)[0].size == 2


def test_compute_neighbors_small_molecule_path_equals_neighbor_list():
    ani = _raw.ani1()
    table = compute_neighbors(ani, 1.2)  # short enough that some H-H pairs drop out
    for i in (0, 5399, 5400, 9000, 10799):
        for got, ref in zip(table.config(i), neighbor_list(*config(ani, i), 1.2), strict=True):
            assert np.array_equal(got, ref)
    assert table.n_edges.min() < table.n_edges.max()
    asp = _raw.rmd17("aspirin")
    table = compute_neighbors(asp, 5.0)
    for i in (0, 999):
        assert as_triples(*table.config(i)) == brute_force_neighbors(*config(asp, i), 5.0)


def test_table_layout():
    ds = _raw.hfo2()
    table = compute_neighbors(ds, 4.0)
    assert table.offsets[0] == 0 and table.offsets[-1] == table.senders.size
    sl = table.edges_of(7)
    assert sl.stop - sl.start == table.n_edges[7]
    assert (table.receivers[sl] < ds.n_atoms[7]).all() and (table.senders[sl] < ds.n_atoms[7]).all()
    with pytest.raises(DataError, match="out of range"):
        table.edges_of(105)


def test_cache_round_trip(tmp_path):
    ds = _raw.water().select(np.arange(20))
    calls = []
    first = compute_neighbors(ds, 6.0, cache_dir=tmp_path, progress=lambda done, total: calls.append((done, total)))
    assert calls and calls[-1] == (20, 20)
    files = sorted(tmp_path.iterdir())
    assert len(files) == 1 and files[0].suffix == ".npz" and ds.fingerprint()[:32] in files[0].name
    calls.clear()
    second = compute_neighbors(ds, 6.0, cache_dir=tmp_path, progress=lambda done, total: calls.append((done, total)))
    assert calls == []  # read from the cache
    for name in ("senders", "receivers", "shifts", "n_edges"):
        assert np.array_equal(getattr(first, name), getattr(second, name))
    assert second.fingerprint == ds.fingerprint() and second.cutoff == 6.0
    # another cutoff is another file; a corrupt file is recomputed and replaced
    compute_neighbors(ds, 5.0, cache_dir=tmp_path)
    assert len(list(tmp_path.iterdir())) == 2
    files[0].write_bytes(b"not a zip file")
    third = compute_neighbors(ds, 6.0, cache_dir=tmp_path)
    assert np.array_equal(third.senders, first.senders)
    assert compute_neighbors(ds, 6.0, cache_dir=tmp_path).n_edges.sum() == first.n_edges.sum()
    assert not list(tmp_path.glob("*.tmp"))


def test_errors():
    with pytest.raises(ConfigError, match="cutoff"):
        neighbor_list(np.zeros((2, 3)), np.eye(3), [True] * 3, -1.0)
    with pytest.raises(DataError, match="zero cell vector"):
        neighbor_list(np.zeros((2, 3)), np.diag([3.0, 3.0, 0.0]), [True] * 3, 1.0)
    bad = from_arrays(
        numbers=[1, 1],
        positions=[[0, 0, 0], [0, 0, 1.0]],
        n_atoms=[2],
        cell=[np.diag([2.0, 0, 2])],
        pbc=[[True, True, True]],
        name="broken",
    )
    with pytest.raises(DataError, match="broken, configuration 0"):
        compute_neighbors(bad, 1.5)


def test_table_is_frozen():
    table = NeighborTable(
        np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros((0, 3), np.int32), np.zeros(1, np.int64), 1.0
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        table.cutoff = 2.0  # type: ignore[misc]
