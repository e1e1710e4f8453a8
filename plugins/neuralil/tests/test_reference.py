"""Numerical equivalence with the original NeuralIL code (docs/models/neuralil.md, docs/models/checks.md §5, §7).

The released EAN checkpoint (OPTAX_2B25114) is loaded into the re-implementation and
evaluated on the first configuration of the EAN validation file; total, per-atom and Morse
energies, forces and descriptor rows are compared with the values produced by running the
original code (shared/reference/models_reference_values.json), and the radial-basis tables
with the stored ones.

Observed here (CPU, jax 0.10.2):
- float64: |ΔE|/|E| 2.5e-9, max |Δe_i| 8.6e-8 eV, Morse part exact (1e-16 per atom),
  max |ΔF| 1.6e-7 eV/Å (2.2e-7 of max |F|), descriptor rows 6e-8, g(r) tables 7e-8
  (the original's coefficient tables are float32)
- float32: |ΔE|/|E| 6e-8, max |Δe_i| 1.4e-6 eV, max |ΔF| 3.9e-6 eV/Å
"""

from __future__ import annotations

import numpy as np
import pytest

from mlffbench.backends.jax.precision import float64_scope
from mlffbench_neuralil.config import NeuralilConfig
from mlffbench_neuralil.model import basis_tables, bessel_roots, radial_basis_flat

ORIGINAL_ORDER = (6, 1, 7, 8)  # the original numbers species alphabetically: C, H, N, O


def _pairs_in_original_order(species):
    """Indices into our (a ≤ b) pair axis for the original's pairs, in the original's order."""
    ours = {}
    k = 0
    for a in range(len(species)):
        for b in range(a, len(species)):
            ours[(a, b)] = k
            k += 1
    out = []
    for a in range(len(ORIGINAL_ORDER)):
        for b in range(a, len(ORIGINAL_ORDER)):
            i, j = sorted((species.index(ORIGINAL_ORDER[a]), species.index(ORIGINAL_ORDER[b])))
            out.append(ours[(i, j)])
    return out


@pytest.fixture(scope="module")
def result64(evaluator, helpers, ean):
    with float64_scope():
        ev = evaluator(NeuralilConfig(dtype="float64"))
        batch, n_edges = ev.batch([helpers.ean_config(ean, 0)])
        energy, forces, atomic = ev.evaluate(batch)
        _, morse, desc = ev.parts(batch)
    return float(energy[0]), forces, atomic, morse, desc, n_edges


def test_reference_configuration_is_the_documented_one(ean, reference_values):
    conf = reference_values["configuration"]
    assert ean.energy[0] == pytest.approx(conf["dft_energy_eV"], abs=1e-9)
    assert np.allclose(ean.cell[0], np.diag(conf["cell_diag_A"]))
    assert ean.formula(0) == "C30H120N30O45"


def test_float64_energy_atomic_energies_and_forces(result64, reference_values):
    ref = reference_values["neuralil_optax_2b25114"]["float64"]
    energy, forces, atomic, morse, _, _ = result64
    assert energy == pytest.approx(-1016.847976, rel=1e-8)
    assert abs(energy - ref["energy_eV"]) < 1e-8 * abs(ref["energy_eV"])
    assert np.allclose(atomic, ref["atomic_energies_eV"], rtol=1e-6, atol=1e-6)
    f_ref = np.asarray(ref["forces_eV_per_A"])
    assert np.abs(forces - f_ref).max() < 1e-6 * np.abs(f_ref).max()
    assert np.allclose(forces, f_ref, rtol=1e-6, atol=1e-6)
    # the Morse part
    assert morse.sum() == pytest.approx(35.940502, abs=1e-6)
    assert np.abs(morse - np.asarray(ref["morse_atomic_energies_eV"])).max() < 1e-12
    # exact forces: zero net force
    assert np.abs(forces.sum(axis=0)).max() < 1e-10


def test_float64_force_accuracy_against_dft(result64, reference_values, ean):
    ref = reference_values["neuralil_optax_2b25114"]["float64"]
    forces = result64[1]
    dft = ean.forces[ean.atoms_of(0)]
    assert np.abs(forces - dft).mean() == pytest.approx(ref["force_MAE_vs_DFT"], abs=1e-7)
    assert np.sqrt(((forces - dft) ** 2).mean()) == pytest.approx(ref["force_RMSE_vs_DFT"], abs=1e-7)


def test_float64_descriptor_rows(result64, reference_values, helpers):
    ref = reference_values["bessel_descriptors_nmax4_rc3.5"]["float64"]
    desc = result64[4]
    assert desc.shape == (225, 10, 15)
    pairs = _pairs_in_original_order(list(helpers.EAN_SPECIES))
    for atom in (0, 4):
        expected = np.asarray(ref[f"atom{atom}"])
        assert np.abs(desc[atom][pairs] - expected).max() < 1e-6 * np.abs(expected).max()
    assert desc.sum() == pytest.approx(ref["sum_all"], rel=1e-8)
    norms = np.linalg.norm(desc.reshape(225, -1), axis=1)[:10]
    assert np.allclose(norms, ref["per_atom_norm_first10"], rtol=1e-7)
    # docs/models/checks.md §5: atom 0 (the first cation N) per-pair sums in the original's pair order
    sums = desc[0][pairs].sum(axis=1)
    expected = [1.1779554, 0.3627312, 0, 0.0810545, 5.4387561, 0, -0.1451515, 0, 0, 0.4021069]
    assert np.allclose(sums, expected, atol=2e-7)
    assert desc[0].sum() == pytest.approx(7.317453, abs=1e-6)


def test_float32_reproduces_original(evaluator, helpers, ean, reference_values):
    ref = reference_values["neuralil_optax_2b25114"]["float32"]
    ev = evaluator(NeuralilConfig(dtype="float32"))
    batch, _ = ev.batch([helpers.ean_config(ean, 0)])
    assert batch.positions.dtype == np.float32
    energy, forces, atomic = ev.evaluate(batch)
    assert abs(energy[0] - ref["energy_eV"]) < 1e-6 * abs(ref["energy_eV"])
    assert np.abs(atomic - np.asarray(ref["atomic_energies_eV"])).max() < 1e-5
    assert np.abs(forces - np.asarray(ref["forces_eV_per_A"])).max() < 2e-5


def test_radial_basis_tables(reference_values, x64):
    ref = reference_values["radial_basis_nmax4_rc3.5"]
    roots = np.asarray(ref["roots_u_l_n_l0to4_n0to5"])
    for l in range(5):
        assert np.allclose(bessel_roots(l, 6), roots[l], rtol=1e-13, atol=0)
    tables = basis_tables(4)
    assert np.allclose(tables[0]["T"], ref["T_l0"], atol=1e-12)
    for name in ("c1", "c2"):
        stored = np.asarray(ref[f"{name}_l0to2_n0to4"])  # the original's float32 tables
        for l in range(3):
            ours = tables[l][name]
            assert np.allclose(ours, stored[l, : len(ours)], rtol=1e-7, atol=0)
    r = np.asarray(ref["r_A"])
    g = np.asarray(radial_basis_flat(np.asarray(r), NeuralilConfig()))
    expected = np.asarray(ref["g_rows_l_major"]).T  # (r, 15)
    assert np.abs(g - expected).max() < 1e-6 * np.abs(expected).max()
    # docs/models/neuralil.md §1: the 15 values at r = 1.0 Å
    at_1 = [
        0.858200,
        -0.512604,
        -0.204341,
        0.718216,
        -0.652150,
        0.678034,
        -0.833862,
        0.456363,
        0.216958,
        0.452448,
        -0.804094,
        0.817209,
        0.274247,
        -0.629082,
        0.155977,
    ]
    assert np.allclose(g[list(r).index(1.0)], at_1, atol=1e-6)
    assert np.all(g[list(r).index(3.5)] == 0.0)  # exactly 0 at (and beyond) r_c
