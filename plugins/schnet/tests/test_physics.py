"""Physics of the SchNet potential (float64, seeded random weights) beyond the conformance
suite (test_conformance.py: invariances, periodic images, supercell, batching, forces and
stress against finite differences, cutoff smoothness): the cubic box's rotation, self-images
when the cutoff exceeds the cell, edges beyond the cutoff, padding edges, free-molecule stress."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from mlffbench_schnet.config import SchnetConfig

RC = 5.0
SMALL = SchnetConfig(
    hidden_channels=32, num_filters=32, num_interactions=2, num_gaussians=25, cutoff=RC, readout_channels=16
)


@pytest.fixture(scope="module")
def model(helpers):
    return helpers.Evaluator(SMALL, seed=1, references=[-0.5, -3.0, -4.0, -5.0])


@pytest.fixture(scope="module")
def ean0(ean, helpers):
    return helpers.ean_config(ean, 0)


@pytest.fixture(scope="module")
def ean0_result(model, ean0):
    batch, _ = model.batch([ean0])
    energy, forces = model.energy_forces(batch)
    return float(energy[0]), forces


def test_forces_are_real(ean0_result):
    _, f0 = ean0_result
    assert np.abs(f0).max() > 1e-2  # a model that ignores geometry would pass the invariances


def test_cubic_lattice_rotation_is_exact(model, ean0, ean0_result):
    """90° about z maps the cubic box onto itself: E invariant, forces rotate."""
    e0, f0 = ean0_result
    numbers, pos, cell, pbc = ean0
    rot = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    batch, _ = model.batch([(numbers, pos @ rot.T, cell, pbc)])
    e1, f1 = model.energy_forces(batch)
    assert abs(e1[0] - e0) < 1e-10 * abs(e0)
    assert np.abs(f1 - f0 @ rot.T).max() < 1e-9


def test_self_images_when_the_cutoff_exceeds_the_cell(helpers):
    """A small periodic box (cutoff > cell length: atoms see their own images) against its
    2x2x2 supercell: exercises the pair-symmetric path on self-image pairs ±S."""
    ev = helpers.Evaluator(SMALL, species=(1, 8), seed=4)
    rng = np.random.default_rng(2)
    cell = np.diag([3.1, 3.4, 3.7])
    numbers = np.array([8, 1, 1, 8])
    pos = rng.uniform(0, 3, size=(4, 3))
    batch, _ = ev.batch([(numbers, pos, cell, True)])
    e1, f1 = ev.energy_forces(batch)
    shifts = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], float) @ cell
    sup_pos = np.concatenate([pos + s for s in shifts])
    batch8, _ = ev.batch([(np.tile(numbers, 8), sup_pos, 2 * cell, True)])
    e8, f8 = ev.energy_forces(batch8)
    assert abs(e8[0] - 8 * e1[0]) < 1e-9 * abs(e8[0])
    assert np.abs(f8 - np.tile(f1, (8, 1))).max() < 1e-9
    full = helpers.Evaluator(dataclasses.replace(SMALL, pair_symmetry=False), species=(1, 8), seed=4)
    e_full, f_full = full.energy_forces(batch)
    assert abs(e_full[0] - e1[0]) < 1e-10 * abs(e1[0])
    assert np.abs(f_full - f1).max() < 1e-9


def test_pair_symmetric_training_gradient_equals_pyg_cfconv(helpers, model, ean0):
    """The force loss's parameter gradient (second order, through ``functional_call`` as the
    backend trains) is the same on the pair-symmetric path, whose first block sums filters
    per neighbour species, as on PyG's CFConv over every edge: every parameter that moves the
    forces is reached (the readout's last bias only shifts energies)."""
    batch, _ = model.batch([ean0])
    full = helpers.Evaluator(dataclasses.replace(model.config, pair_symmetry=False))
    full.potential.module.load_state_dict(model.potential.module.state_dict())
    grads = []
    for ev in (model, full):
        params = {k: v.detach().clone().requires_grad_(True) for k, v in ev.potential.module.named_parameters()}
        _, forces = ev.potential.energy_and_forces(params, batch, create_graph=True)
        loss = ((forces - batch.forces) ** 2).sum()
        grads.append(
            dict(zip(params, torch.autograd.grad(loss, list(params.values()), allow_unused=True), strict=True))
        )
    assert (
        [k for k, g in grads[0].items() if g is None] == [k for k, g in grads[1].items() if g is None] == ["lin2.bias"]
    )
    for name, g in grads[0].items():
        if g is None:
            continue
        assert torch.count_nonzero(g) > 0, name
        assert torch.allclose(g, grads[1][name], rtol=1e-9, atol=1e-12 * float(g.abs().max())), name


def test_edges_beyond_the_cutoff_contribute_nothing(model, ean0, ean0_result):
    e0, f0 = ean0_result
    batch, graph_batch = model.batch([ean0], cutoff=RC + 0.5)
    assert graph_batch.edge_mask.sum() > 225 * 60
    e1, f1 = model.energy_forces(batch)
    assert abs(e1[0] - e0) < 1e-10 * abs(e0)
    assert np.abs(f1 - f0).max() < 1e-9


def test_padded_graph_with_padding_edges_equals_the_backend_path(model, ean0, ean0_result):
    """A model handed padding edges (1000 Å, atom N-1 to itself) ignores them."""
    from mlffbench.backends.torch.potential import make_graph

    e0, _ = ean0_result
    batch, _graph_batch = model.batch([ean0])
    n_pad = 7
    pad = torch.full((n_pad,), batch.positions.shape[0] - 1)
    vectors = torch.cat(
        [
            batch.positions[batch.receivers] - batch.positions[batch.senders] + batch.shift_vectors,
            torch.tensor([[1e3, 0.0, 0.0]], dtype=torch.float64).repeat(n_pad, 1),
        ]
    )
    graph = make_graph(batch, vectors)._replace(
        senders=torch.cat([batch.senders, pad]),
        receivers=torch.cat([batch.receivers, pad]),
        edge_mask=torch.cat([batch.edge_mask, torch.zeros(n_pad, dtype=torch.bool)]),
    )
    with torch.no_grad():
        e = model.potential.module(graph)
    energy = float((e[batch.atom_mask] + model.potential.reference_energies[batch.species[batch.atom_mask]]).sum())
    assert abs(energy - e0) < 1e-10 * abs(e0)


def test_free_molecule_has_zero_stress(datasets, model):
    ds = datasets("rmd17-aspirin")
    sl = ds.atoms_of(0)
    batch, _ = model.batch([(ds.numbers[sl], ds.positions[sl], np.zeros((3, 3)), False)])
    assert np.all(model.stress(batch) == 0.0)
