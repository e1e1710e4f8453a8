"""Physics of the JAT potential with the released weights (float64, docs/models/checks.md) beyond the
conformance suite (test_conformance.py: invariances, periodic images, supercell, batching,
forces and stress against finite differences, the hard cutoff's jump): the cubic lattice
symmetries of the fixed EAN box, a guard against a model that ignores geometry, the sorted
receivers the model relies on, and edges beyond the cutoff; for the faithful model and for
the model with an edge basis (the training default).
"""

from __future__ import annotations

import numpy as np
import pytest

from mlffbench.backends.jax.precision import float64_scope
from mlffbench.testing import random_rotation
from mlffbench_jat.config import JatConfig
from mlffbench_jat.weights import load_weights

RC = 5.0


@pytest.fixture(scope="module", autouse=True)
def _x64_module():
    with float64_scope():
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
        name: {
            **layer,
            "edge_basis": rng.normal(scale=0.3, size=(n_basis, layer["DenseGeneral_0"]["kernel"].shape[-1])),
        }
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
def ean0(ean, helpers):
    return helpers.ean_config(ean, 0)


@pytest.fixture(scope="module")
def ean0_result(model, ean0):
    batch, _ = model.batch([ean0])
    energy, forces = model.energy_forces(batch)
    return float(energy[0]), forces


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
    """The cubic box maps onto itself: E is invariant and forces transform (docs/models/checks.md §1)."""
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
