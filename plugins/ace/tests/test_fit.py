"""The closed-form least-squares fit (mlffbench.backends.jax.fit) on physically generated
structures: rattled and strained Cu/Au fcc cells whose energies, forces and stress come
from an ace-linear model with chosen coefficients; the fit must give those coefficients back."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mlffbench.backends.jax.fit import JacobianRows, least_squares
from mlffbench.backends.jax.precision import float64_scope
from mlffbench.data.structures import from_arrays
from mlffbench.graph.batching import GraphBatcher
from mlffbench.graph.neighbors import compute_neighbors
from mlffbench.plugin.manager import get_registry
from mlffbench.runs.trained import TrainedModel
from mlffbench.training.config import TrainConfig
from mlffbench_ace.config import AceConfig
from mlffbench_ace.model import Basis

SPECIES = (29, 79)  # Cu, Au
TINY = AceConfig(cutoff=4.0, n_radial=3, l_max=2, body_order=4, n_radial_high=2, l_max_high=1, dtype="float64")


def cells(n: int, seed: int = 0):
    """``n`` CuAu fcc cells (2x1x1 cubic, 8 atoms): random Au sites, atoms rattled (0.15 Å), the
    cell strained (±3 %) — the structures a short EMT MD run would visit."""
    from ase.build import bulk

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        atoms = bulk("Cu", "fcc", a=3.7, cubic=True).repeat((2, 1, 1))
        numbers = np.where(rng.random(len(atoms)) < 0.4, 79, 29)
        numbers[:2] = (29, 79)
        atoms.set_atomic_numbers(numbers)
        strain = np.eye(3) + rng.uniform(-0.03, 0.03, (3, 3))
        atoms.set_cell(atoms.cell[:] @ strain, scale_atoms=True)
        atoms.rattle(stdev=0.15, seed=int(rng.integers(1 << 30)))
        out.append(atoms)
    return out


def structure_set(atoms_list, energy=None, forces=None, stress=None):
    return from_arrays(
        numbers=np.concatenate([a.numbers for a in atoms_list]),
        positions=np.concatenate([a.positions for a in atoms_list]),
        n_atoms=[len(a) for a in atoms_list],
        cell=np.stack([a.cell[:] for a in atoms_list]),
        pbc=np.stack([a.pbc for a in atoms_list]),
        energy=energy,
        forces=forces,
        stress=stress,
    )


def model(seed: int, **train):
    config = TrainConfig(**{"dtype": "float64", "energy_weight": 1.0, "force_weight": 1.0, **train})
    return TrainedModel.fresh(
        get_registry().model("ace-linear"),
        TINY,
        SPECIES,
        reference_energies=(-0.3, -0.7),
        train_config=config,
        seed=seed,
    )


@pytest.fixture(scope="module")
def generated():
    """(data set labelled by the 'true' model, its coefficients, the neighbour table)."""
    atoms = cells(24)
    bare = structure_set(atoms)
    neighbors = compute_neighbors(bare, TINY.cutoff)
    true = model(seed=7, stress_weight=1.0)
    rng = np.random.default_rng(3)
    params = {"coefficients": rng.normal(size=true.state.params["coefficients"].shape) * 0.05}
    true = dataclasses.replace(true, state=true.backend.with_params(true.state, params))
    batcher = GraphBatcher(bare, neighbors, SPECIES, 4)
    energies, forces, stresses = [], [], []
    for batch in batcher.batches(np.arange(bare.n_configs), batch_size=4):
        e, f, s = true.backend.predict_with_stress(true.state, batch)
        graphs, atoms_mask = np.asarray(batch.graph_mask), np.asarray(batch.atom_mask)
        energies.append(e[graphs])
        forces.append(f[atoms_mask])
        stresses.append(s[graphs])
    ds = structure_set(atoms, np.concatenate(energies), np.concatenate(forces), np.concatenate(stresses))
    # coefficients that do not exist (Basis.coefficient_mask) are fitted as 0
    mask = Basis.of(TINY, len(SPECIES)).coefficient_mask(TINY, len(SPECIES))
    return ds, np.asarray(params["coefficients"]) * mask, compute_neighbors(ds, TINY.cutoff)


def fit_coefficients(ds, neighbors, *, ridge=0.0, mode="auto", **train):
    fitted = model(seed=11, **train)
    batcher = GraphBatcher(ds, neighbors, SPECIES, 2)
    state, info = least_squares(
        fitted.backend, fitted.state, batcher.batches(np.arange(ds.n_configs), batch_size=2), ridge, mode=mode
    )
    return np.asarray(state.params["coefficients"]), info


@pytest.mark.parametrize(
    "weights",
    [{"stress_weight": 1.0}, pytest.param({"energy_weight": 0.0, "stress_weight": 0.0}, marks=pytest.mark.slow)],
    ids=["E+F+stress", "forces"],
)
def test_fit_recovers_known_coefficients(generated, weights):
    """Energies, forces and stress of a known ace-linear (and forces alone) are fitted back to
    its coefficients to ≤ 1e-8 relative (float64, no ridge)."""
    ds, truth, neighbors = generated
    coefficients, info = fit_coefficients(ds, neighbors, **weights)
    error = np.linalg.norm(coefficients - truth) / np.linalg.norm(truth)
    print(f"relative coefficient error {error:.2e}, fit {info['fit_s']:.2f} s, compile {info['compile_s']:.2f} s")
    assert error <= 1e-8, (error, info)
    assert info["n_params"] == truth.size and info["configs"] == ds.n_configs
    assert info["unused_params"] == np.count_nonzero(truth == 0) and info["solver"] == "cholesky"
    assert info["affine_error"] < 1e-10
    assert info["accumulator_bytes"] == 8 * (truth.size**2 + truth.size)
    assert info["train_objective_per_config"] < 1e-12


def test_jacobian_modes_agree(generated):
    """J by parameter JVPs and by position/strain JVPs of ∂E/∂θ are the same matrix."""
    ds, _, neighbors = generated
    fitted = model(seed=1, stress_weight=1.0)
    batch = GraphBatcher(ds, neighbors, SPECIES, 2).make_batch(np.arange(2))
    with float64_scope(True):
        jacs = {
            mode: JacobianRows(fitted.backend, fitted.state.params, mode=mode)(batch)[0]
            for mode in ("params", "positions")
        }
    np.testing.assert_allclose(jacs["positions"], jacs["params"], rtol=0, atol=1e-12 * np.abs(jacs["params"]).max())


def test_ridge_shrinks_the_coefficients(generated):
    """A large relative ridge pulls the coefficients towards zero; the fit reports it."""
    ds, _, neighbors = generated
    plain, _ = fit_coefficients(ds, neighbors, ridge=0.0, stress_weight=1.0)
    ridged, info = fit_coefficients(ds, neighbors, ridge=100.0, stress_weight=1.0)
    assert info["ridge"] == 100.0 and info["solver"] == "cholesky"
    assert np.linalg.norm(ridged) < 0.5 * np.linalg.norm(plain)
    assert info["train_objective_per_config"] > 0  # no longer an exact fit
