"""Physics of the NeuralIL potential with the released weights (float64, MODELS.md §8).

Invariances (translation, rotation of the periodic system together with its cell and of a
free molecule, permutation, periodic images, 2x1x1 supercell), batching with padding,
forces and stress against finite differences, and smoothness at the cutoff.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

from mlffbench.testing import STRAIN_COMPONENTS, finite_difference_stress, random_rotation
from mlffbench_neuralil.config import NeuralilConfig

RC = 3.5
MARGIN = 0.1  # neighbour lists for finite differences are built at r_c + MARGIN


@pytest.fixture(scope="module", autouse=True)
def _x64_module():
    with jax.enable_x64(True):
        yield


@pytest.fixture(scope="module")
def model(evaluator):
    return evaluator(NeuralilConfig(dtype="float64"))


@pytest.fixture(scope="module")
def pair_model(evaluator, helpers):
    """The same model for batches of 3 slots holding up to 450 atoms."""
    return evaluator(NeuralilConfig(dtype="float64"), shape=helpers.EAN_PAIR_SHAPE, batch_size=3)


@pytest.fixture(scope="module")
def ean0(ean, helpers):
    return helpers.ean_config(ean, 0)


@pytest.fixture(scope="module")
def ean0_result(model, ean0):
    batch, _ = model.batch([ean0])
    energy, forces = model.energy_forces(batch)
    return float(energy[0]), forces


def _close(e1, e0, f1, f0):
    assert abs(e1 - e0) < 1e-10 * abs(e0)
    assert np.abs(f1 - f0).max() < 1e-9


def test_translation_invariance_and_zero_net_force(model, ean0, ean0_result):
    e0, f0 = ean0_result
    numbers, pos, cell, pbc = ean0
    t = np.random.default_rng(1).normal(scale=3.0, size=3)
    batch, _ = model.batch([(numbers, pos + t, cell, pbc)])
    e1, f1 = model.energy_forces(batch)
    _close(e1[0], e0, f1, f0)
    assert np.abs(f0.sum(axis=0)).max() < 1e-10


def test_rotation_of_periodic_system_with_its_cell(model, ean0, ean0_result):
    """NeuralIL takes the cell per call: rotating positions and cell together is a symmetry
    (MODELS.md §8.1.2); rotating the positions alone inside the fixed box is not."""
    e0, f0 = ean0_result
    numbers, pos, cell, pbc = ean0
    rng = np.random.default_rng(3)
    rot = random_rotation(rng)
    batch, _ = model.batch([(numbers, pos @ rot.T, cell @ rot.T, pbc)])
    e1, f1 = model.energy_forces(batch)
    _close(e1[0], e0, f1, f0 @ rot.T)
    batch, _ = model.batch([(numbers, pos @ rot.T, cell, pbc)])
    assert abs(model.energy_forces(batch)[0][0] - e0) > 1.0


def test_rotation_of_free_molecule(datasets, model):
    """rMD17 aspirin (C, H, O; no cell): random proper rotations and translations."""
    ds = datasets("rmd17-aspirin")
    assert not ds.pbc.any()
    sl = ds.atoms_of(0)
    numbers, pos = ds.numbers[sl], ds.positions[sl]
    rng = np.random.default_rng(7)
    batch, n_edges = model.batch([(numbers, pos, np.zeros((3, 3)), False)])
    assert n_edges > 0
    e0, f0 = model.energy_forces(batch)
    for _ in range(2):
        rot = random_rotation(rng)
        batch, _ = model.batch([(numbers, pos @ rot.T + rng.normal(size=3), np.zeros((3, 3)), False)])
        e1, f1 = model.energy_forces(batch)
        _close(e1[0], e0[0], f1, f0 @ rot.T)
    assert np.abs(f0.sum(axis=0)).max() < 1e-10
    assert np.abs(f0).max() > 0.1


def test_permutation_of_atoms(model, ean0, ean0_result):
    e0, f0 = ean0_result
    numbers, pos, cell, pbc = ean0
    perm = np.random.default_rng(5).permutation(len(numbers))
    batch, _ = model.batch([(numbers[perm], pos[perm], cell, pbc)])
    e1, f1 = model.energy_forces(batch)
    _close(e1[0], e0, f1, f0[perm])
    # swap two hydrogens' positions, keeping the species: the same structure
    h = np.flatnonzero(numbers == 1)[[0, 7]]
    swapped = pos.copy()
    swapped[h] = pos[h[::-1]]
    batch, _ = model.batch([(numbers, swapped, cell, pbc)])
    e2, f2 = model.energy_forces(batch)
    expect = f0.copy()
    expect[h] = f0[h[::-1]]
    _close(e2[0], e0, f2, expect)


def test_periodic_images(model, ean0, ean0_result):
    e0, f0 = ean0_result
    numbers, pos, cell, pbc = ean0
    frac = pos @ np.linalg.inv(cell)
    wrapped = (frac - np.floor(frac)) @ cell  # (a) every atom wrapped into the box
    assert np.abs(wrapped - pos).max() > 1.0
    shifted = pos.copy()
    shifted[17] += cell[0] - 2 * cell[2]  # (b) one atom moved by lattice vectors
    for new in (wrapped, shifted):
        batch, _ = model.batch([(numbers, new, cell, pbc)])
        e1, f1 = model.energy_forces(batch)
        _close(e1[0], e0, f1, f0)


def test_supercell_2x1x1_doubles_the_energy(pair_model, ean0, ean0_result):
    e0, f0 = ean0_result
    numbers, pos, cell, pbc = ean0
    big_cell = cell.copy()
    big_cell[0] *= 2
    supercell = (np.concatenate([numbers, numbers]), np.concatenate([pos, pos + cell[0]]), big_cell, pbc)
    batch, _ = pair_model.batch([supercell])
    e2, f2 = pair_model.energy_forces(batch)
    assert abs(e2[0] - 2 * e0) < 1e-10 * abs(e0)
    assert np.abs(f2 - np.concatenate([f0, f0])).max() < 1e-9


def test_batched_with_padding_equals_one_by_one(model, pair_model, ean, helpers):
    """Two configurations packed in one padded batch vs each alone (no mixing of graphs;
    padding atoms and edges change nothing, MODELS.md §8.4)."""
    configs = [helpers.ean_config(ean, i) for i in (3, 1)]
    batch, _ = pair_model.batch(configs)
    assert not bool(np.asarray(batch.atom_mask).all()) and not bool(np.asarray(batch.edge_mask).all())
    energies, forces = pair_model.energy_forces(batch)
    assert energies.shape == (2,)
    for k, conf in enumerate(configs):
        single, _ = model.batch([conf])
        e1, f1 = model.energy_forces(single)
        _close(energies[k], e1[0], forces[225 * k : 225 * (k + 1)], f1)
    assert abs(energies[0] - energies[1]) > 1e-3


def test_edges_beyond_the_cutoff_are_ignored(model, ean0, ean0_result):
    e0, f0 = ean0_result
    batch, n_edges = model.batch([ean0], cutoff=RC + MARGIN)
    _, n_edges_rc = model.batch([ean0])
    assert n_edges > n_edges_rc + 100
    e1, f1 = model.energy_forces(batch)
    _close(e1[0], e0, f1, f0)


def test_forces_are_minus_gradient_by_finite_differences(model, ean0, ean0_result):
    """Central differences, h = 1e-4 Å, on a fixed graph built at r_c + 0.1 Å (the energy
    is smooth through r_c, so no atom needs to be avoided)."""
    e0, f0 = ean0_result
    _, pos, _, _ = ean0
    batch, _ = model.batch([ean0], cutoff=RC + MARGIN)
    rng = np.random.default_rng(11)
    h = 1e-4
    for atom, comp in zip(rng.choice(len(pos), 10, replace=False), rng.integers(0, 3, 10)):
        plus, minus = pos.copy(), pos.copy()
        plus[atom, comp] += h
        minus[atom, comp] -= h
        fd = -(model.energy(batch, plus)[0] - model.energy(batch, minus)[0]) / (2 * h)
        assert abs(fd - f0[atom, comp]) < 1e-6, (atom, comp, fd, f0[atom, comp])
    v = rng.normal(size=pos.shape)
    v /= np.linalg.norm(v)
    fd = -(model.energy(batch, pos + h * v)[0] - model.energy(batch, pos - h * v)[0]) / (2 * h)
    assert abs(fd - np.sum(f0 * v)) < 1e-6


def test_stress_is_strain_derivative_by_finite_differences(model, ean0):
    _, pos, cell, _ = ean0
    batch, _ = model.batch([ean0], cutoff=RC + MARGIN)
    h = 1e-6
    stress = model.stress(batch)[0]
    volume = abs(np.linalg.det(cell))
    assert np.abs(stress - stress.T).max() < 1e-10
    assert np.abs(stress).max() > 1e-4  # a real, non-zero stress
    fd_stress = finite_difference_stress(
        lambda deform: model.energy(batch._replace(cell=jax.numpy.asarray(np.asarray(batch.cell) @ deform)), pos @ deform)[0],
        volume,
        h,
    )
    for i, j in STRAIN_COMPONENTS:
        fd = fd_stress[i, j]
        assert abs(fd - stress[i, j]) < 1e-8 + 1e-5 * abs(stress[i, j]), (i, j, fd, stress[i, j])


def test_energy_is_smooth_through_the_cutoff(model, ean0):
    """MODELS.md §8.3: pair (23, 154) scanned across r_c = 3.5 Å in steps of 1e-5 Å: the
    first differences change smoothly and the second differences stay constant (the
    original: first ≈ −9.6e-7 eV, second 5.334e-9 ± 1e-12 eV)."""
    _, pos, cell, _ = ean0
    a, b = 23, 154
    vec = pos[b] - pos[a]
    frac = vec @ np.linalg.inv(cell)
    vec = (frac - np.round(frac)) @ cell
    length = np.linalg.norm(vec)
    assert abs(length - RC) < 0.05
    batch, _ = model.batch([ean0], cutoff=RC + MARGIN)
    energies = []
    for k in range(-3, 4):
        new = pos.copy()
        new[b] = pos[b] + vec / length * (RC + k * 1e-5 - length)
        energies.append(model.energy(batch, new)[0])
    first = np.diff(energies)
    second = np.diff(first)
    assert np.all(np.abs(first - (-9.6e-7)) < 0.2e-7)
    assert np.abs(second - 5.334e-9).max() < 5e-12
