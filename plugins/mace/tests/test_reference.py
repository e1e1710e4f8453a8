"""Same numbers as mace-torch: for fixed (seeded random) float64 weights, the per-atom energies and
forces through mlffbench (the plugin's module on the core's neighbour list, forces by the core's
Potential) equal mace-torch's own forward on its own input pipeline (``config_from_atoms`` →
``AtomicData.from_config`` with its matscipy neighbour list → its DataLoader → ``MACE.forward``
with ``compute_force=True``), on a periodic and a free configuration."""

from __future__ import annotations

import ase
import numpy as np
import pytest

from mlffbench.testing import ean_config
from mlffbench_mace.upstream import upstream

TOL = 1e-8


def mace_own(evaluator, config):
    """(per-atom energies, forces) of mace-torch's own pipeline with the evaluator's MACE weights."""
    numbers, positions, cell, pbc = config
    atoms = ase.Atoms(numbers=numbers, positions=positions, cell=cell, pbc=pbc)
    with upstream() as up:
        data = up.mace.data
        tools = up.mace.tools
        atomic_data = data.AtomicData.from_config(
            data.config_from_atoms(atoms),
            z_table=tools.AtomicNumberTable(list(evaluator.species)),
            cutoff=evaluator.config.r_max,
        )
        loader = tools.torch_geometric.dataloader.DataLoader([atomic_data], batch_size=1, shuffle=False)
        batch = next(iter(loader))
        out = evaluator.potential.module.mace(batch.to_dict(), training=False, compute_force=True)
    return out["node_energy"].detach().numpy(), out["forces"].detach().numpy(), int(batch.edge_index.shape[1])


def rel(a, b) -> float:
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("card", "species", "periodic"),
    [("ean", (1, 6, 7, 8), True), ("rmd17-aspirin", (1, 6, 8), False)],
)
def test_same_numbers_as_mace_torch(datasets, helpers, card, species, periodic):
    config = ean_config(datasets(card), 0)
    assert bool(np.all(config[3])) == periodic
    evaluator = helpers.Evaluator(helpers.TINY, species, seed=3)
    batch = evaluator.batch([config])
    energies, forces = evaluator.atomic_energies_forces(batch)
    ref_energies, ref_forces, ref_edges = mace_own(evaluator, config)

    assert int(batch.senders.shape[0]) == ref_edges  # the same graph (every pair within r_max)
    assert np.std(ref_energies) > 1e-4 and np.max(np.abs(ref_forces)) > 1e-3  # not a trivial model
    assert energies.dtype == np.float64
    print(f"{card}: per-atom energies rel {rel(energies, ref_energies):.2e}, forces rel {rel(forces, ref_forces):.2e}")
    assert rel(energies, ref_energies) <= TOL
    assert rel(forces, ref_forces) <= TOL
