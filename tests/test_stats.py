"""Training-set statistics: reference energies by least squares, scales, neighbour counts."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _raw

from mlffbench.data.stats import DatasetStats, composition_counts, compute_stats
from mlffbench.data.structures import concatenate
from mlffbench.errors import DataError
from mlffbench.graph.neighbors import compute_neighbors


def test_reference_energies_recover_known_per_species_energies():
    # real geometries of four compositions (CH4, NH3, H2O, C30H120N30O45): full rank in C, H, N, O
    ani, ean = _raw.ani1(), _raw.ean()
    ds = concatenate([ani.select([0, 1, 5400, 5401, 9000]), ean.select([0, 1, 2])], name="mixed")
    known = {1: -13.6, 6: -1029.1, 7: -1484.9, 8: -2041.8}  # eV, arbitrary but realistic
    energy = np.array([sum(known[int(z)] for z in ds.numbers[ds.atoms_of(i)]) for i in range(ds.n_configs)])
    ds = dataclasses.replace(ds, energy=energy)
    stats = compute_stats(ds, np.arange(ds.n_configs))
    assert stats.species == (1, 6, 7, 8)
    np.testing.assert_allclose(stats.reference_energies, [known[z] for z in stats.species], rtol=1e-11)
    assert abs(stats.energy_per_atom_mean) < 1e-9 and stats.energy_per_atom_std < 1e-9
    assert stats.max_atoms == 225 and stats.n_configs == 8
    for i in range(ds.n_configs):
        assert stats.reference_energy_of(ds.numbers[ds.atoms_of(i)]) == pytest.approx(energy[i], rel=1e-12)


def test_ani1_residual_is_small_compared_with_raw_spread():
    ds = _raw.ani1()
    train = np.arange(0, ds.n_configs, 2)
    stats = compute_stats(ds, train)
    per_atom = ds.energy[train] / ds.n_atoms[train]
    raw_std = per_atom.std()
    assert raw_std > 50.0  # eV/atom: CH4, NH3 and H2O differ by hundreds of eV per atom
    assert stats.energy_per_atom_std < 1e-3 * raw_std
    assert stats.energy_per_atom_std < 0.2  # conformer spread, a few tenths of an eV at most
    assert abs(stats.energy_per_atom_mean) < stats.energy_per_atom_std
    # each molecule's mean energy is reproduced by its composition
    counts = composition_counts(ds, train, stats.species)
    predicted = counts @ np.array(stats.reference_energies)
    for g in range(3):
        in_group = ds.group[train] == g
        assert abs(predicted[in_group].mean() - ds.energy[train][in_group].mean()) < 0.05
    assert stats.force_rms == 1.0  # ANI-1 has no forces
    assert stats.mean_neighbors == 0.0 and stats.cutoff == 0.0


def test_ean_scales_and_neighbours():
    ds = _raw.ean()
    table = compute_neighbors(ds, 5.0)
    stats = compute_stats(ds, np.arange(75), table)
    # docs/models/data.md §3: force components std 0.769 eV/Å with mean about 0
    assert stats.force_rms == pytest.approx(0.769, abs=0.005)
    # 12,422 directed edges per configuration including 225 self loops -> 54.2 neighbours per atom
    assert stats.mean_neighbors == pytest.approx((12422 - 225) / 225, abs=0.01)
    assert stats.cutoff == 5.0 and stats.max_atoms == 225
    some = compute_stats(ds, [3, 9], table)
    assert some.mean_neighbors == pytest.approx(table.n_edges[[3, 9]].sum() / 450)
    forces = np.concatenate([ds.forces[ds.atoms_of(3)], ds.forces[ds.atoms_of(9)]])
    assert some.force_rms == pytest.approx(np.sqrt(np.mean(forces**2)), rel=1e-12)


def test_species_absent_from_train_and_missing_energies():
    ds = _raw.ani1()
    no_water = np.flatnonzero(ds.group != 2)  # group 2 is H2O: O never occurs in these configurations
    stats = compute_stats(ds, no_water)
    assert stats.species == (1, 6, 7, 8) and stats.reference_energies[3] == 0.0
    blank = dataclasses.replace(ds, energy=None)
    stats = compute_stats(blank, no_water)
    assert stats.reference_energies == (0.0, 0.0, 0.0, 0.0)
    assert stats.energy_per_atom_mean == 0.0 and stats.energy_per_atom_std == 1.0
    with pytest.raises(DataError, match="no configurations"):
        compute_stats(ds, [])
    with pytest.raises(DataError, match="out of range"):
        compute_stats(ds, [ds.n_configs])


def test_dict_round_trip():
    ds = _raw.hfo2()
    stats = compute_stats(ds, np.arange(76), compute_neighbors(ds, 4.0))
    assert stats.species == (8, 72)
    back = DatasetStats.from_dict(json.loads(json.dumps(stats.to_dict())))
    assert back == stats
    data = stats.to_dict()
    del data["force_rms"]
    with pytest.raises(DataError, match="force_rms"):
        DatasetStats.from_dict(data)
    with pytest.raises(DataError, match="reference energies"):
        DatasetStats.from_dict({**stats.to_dict(), "reference_energies": [1.0]})
