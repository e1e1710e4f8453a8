"""Numerical equivalence with the original JAT code (docs/models/checks.md §7).

The released 7x48 EAN checkpoint is loaded into the re-implementation and evaluated on the
first configuration of the EAN validation file; energies, per-atom energies and forces are
compared with the values produced by running the original code
(shared/reference/models_reference_values.json).

Observed here (CPU, jax 0.10.2), checkpoint cell 12.8999996 Å unless stated:
- float64, q in float64:        |ΔE|/E 6.5e-10, max |Δe_i| 1.9e-7 eV, max |ΔF| 7.4e-6 eV/Å
- float64, float32 edge cast:   ΔE = 0 (bitwise), max |Δe_i| 1.3e-14 eV, max |ΔF| 8.9e-6 eV/Å
- float64, dataset cell 12.9 Å: |ΔE|/E 2.9e-9, max |Δe_i| 1.5e-6 eV, max |ΔF| 1.8e-5 eV/Å
- float32:                       |ΔE|/E 1.9e-7, max |Δe_i| 6.2e-6 eV, max |ΔF| 5.0e-5 eV/Å
The remaining force difference in float64 is the original's float32 rounding of the edge
feature's cotangent in its backward pass (its forces carry ~1e-5 eV/Å of float32 noise);
the energy with the faithful cast is reproduced exactly.
"""

from __future__ import annotations

import numpy as np
import pytest

from mlffbench_jat.config import JatConfig

N_EDGES_WITH_SELF_LOOPS = 12_377  # docs/models/checks.md §7, original graph generator


def _evaluate(helpers, evaluator, ean, config, cell):
    ev = evaluator(config)
    batch, n_edges = ev.batch([helpers.ean_config(ean, 0, cell=cell)], shape=helpers.EAN_SHAPE)
    energy, forces, atomic = ev.evaluate(batch)
    return float(energy[0]), atomic, forces, n_edges


def _checkpoint_cell(checkpoint_meta):
    return np.asarray(checkpoint_meta["constructor_kwargs"]["cell_size"], dtype=np.float64)


def _compare(result, ref):
    energy, atomic, forces, n_edges = result
    e_ref = ref["energy_eV"]
    return (
        abs(energy - e_ref) / abs(e_ref),
        np.abs(atomic - np.asarray(ref["atomic_energies_eV"])).max(),
        np.abs(forces - np.asarray(ref["forces_eV_per_A"])).max(),
        n_edges + len(atomic),
    )


def test_reference_configuration_is_the_documented_one(ean, reference_values, checkpoint_meta):
    conf = reference_values["configuration"]
    assert ean.energy[0] == pytest.approx(conf["dft_energy_eV"], abs=1e-9)
    assert np.allclose(ean.cell[0], np.diag(conf["cell_diag_A"]))
    assert ean.formula(0) == "C30H120N30O45"
    # the checkpoint stores the float32 value of the 12.9 Å box the original model used
    assert _checkpoint_cell(checkpoint_meta)[0, 0] == pytest.approx(12.899999618530273, abs=0)


def test_float64_reproduces_original(ean, checkpoint_meta, reference_values, helpers, evaluator, x64):
    ref = reference_values["jat_ean15_ep3k"]["float64"]
    config = JatConfig(dtype="float64")
    rel_e, max_e, max_f, n_edges = _compare(
        _evaluate(helpers, evaluator, ean, config, _checkpoint_cell(checkpoint_meta)), ref
    )
    assert n_edges == N_EDGES_WITH_SELF_LOOPS == ref["n_edges_including_self_loops"]
    assert rel_e < 1e-8
    assert max_e < 1e-6
    assert max_f < 1e-5


def test_float64_faithful_edge_cast_reproduces_energy_exactly(
    ean, checkpoint_meta, reference_values, helpers, evaluator, x64
):
    ref = reference_values["jat_ean15_ep3k"]["float64"]
    config = JatConfig(dtype="float64", edge_feature_float32=True)
    result = _evaluate(helpers, evaluator, ean, config, _checkpoint_cell(checkpoint_meta))
    rel_e, max_e, max_f, _ = _compare(result, ref)
    assert rel_e < 1e-13
    assert max_e < 1e-11
    assert max_f < 1e-5
    # force accuracy against DFT, as the original scripts report it (docs/models/checks.md §7)
    dft = ean.forces[ean.atoms_of(0)]
    assert np.abs(result[2] - dft).mean() == pytest.approx(ref["force_MAE_vs_DFT"], abs=1e-6)
    assert np.sqrt(((result[2] - dft) ** 2).mean()) == pytest.approx(ref["force_RMSE_vs_DFT"], abs=1e-6)


def test_float64_with_dataset_cell(ean, checkpoint_meta, reference_values, helpers, evaluator, x64):
    """The dataset's 12.9 Å box instead of the checkpoint's 12.8999996 Å: close, but worse."""
    ref = reference_values["jat_ean15_ep3k"]["float64"]
    config = JatConfig(dtype="float64")
    at_12_9 = _compare(_evaluate(helpers, evaluator, ean, config, None), ref)
    at_ckpt = _compare(_evaluate(helpers, evaluator, ean, config, _checkpoint_cell(checkpoint_meta)), ref)
    assert at_12_9[3] == N_EDGES_WITH_SELF_LOOPS
    assert at_12_9[0] < 1e-8 and at_12_9[1] < 1e-5 and at_12_9[2] < 5e-5
    assert at_ckpt[0] < at_12_9[0] and at_ckpt[1] < at_12_9[1]


def test_float32_reproduces_original(ean, checkpoint_meta, reference_values, helpers, evaluator):
    ref = reference_values["jat_ean15_ep3k"]["float32"]
    ev = evaluator(JatConfig(dtype="float32", edge_feature_float32=True))
    cell = _checkpoint_cell(checkpoint_meta)
    batch, n_edges = ev.batch([helpers.ean_config(ean, 0, cell=cell)], shape=helpers.EAN_SHAPE)
    assert batch.positions.dtype == np.float32
    energy, forces, atomic = ev.evaluate(batch)
    rel_e, max_e, max_f, n = _compare((float(energy[0]), atomic, forces, n_edges), ref)
    assert n == N_EDGES_WITH_SELF_LOOPS
    assert rel_e < 1e-6
    assert max_e < 5e-5
    assert max_f < 5e-4
