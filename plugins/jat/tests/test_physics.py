"""Physics of the JAT potential with the released weights (float64, MODELS.md §8).

Invariances (translation, rotation of a free molecule, cubic lattice symmetries,
permutation, periodic images, supercell), batching, forces and stress against finite
differences, and the energy jump of the faithful hard cutoff vs the cosine envelope; for
the faithful model and for the model with an edge basis (the training default).
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

from mlffbench.testing import STRAIN_COMPONENTS, finite_difference_stress, pair_distances, random_rotation
from mlffbench_jat.config import JatConfig
from mlffbench_jat.weights import load_weights

RC = 5.0


@pytest.fixture(scope="module", autouse=True)
def _x64_module():
    with jax.enable_x64(True):
        yield


class _Fixed:
    """An evaluator whose batches all have one fixed padded shape (one compilation)."""

    def __init__(self, ev, shape, batch_size=1):
        self.ev, self.shape, self.batch_size = ev, shape, batch_size

    def batch(self, configs, cutoff=RC):
        return self.ev.batch(configs, cutoff=cutoff, batch_size=self.batch_size, shape=self.shape)

    def __getattr__(self, name):
        return getattr(self.ev, name)


def _edge_basis_evaluator(evaluator, helpers, weights_path, n_basis=16):
    """The released weights plus random (non-trivial) edge-basis kernels in every layer:
    the default model for training from scratch (``edge_basis`` deviation)."""
    params = load_weights(weights_path, JatConfig(dtype="float64"), species=helpers.EAN_SPECIES)
    rng = np.random.default_rng(5)
    layers = {
        name: {**layer, "edge_basis": rng.normal(scale=0.3, size=(n_basis, layer["DenseGeneral_0"]["kernel"].shape[-1]))}
        for name, layer in params["core_model"].items()
        if name.startswith("jat_layers")
    }
    params = {**params, "core_model": {**params["core_model"], **layers}}
    return helpers.Evaluator(JatConfig(dtype="float64", edge_basis=n_basis), helpers.EAN_SPECIES, params)


@pytest.fixture(scope="module", params=["faithful", "edge-basis"])
def variant(request, evaluator, helpers, weights_path):
    """The released EAN model in float64 (faithful: hard cutoff, q in float64), and the
    same with an edge basis; every physics test below runs for both."""
    if request.param == "faithful":
        return evaluator(JatConfig(dtype="float64"))
    return _edge_basis_evaluator(evaluator, helpers, weights_path)


@pytest.fixture(scope="module")
def model(variant, helpers):
    return _Fixed(variant, helpers.EAN_SHAPE)


@pytest.fixture(scope="module")
def pair_model(variant, helpers):
    """The same model for batches of 3 slots holding up to 450 atoms."""
    return _Fixed(variant, helpers.EAN_PAIR_SHAPE, batch_size=3)


@pytest.fixture(scope="module")
def cosine_model(evaluator, helpers):
    return _Fixed(evaluator(JatConfig(dtype="float64", cutoff_envelope="cosine")), helpers.EAN_SHAPE)


@pytest.fixture(scope="module")
def ean0(ean, helpers):
    return helpers.ean_config(ean, 0)


@pytest.fixture(scope="module")
def ean0_result(model, ean0):
    batch, _ = model.batch([ean0])
    energy, forces = model.energy_forces(batch)
    return float(energy[0]), forces


def test_translation_invariance_and_zero_net_force(model, ean0, ean0_result):
    e0, f0 = ean0_result
    numbers, pos, cell, pbc = ean0
    t = np.random.default_rng(1).normal(scale=3.0, size=3)
    batch, _ = model.batch([(numbers, pos + t, cell, pbc)])
    e1, f1 = model.energy_forces(batch)
    assert abs(e1[0] - e0) < 1e-10 * abs(e0)
    assert np.abs(f1 - f0).max() < 1e-9
    assert np.abs(f0.sum(axis=0)).max() < 1e-9


@pytest.mark.parametrize(
    "matrix",
    [
        np.array([[0, 1, 0], [0, 0, 1], [1, 0, 0]]),  # cyclic axis permutation
        np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]]),  # 90° about z
        np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]]),  # 90° about x
        np.array([[0, 1, 0], [1, 0, 0], [0, 0, 1]]),  # axis swap (improper)
        -np.eye(3, dtype=int),  # inversion
    ],
    ids=["permute-xyz", "rot90-z", "rot90-x", "swap-xy", "inversion"],
)
def test_cubic_lattice_symmetries_are_exact(model, ean0, ean0_result, matrix):
    """The cubic box maps onto itself: E is invariant and forces transform (MODELS.md §8.1)."""
    e0, f0 = ean0_result
    numbers, pos, cell, pbc = ean0
    rot = matrix.astype(np.float64)
    batch, _ = model.batch([(numbers, pos @ rot.T, cell, pbc)])
    e1, f1 = model.energy_forces(batch)
    assert abs(e1[0] - e0) < 1e-10 * abs(e0)
    assert np.abs(f1 - f0 @ rot.T).max() < 1e-9


def test_random_rotation_of_positions_in_fixed_box_is_not_a_symmetry(model, ean0, ean0_result):
    """Guard against a model that ignores geometry: a generic rotation inside a fixed
    periodic box changes the structure, and the energy (the original: ~145 eV)."""
    e0, _ = ean0_result
    numbers, pos, cell, pbc = ean0
    rot = random_rotation(np.random.default_rng(3))
    batch, _ = model.batch([(numbers, pos @ rot.T, cell, pbc)])
    e1, _ = model.energy_forces(batch)
    assert abs(e1[0] - e0) > 1.0


def test_rotation_of_free_molecule(datasets, model):
    """rMD17 aspirin (C, H, O; no cell, no periodicity): random proper rotations."""
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
        t = rng.normal(size=3)
        batch, _ = model.batch([(numbers, pos @ rot.T + t, np.zeros((3, 3)), False)])
        e1, f1 = model.energy_forces(batch)
        assert abs(e1[0] - e0[0]) < 1e-10 * abs(e0[0])
        assert np.abs(f1 - f0 @ rot.T).max() < 1e-9
    assert np.abs(f0.sum(axis=0)).max() < 1e-9
    assert np.abs(f0).max() > 0.1


def test_permutation_of_atoms(model, ean0, ean0_result):
    e0, f0 = ean0_result
    numbers, pos, cell, pbc = ean0
    perm = np.random.default_rng(5).permutation(len(numbers))
    batch, _ = model.batch([(numbers[perm], pos[perm], cell, pbc)])
    e1, f1 = model.energy_forces(batch)
    assert abs(e1[0] - e0) < 1e-10 * abs(e0)
    assert np.abs(f1 - f0[perm]).max() < 1e-9


def test_periodic_images(model, ean0, ean0_result):
    e0, f0 = ean0_result
    numbers, pos, cell, pbc = ean0
    # (a) wrap every atom into the box (the file has small excursions outside [0, L])
    frac = pos @ np.linalg.inv(cell)
    wrapped = (frac - np.floor(frac)) @ cell
    assert np.abs(wrapped - pos).max() > 1.0
    # (b) move one atom by lattice vectors
    shifted = pos.copy()
    shifted[17] += cell[0] - 2 * cell[2]
    for new in (wrapped, shifted):
        batch, _ = model.batch([(numbers, new, cell, pbc)])
        e1, f1 = model.energy_forces(batch)
        assert abs(e1[0] - e0) < 1e-10 * abs(e0)
        assert np.abs(f1 - f0).max() < 1e-9


def test_supercell_2x1x1(pair_model, ean0, ean0_result):
    e0, f0 = ean0_result
    numbers, pos, cell, pbc = ean0
    big_cell = cell.copy()
    big_cell[0] *= 2
    supercell = (np.concatenate([numbers, numbers]), np.concatenate([pos, pos + cell[0]]), big_cell, pbc)
    batch, _ = pair_model.batch([supercell])
    e2, f2 = pair_model.energy_forces(batch)
    assert abs(e2[0] - 2 * e0) < 1e-10 * abs(e0)
    assert np.abs(f2 - np.concatenate([f0, f0])).max() < 1e-9


def test_batched_equals_one_by_one(model, pair_model, ean, helpers):
    """Two configurations packed in one padded batch vs each alone (no mixing of graphs)."""
    configs = [helpers.ean_config(ean, i) for i in (3, 1)]
    batch, _ = pair_model.batch(configs)  # one empty slot besides the padding graph
    assert not bool(np.asarray(batch.atom_mask).all())  # there are padding atoms
    energies, forces = pair_model.energy_forces(batch)
    assert energies.shape == (2,)
    for k, conf in enumerate(configs):
        single, _ = model.batch([conf])
        e1, f1 = model.energy_forces(single)
        assert abs(energies[k] - e1[0]) < 1e-10 * abs(e1[0])
        assert np.abs(forces[225 * k : 225 * (k + 1)] - f1).max() < 1e-9
    assert abs(energies[0] - energies[1]) > 1e-3  # different configurations differ


def test_core_batches_keep_the_sorted_receiver_promise(model, pair_model, ean0, ean, helpers):
    """build() tells the segment reductions that receivers are sorted; the core's batches
    (real edges, padding edges, several graphs) must keep that promise."""
    assert model.potential.module.sorted_receivers
    for batch in (model.batch([ean0])[0], pair_model.batch([helpers.ean_config(ean, i) for i in (4, 2)])[0]):
        receivers = np.asarray(batch.receivers)
        assert np.all(np.diff(receivers) >= 0)
        assert not np.asarray(batch.edge_mask).all()  # padding edges are included in the check


def test_edges_beyond_the_cutoff_are_ignored(model, ean0, ean0_result):
    """A neighbour list with a larger cutoff gives the same energy: the model applies its
    own strict hard cutoff q < r_c²."""
    e0, f0 = ean0_result
    batch, n_edges = model.batch([ean0], cutoff=RC + 0.05)
    assert n_edges > 12_377 - 225 + 200
    e1, f1 = model.energy_forces(batch)
    assert abs(e1[0] - e0) < 1e-10 * abs(e0)
    assert np.abs(f1 - f0).max() < 1e-9


def _safe_atoms(ean0, margin):
    """Atoms with no pair distance within ``margin`` of the cutoff."""
    numbers, pos, cell, pbc = ean0
    s, r, d = pair_distances(numbers, pos, cell, pbc, RC + margin)
    near = np.abs(d - RC) < margin
    bad = set(s[near].tolist()) | set(r[near].tolist())
    return np.array([i for i in range(len(numbers)) if i not in bad])


def test_forces_are_minus_gradient_by_finite_differences(model, ean0, ean0_result):
    """Central differences, h = 1e-4 Å, on a fixed graph built at r_c + 0.05 Å (the model
    cuts at r_c itself); atoms in pairs within 1e-3 Å of r_c are left alone."""
    e0, f0 = ean0_result
    numbers, pos, cell, pbc = ean0
    batch, _ = model.batch([ean0], cutoff=RC + 0.05)
    assert abs(model.energy(batch)[0] - e0) < 1e-10 * abs(e0)
    safe = _safe_atoms(ean0, 1e-3)
    assert len(safe) > 200
    rng = np.random.default_rng(11)
    h = 1e-4
    for atom, comp in zip(rng.choice(safe, 12, replace=False), rng.integers(0, 3, 12)):
        plus, minus = pos.copy(), pos.copy()
        plus[atom, comp] += h
        minus[atom, comp] -= h
        fd = -(model.energy(batch, plus)[0] - model.energy(batch, minus)[0]) / (2 * h)
        assert abs(fd - f0[atom, comp]) < 1e-6, (atom, comp, fd, f0[atom, comp])
    # directional derivative along a random unit 3N-vector (zero on unsafe atoms)
    v = np.zeros_like(pos)
    v[safe] = rng.normal(size=(len(safe), 3))
    v /= np.linalg.norm(v)
    fd = -(model.energy(batch, pos + h * v)[0] - model.energy(batch, pos - h * v)[0]) / (2 * h)
    assert abs(fd - np.sum(f0 * v)) < 1e-6


def test_stress_is_strain_derivative_by_finite_differences(model, ean0, ean0_result):
    e0, _ = ean0_result
    numbers, pos, cell, pbc = ean0
    batch, _ = model.batch([ean0], cutoff=RC + 0.05)
    _, _, d = pair_distances(numbers, pos, cell, pbc, RC + 0.05)
    h = 1e-6
    assert np.abs(d - RC).min() > 20 * h * RC  # no pair crosses r_c under the strain
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
        assert abs(fd - stress[i, j]) < 1e-7 + 1e-5 * abs(stress[i, j]), (i, j, fd, stress[i, j])


def _move_pair_to(pos, cell, a, b, distance):
    """Positions with atom b moved along the (minimum-image) a→b direction to ``distance``."""
    vec = pos[b] - pos[a]
    frac = vec @ np.linalg.inv(cell)
    vec = (frac - np.round(frac)) @ cell
    length = np.linalg.norm(vec)
    new = pos.copy()
    new[b] = pos[b] + vec / length * (distance - length)  # a small move: the graph's shifts stay valid
    return new


def test_hard_cutoff_jumps_cosine_envelope_is_continuous(model, cosine_model, ean0):
    """Pair (66, 124) of the reference configuration (4.99984 Å) crossing r_c = 5 Å:
    the faithful model jumps (the original: ≈ 2.4e-4 eV); the cosine envelope does not."""
    numbers, pos, cell, pbc = ean0
    a, b = 66, 124
    delta = 1e-7
    results = {}
    for name, ev in (("none", model), ("cosine", cosine_model)):
        batch, _ = ev.batch([ean0], cutoff=RC + 0.05)
        e_in2, e_in, e_out, e_out2 = (
            ev.energy(batch, _move_pair_to(pos, cell, a, b, RC + k * delta))[0] for k in (-3, -1, 1, 3)
        )
        results[name] = (e_in - e_out, e_in2 - e_in, e_out - e_out2)
    # equally spaced points: for a smooth energy the middle step equals its neighbours
    jump, step_in, step_out = results["none"]
    assert 1e-4 < abs(jump - step_in) < 1e-3
    assert abs(step_in) < 1e-6 and abs(step_out) < 1e-6
    assert abs(step_in - step_out) < 1e-9
    jump_c, step_in_c, step_out_c = results["cosine"]
    assert abs(jump_c - step_in_c) < 1e-10 and abs(jump_c - step_out_c) < 1e-10
    assert abs(jump_c) < 1e-6
