"""Physics of the NeuralIL potential with the released weights (float64, docs/models/checks.md) beyond
the conformance suite (test_conformance.py: invariances, periodic images, supercell, batching,
forces and stress against finite differences, continuity at the cutoff): the rotation of the
periodic system with and without its cell, edges beyond the cutoff,
and the original's first and second differences through the cutoff.
"""

from __future__ import annotations

import numpy as np
import pytest

from mlffbench.backends.jax.precision import float64_scope
from mlffbench.testing import random_rotation
from mlffbench_neuralil.config import NeuralilConfig

RC = 3.5
MARGIN = 0.1  # neighbour lists for finite differences are built at r_c + MARGIN


@pytest.fixture(scope="module", autouse=True)
def _x64_module():
    with float64_scope():
        yield


@pytest.fixture(scope="module")
def model(evaluator):
    return evaluator(NeuralilConfig(dtype="float64"))


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


def test_rotation_of_periodic_system_with_its_cell(model, ean0, ean0_result):
    """NeuralIL takes the cell per call: rotating positions and cell together is a symmetry
    (docs/models/checks.md §1.2); rotating the positions alone inside the fixed box is not."""
    e0, f0 = ean0_result
    numbers, pos, cell, pbc = ean0
    rng = np.random.default_rng(3)
    rot = random_rotation(rng)
    batch, _ = model.batch([(numbers, pos @ rot.T, cell @ rot.T, pbc)])
    e1, f1 = model.energy_forces(batch)
    _close(e1[0], e0, f1, f0 @ rot.T)
    batch, _ = model.batch([(numbers, pos @ rot.T, cell, pbc)])
    assert abs(model.energy_forces(batch)[0][0] - e0) > 1.0


def test_edges_beyond_the_cutoff_are_ignored(model, ean0, ean0_result):
    e0, f0 = ean0_result
    batch, n_edges = model.batch([ean0], cutoff=RC + MARGIN)
    _, n_edges_rc = model.batch([ean0])
    assert n_edges > n_edges_rc + 100
    e1, f1 = model.energy_forces(batch)
    _close(e1[0], e0, f1, f0)


def test_energy_is_smooth_through_the_cutoff(model, ean0):
    """docs/models/checks.md §3: pair (23, 154) scanned across r_c = 3.5 Å in steps of 1e-5 Å: the
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
