"""The plugin's SchNet equals ``torch_geometric.nn.models.SchNet`` with the same weights.

rMD17 aspirin (21 atoms, no periodicity), float64: with PyG's neighbour limit high enough to
keep every pair, energies agree to 1e-6 relative (in fact to rounding) and so do forces —
for both interaction paths (pair-symmetric and PyG's own CFConv message passing). A
neighbour limit below the real neighbour count silently drops pairs and changes the energy.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch_geometric.nn.models import SchNet

from mlffbench.errors import ConfigError
from mlffbench_schnet.config import SchnetConfig
from mlffbench_schnet.pyg import DenseRadiusGraph, load_pyg_weights, params_from_pyg, radius_interaction_graph

CONFIGS = (0, 137, 555)


def _pyg_model(config: SchnetConfig, max_num_neighbors: int, seed: int, helpers) -> SchNet:
    torch.manual_seed(seed)
    model = SchNet(
        hidden_channels=config.hidden_channels,
        num_filters=config.num_filters,
        num_interactions=config.num_interactions,
        num_gaussians=config.num_gaussians,
        cutoff=config.cutoff,
        interaction_graph=radius_interaction_graph(config.cutoff, max_num_neighbors),
    ).double()
    helpers.randomise(model, seed)
    return model


def _pyg_energy_forces(model, ds, indices):
    atoms = np.concatenate([np.arange(ds.offsets[i], ds.offsets[i + 1]) for i in indices])
    z = torch.as_tensor(ds.numbers[atoms], dtype=torch.long)
    pos = torch.as_tensor(ds.positions[atoms], dtype=torch.float64).requires_grad_(True)
    batch = torch.repeat_interleave(torch.arange(len(indices)), torch.as_tensor(ds.n_atoms[indices]))
    energy = model(z, pos, batch).squeeze(-1)
    (grad,) = torch.autograd.grad(energy.sum(), pos)
    return energy.detach().numpy(), -grad.numpy()


@pytest.fixture(scope="module")
def aspirin(datasets):
    return datasets("rmd17-aspirin")


@pytest.mark.parametrize("pair_symmetry", [True, False], ids=["pair-symmetric", "pyg-cfconv"])
@pytest.mark.parametrize("cutoff", [5.0, 10.0])
def test_energy_and_forces_equal_pyg_schnet(aspirin, helpers, pair_symmetry, cutoff):
    config = SchnetConfig(cutoff=cutoff, readout_channels=32, pair_symmetry=pair_symmetry)  # PyG: hidden // 2
    pyg = _pyg_model(config, max_num_neighbors=1000, seed=3, helpers=helpers)
    ours = helpers.Evaluator(config, species=aspirin.elements)
    ours.potential.module.load_state_dict(
        {**ours.potential.module.state_dict(), **params_from_pyg(pyg.state_dict(), aspirin.elements)}
    )
    configs = [
        (aspirin.numbers[aspirin.atoms_of(i)], aspirin.positions[aspirin.atoms_of(i)], np.zeros((3, 3)), False)
        for i in CONFIGS
    ]
    batch, _ = ours.batch(configs)
    e_ours, f_ours = ours.energy_forces(batch)
    e_pyg, f_pyg = _pyg_energy_forces(pyg, aspirin, list(CONFIGS))
    assert np.abs(e_pyg).min() > 1.0  # non-trivial energies
    np.testing.assert_allclose(e_ours, e_pyg, rtol=1e-6)
    assert np.max(np.abs(e_ours - e_pyg) / np.abs(e_pyg)) < 1e-12  # the same sums, up to rounding
    np.testing.assert_allclose(f_ours, f_pyg, rtol=1e-6, atol=1e-9 * np.abs(f_pyg).max())


def test_pyg_default_neighbour_limit_drops_pairs(aspirin, helpers):
    """At a 10 Å cutoff all 20 other atoms of aspirin are neighbours; a limit of 8 (as PyG's
    default 32 is for EAN at 5 Å, docs/models/schnet.md §3) changes the energy: a model change."""
    config = SchnetConfig(cutoff=10.0, readout_channels=32)
    full = _pyg_model(config, 1000, seed=5, helpers=helpers)
    capped = _pyg_model(config, 8, seed=5, helpers=helpers)
    e_full, _ = _pyg_energy_forces(full, aspirin, [0])
    e_capped, _ = _pyg_energy_forces(capped, aspirin, [0])
    assert abs(e_full[0] - e_capped[0]) > 1e-3 * abs(e_full[0])


def test_dense_radius_graph_matches_brute_force():
    rng = np.random.default_rng(0)
    pos = torch.as_tensor(rng.uniform(0, 6, size=(30, 3)))
    batch = torch.as_tensor(np.repeat([0, 1], [12, 18]))
    edge_index, _weight = DenseRadiusGraph(3.0, 1000)(pos, batch)
    got = set(map(tuple, edge_index.T.tolist()))
    want = {
        (j, i)
        for i in range(30)
        for j in range(30)
        if i != j and batch[i] == batch[j] and float(torch.linalg.norm(pos[i] - pos[j])) < 3.0
    }
    assert got == want
    capped, _ = DenseRadiusGraph(3.0, 2)(pos, batch)
    assert torch.bincount(capped[1], minlength=30).max() <= 2


def test_weights_file_round_trip_through_the_backend(aspirin, helpers, tmp_path):
    """``--init-from`` a PyG state dict: the backend state predicts PyG's energies."""
    from mlffbench.backends.torch.trainer import TorchBackend
    from mlffbench.training.config import TrainConfig

    config = SchnetConfig(cutoff=5.0, readout_channels=32, num_interactions=2)
    pyg = _pyg_model(config, 1000, seed=9, helpers=helpers)
    path = tmp_path / "pyg_schnet.pt"
    torch.save(pyg.state_dict(), path)
    params = load_pyg_weights(path, config, species=aspirin.elements)
    ev = helpers.Evaluator(config, species=aspirin.elements)
    backend = TorchBackend(ev.potential, TrainConfig(dtype="float64"), device="cpu")
    configs = [(aspirin.numbers[aspirin.atoms_of(0)], aspirin.positions[aspirin.atoms_of(0)], np.zeros((3, 3)), False)]
    _, graph_batch = ev.batch(configs)
    state = backend.with_params(backend.init(0, graph_batch), params)
    energy, _ = backend.predict(state, graph_batch)
    e_pyg, _ = _pyg_energy_forces(pyg, aspirin, [0])
    np.testing.assert_allclose(energy[:1], e_pyg, rtol=1e-10)

    with pytest.raises(ConfigError, match="interaction blocks"):
        load_pyg_weights(path, dataclasses.replace(config, num_interactions=3), species=aspirin.elements)
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(ConfigError, match="cannot read PyG SchNet weights"):
        load_pyg_weights(tmp_path / "junk.pt", config, species=aspirin.elements)
