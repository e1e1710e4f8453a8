"""Stress in the loss and the metrics, and energy offsets fitted after force-only training.

Data: rattled and strained fcc Cu/Al cells labelled by ASE's EMT calculator (eV, eV/Å, eV/Å³,
ASE's sign), plus one free Cu/Al cluster (no stress: masked).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from mlffbench.data.structures import from_arrays
from mlffbench.graph.batching import GraphBatcher
from mlffbench.graph.neighbors import compute_neighbors
from mlffbench.training.config import TrainConfig
from mlffbench.training.metrics import ErrorAccumulator, constant_stress_baseline

RC = 3.5
SPECIES = (13, 29)


@pytest.fixture(autouse=True)
def _keep_jax_precision():
    """A float64 JaxBackend switches 64-bit JAX on for the process: restore the setting after each
    test, so that later float32 tests see float32 arrays."""
    jax = pytest.importorskip("jax")
    before = bool(jax.config.jax_enable_x64)
    yield
    jax.config.update("jax_enable_x64", before)


def emt_atoms(n: int, seed: int = 0, free: bool = True):
    """``n`` periodic 8-atom Cu/Al cells (0-3 Al, rattled, strained) and, with ``free``, one free cluster."""
    from ase.build import bulk
    from ase.calculators.emt import EMT

    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n):
        atoms = bulk("Cu", "fcc", a=3.62, cubic=True).repeat((2, 1, 1))
        atoms.numbers[rng.choice(len(atoms), size=i % 4, replace=False)] = 13
        strain = rng.uniform(-0.03, 0.03, (3, 3))
        atoms.set_cell(atoms.cell @ (np.eye(3) + 0.5 * (strain + strain.T)), scale_atoms=True)
        atoms.rattle(0.06, seed=seed * 1000 + i)
        frames.append(atoms)
    if free:
        cluster = bulk("Cu", "fcc", a=3.62, cubic=True)
        cluster.numbers[0] = 13
        cluster.pbc = False
        cluster.cell = np.zeros((3, 3))
        cluster.rattle(0.05, seed=seed)
        frames.append(cluster)
    for atoms in frames:
        atoms.calc = EMT()
        atoms.info["labels"] = (
            atoms.get_potential_energy(),
            atoms.get_forces(),
            atoms.get_stress(voigt=False) if atoms.pbc.all() else np.zeros((3, 3)),
        )
    return frames


def structure_set(frames):
    return from_arrays(
        numbers=np.concatenate([a.numbers for a in frames]),
        positions=np.concatenate([a.positions for a in frames]),
        n_atoms=[len(a) for a in frames],
        cell=np.stack([np.asarray(a.cell) for a in frames]),
        pbc=np.stack([a.pbc for a in frames]),
        energy=[a.info["labels"][0] for a in frames],
        forces=np.concatenate([a.info["labels"][1] for a in frames]),
        stress=np.stack([a.info["labels"][2] for a in frames]),
        name="cualemt",
    )


@pytest.fixture(scope="module")
def data():
    ds = structure_set(emt_atoms(7))
    return ds, GraphBatcher(ds, compute_neighbors(ds, RC), SPECIES, 4)


# ------------------------------------------------------------------ toy models
def _torch_backend(**train):
    import torch

    from mlffbench.backends.torch.potential import Potential
    from mlffbench.backends.torch.trainer import TorchBackend

    class Toy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = torch.nn.Embedding(len(SPECIES), 4)
            self.out = torch.nn.Linear(4, 1)

        def forward(self, graph):
            d = torch.linalg.vector_norm(graph.vectors, dim=-1)
            envelope = torch.where(d < RC, 0.5 * (torch.cos(d * math.pi / RC) + 1.0), torch.zeros_like(d))
            feat = self.embedding(graph.species)
            msg = feat[graph.senders] * (torch.exp(-((d - 2.5) ** 2)) * envelope)[:, None]
            return self.out(torch.tanh(feat + torch.zeros_like(feat).index_add(0, graph.receivers, msg))).squeeze(-1)

    torch.manual_seed(0)
    return TorchBackend(Potential(Toy(), [-3.0, -3.5]), TrainConfig(dtype="float64", **train), device="cpu")


def _jax_backend(**train):
    import flax.linen as nn
    import jax.numpy as jnp

    from mlffbench.backends.jax.potential import Potential
    from mlffbench.backends.jax.trainer import JaxBackend

    class Toy(nn.Module):
        @nn.compact
        def __call__(self, graph):
            d = jnp.linalg.norm(graph.vectors, axis=-1)
            envelope = jnp.where(d < RC, 0.5 * (jnp.cos(d * jnp.pi / RC) + 1.0), 0.0) * graph.edge_mask
            feat = nn.Embed(len(SPECIES), 4)(graph.species)
            msg = feat[graph.senders] * (jnp.exp(-((d - 2.5) ** 2)) * envelope)[:, None]
            h = feat + jnp.zeros_like(feat).at[graph.receivers].add(msg)
            return nn.Dense(1)(jnp.tanh(h))[:, 0]

    return JaxBackend(Potential(Toy(), np.array([-3.0, -3.5])), TrainConfig(dtype="float64", **train))


BACKENDS = {"torch": _torch_backend, "jax": _jax_backend}


def _grads(kind, backend, state, batch):
    """The parameter gradient of the backend's training loss on ``batch``, flattened."""
    if kind == "torch":
        import torch

        dev = backend.to_device(batch)
        loss = backend._loss(state.params, dev, backend._stress_targets(batch))
        params = list(state.params.values())
        grads = torch.autograd.grad(loss, params, allow_unused=True)  # a bias has no force gradient
        return np.concatenate(
            [(torch.zeros_like(p) if g is None else g).detach().numpy().ravel() for p, g in zip(params, grads)]
        )
    import jax

    from mlffbench.backends.jax.trainer import stress_targets, to_device

    targets = stress_targets(batch, backend.dtype) if backend.config.stress_weight > 0 else None
    grads = jax.grad(backend._loss)(state.params, to_device(batch, backend.dtype), targets)
    return np.concatenate([np.asarray(g).ravel() for g in jax.tree_util.tree_leaves(grads)])


@pytest.mark.parametrize("kind", ["torch", pytest.param("jax", marks=pytest.mark.slow)])  # jax: eager grads, ~15 s
def test_stress_loss_changes_the_gradient_only_through_stress(kind, data):
    import dataclasses

    pytest.importorskip("jax")
    _ds, batcher = data
    from mlffbench.backends.jax.precision import float64_scope

    with float64_scope():
        make = BACKENDS[kind]
        plain, stressed = make(loss="mse"), make(loss="mse", stress_weight=1.0)
        batch = batcher.make_batch([0, 1, 2, 7])  # three cells and the free cluster
        state = plain.init(0, batch)
        s_state = stressed.init(0, batch)  # the same parameters (same seed)
        g0, g1 = _grads(kind, plain, state, batch), _grads(kind, stressed, s_state, batch)
        assert np.abs(g1 - g0).max() > 1e-3 * np.abs(g0).max()
        # the model's own stress as the reference: the stress term's gradient vanishes (MSE at its minimum)
        _, _, own = stressed.predict_with_stress(s_state, batch)
        assert np.abs(own[:3]).max() > 0 and np.all(own[3] == 0)  # free cluster: no stress
        same = dataclasses.replace(batch, stress=np.where(batch.stress_mask[:, None, None], own, 0.0))
        np.testing.assert_allclose(_grads(kind, stressed, s_state, same), g0, rtol=1e-7, atol=1e-10)
        # a batch whose configurations have no stress (the free cluster only): nothing changes
        free = batcher.make_batch([7])
        assert not free.stress_mask.any()
        np.testing.assert_allclose(
            _grads(kind, stressed, s_state, free), _grads(kind, plain, state, free), rtol=1e-10, atol=1e-12
        )


def test_stress_metrics_equal_numpy_and_mask_the_free_cluster(data):
    ds, batcher = data
    rng = np.random.default_rng(1)
    acc = ErrorAccumulator()
    predicted = []
    for batch in batcher.batches(np.arange(ds.n_configs), batch_size=3):
        sigma = rng.normal(0, 0.01, (batch.n_graphs, 3, 3))
        acc.add(batch, batch.energy, batch.forces, True, True, stress=sigma)
        predicted.append(sigma[batch.graph_mask])
    diff = (np.concatenate(predicted) - ds.stress)[:-1]  # the last configuration is the free cluster
    result = acc.result()
    assert result["stress_mae"] == pytest.approx(np.mean(np.abs(diff)), rel=1e-12)
    assert result["stress_rmse"] == pytest.approx(np.sqrt(np.mean(diff**2)), rel=1e-12)
    assert result["force_mae"] == 0.0
    train, test = ds.stress[:4], ds.stress[4:-1]
    assert constant_stress_baseline(train, test) == pytest.approx(np.mean(np.abs(test - train.mean(axis=0))), rel=1e-12)


def _model_on(ds, split, stats, batcher, backend):
    """A TrainedModel on ``ds`` (no spec, card or neighbour lists: the offset fit needs none)."""
    from mlffbench.runs.trained import ModelData, TrainedModel

    data = ModelData(None, ds, split, None, batcher)
    return TrainedModel(None, None, backend.config, stats, backend, None, label="toy", data=data)


@pytest.mark.parametrize("kind", ["torch", "jax"])
def test_offsets_reach_the_least_squares_optimum_and_keep_forces(kind, data, tmp_path):
    from mlffbench.data.stats import composition_counts, compute_stats
    from mlffbench.runs.experiment import fit_offsets_after_training

    pytest.importorskip("jax")
    ds, batcher = data
    split = SimpleNamespace(train=np.arange(6), val=np.array([6]), test=np.array([7]))
    from mlffbench.backends.jax.precision import float64_scope

    with float64_scope():
        backend = BACKENDS[kind]()  # energy_weight 0: force-only
        state = backend.init(0, batcher.make_batch([0]))
        e0, f0 = backend.predict(state, batcher.make_batch(list(range(8)), batch_size=8))
        stats = compute_stats(ds, split.train)
        prepared = _model_on(ds, split, stats, batcher, backend)
        result = SimpleNamespace(best_state=state, loop=SimpleNamespace(epoch=1))
        folder = tmp_path
        record = fit_offsets_after_training(prepared, result, folder, has_energy=True)
        e1, f1 = backend.predict(state, batcher.make_batch(list(range(8)), batch_size=8))
    assert record["energies"] == "offset-fitted"
    offsets = np.array([record["energy_offsets"][s] for s in ("Al", "Cu")])
    counts = composition_counts(ds, np.arange(8), SPECIES)
    np.testing.assert_allclose(e1[:8] - e0[:8], counts @ offsets, rtol=1e-9, atol=1e-9)  # applied to every energy
    np.testing.assert_array_equal(f1, f0)  # forces unchanged
    residual = ds.energy[:6] - e1[:6]
    np.testing.assert_allclose(counts[:6].T @ residual, 0.0, atol=1e-7 * np.abs(ds.energy).max())  # normal equations
    best, *_ = np.linalg.lstsq(counts[:6], ds.energy[:6] - e0[:6], rcond=None)
    np.testing.assert_allclose(offsets, best, rtol=1e-10)
    assert (
        record["offset_fit"]["train_energy_mae_per_atom_after"]
        < record["offset_fit"]["train_energy_mae_per_atom_before"]
    )
    assert json.loads((folder / "stats.json").read_text())["energy_offsets"] == pytest.approx(list(offsets))


def test_rank_deficient_composition_gets_the_minimum_norm_offsets(data, tmp_path):
    """Cu only in training (one composition): the offsets are the minimum-norm solution, 0 for Al."""
    from mlffbench.data.stats import compute_stats
    from mlffbench.runs.experiment import fit_offsets_after_training

    pytest.importorskip("torch")
    ds, batcher = data
    split = SimpleNamespace(train=np.array([0, 4]), val=np.array([6]), test=np.array([7]))  # both pure Cu cells
    backend = _torch_backend()
    state = backend.init(0, batcher.make_batch([0]))
    energy, _ = backend.predict(state, batcher.make_batch([0, 4]))
    prepared = _model_on(ds, split, compute_stats(ds, split.train), batcher, backend)
    record = fit_offsets_after_training(
        prepared, SimpleNamespace(best_state=state, loop=SimpleNamespace(epoch=1)), tmp_path, has_energy=True
    )
    assert record["energy_offsets"]["Al"] == 0.0
    assert record["energy_offsets"]["Cu"] == pytest.approx(np.mean((ds.energy[[0, 4]] - energy[:2]) / 8), rel=1e-9)


# ------------------------------------------------------------------ end to end
def _write_extxyz(frames, path: Path, stress: bool = True) -> Path:
    from ase.io import write

    out = []
    for atoms in frames:
        a = atoms.copy()
        e, f, s = atoms.info["labels"]
        a.info = {"energy": float(e)}
        if stress and a.pbc.all():
            a.info["stress"] = np.asarray(s).reshape(-1)
        a.arrays["forces"] = np.asarray(f)
        out.append(a)
    write(str(path), out, format="extxyz")
    return path


def _cli(*args, cwd):
    exe = Path(sys.executable).with_name("mlffbench")  # the console script beside this interpreter
    return subprocess.run([str(exe), *args], capture_output=True, text=True, cwd=cwd, timeout=600)


def test_stress_weight_on_data_without_stress_is_one_line_exit_2(tmp_path):
    path = _write_extxyz(emt_atoms(6, free=False), tmp_path / "nostress.xyz", stress=False)
    result = _cli(
        "run",
        "schnet",
        "--dataset",
        str(path),
        "-t",
        "stress_weight=1",
        "--epochs",
        "1",
        "--runs-dir",
        str(tmp_path / "runs"),
        "--no-tracking",
        cwd=tmp_path,
    )
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "stress_weight" in lines[0] and "no stress" in lines[0], result.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").glob("schnet-*"))


@pytest.mark.slow
def test_force_only_run_offsets_survive_restore_and_stress_is_reported(tmp_path):
    """A force-only JAT run with stress metrics: offsets in stats.json, restored by the ASE
    calculator and the run handle; the test energy error of restored predictions equals metrics.json."""
    from mlffbench.ase import calculator
    from mlffbench.runs.experiment import RunOptions, train_and_evaluate
    from mlffbench.runs.trained import TrainedModel

    frames = emt_atoms(24, seed=3, free=False)
    path = _write_extxyz(frames, tmp_path / "cual.xyz")
    small = {"layer_dims": [8, 8], "embed_d": 8, "readout_dims": [8], "cutoff": 3.0}  # compiles in seconds
    options = RunOptions(
        model="jat",
        dataset=str(path),
        model_params=small,
        train_params={"epochs": 1, "batch_size": 4},
        runs_dir=tmp_path / "runs",
        tracking=False,
        progress=False,
    )
    from mlffbench.data import user

    with user.command_request(user.DataRequest(units={"stress": "eV/angstrom^3"})):  # as --unit stress=eV/angstrom^3
        run_dir, metrics = train_and_evaluate(options)
    assert metrics["energies"] == "offset-fitted"
    assert set(metrics["energy_offsets"]) == {"Al", "Cu"}
    assert "stress_mae" in metrics["test"] and metrics["constant_stress_mae"] > 0
    offsets = json.loads((run_dir / "stats.json").read_text())["energy_offsets"]
    assert len(offsets) == 2 and any(abs(v) > 0 for v in offsets)
    handle = TrainedModel.from_run(run_dir, with_data=True)
    test = np.asarray(handle.require_data().split.test)
    pred = handle.predictions(test)
    mae = np.mean(np.abs(pred["energy_pred"] - pred["energy_ref"]) / pred["n_atoms"])
    assert mae == pytest.approx(metrics["test"]["energy_mae_per_atom"], rel=1e-5)
    calc = calculator(run_dir)
    for k, i in enumerate(test[:3]):
        atoms = frames[int(i)].copy()
        atoms.calc = calc
        assert atoms.get_potential_energy() == pytest.approx(pred["energy_pred"][k], rel=1e-6, abs=1e-4)
