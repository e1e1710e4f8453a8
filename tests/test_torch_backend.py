"""The PyTorch backend on a small toy model: the same losses and optimizers as the JAX backend,
forces and stress by autograd against finite differences, immutable states, exact resume
(optimizer and random state), device selection and clear errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mlffbench.backends.base import get_backend_class
from mlffbench.backends.torch.potential import Potential, to_device
from mlffbench.backends.torch.trainer import TorchBackend, select_device
from mlffbench.data.structures import from_arrays
from mlffbench.errors import ConfigError, RunError
from mlffbench.graph.batching import GraphBatcher
from mlffbench.graph.neighbors import compute_neighbors
from mlffbench.training.config import TrainConfig

RC = 3.0
SPECIES = (1, 8)


class ToyModel(torch.nn.Module):
    """Gaussian pair features with a cosine cutoff, a small MLP, optional dropout."""

    def __init__(self, n_species: int, dropout: float = 0.0):
        super().__init__()
        self.embedding = torch.nn.Embedding(n_species, 4)
        self.lin1 = torch.nn.Linear(4, 8)
        self.lin2 = torch.nn.Linear(8, 1)
        self.drop = torch.nn.Dropout(dropout)

    def forward(self, graph):
        d = torch.clamp(torch.linalg.vector_norm(graph.vectors, dim=-1), max=RC)
        envelope = 0.5 * (torch.cos(d * math.pi / RC) + 1.0)
        feat = self.embedding(graph.species)
        msg = feat[graph.senders] * (torch.exp(-(d**2)) * envelope)[:, None]
        h = feat + torch.zeros_like(feat).index_add(0, graph.receivers, msg)
        return self.lin2(self.drop(torch.tanh(self.lin1(h)))).squeeze(-1)


def _dataset(n_configs=6, seed=0):
    rng = np.random.default_rng(seed)
    n = 10
    numbers = np.tile([8, 1, 1, 8, 1, 1, 8, 1, 1, 1], n_configs)
    positions = rng.uniform(0, 5.0, size=(n * n_configs, 3))
    cell = np.stack([np.diag([5.0, 5.5, 6.0])] * n_configs)
    return from_arrays(
        numbers=numbers,
        positions=positions,
        n_atoms=[n] * n_configs,
        cell=cell,
        pbc=np.ones((n_configs, 3), bool),
        energy=rng.normal(-50.0, 1.0, n_configs),
        forces=rng.normal(0, 1.0, size=(n * n_configs, 3)),
    )


@pytest.fixture(scope="module")
def data():
    ds = _dataset()
    batcher = GraphBatcher(ds, compute_neighbors(ds, RC), SPECIES, 3)
    return ds, batcher


def _backend(dropout=0.0, seed=0, **train):
    torch.manual_seed(seed)
    potential = Potential(ToyModel(len(SPECIES), dropout), [-0.5, -4.0])
    return TorchBackend(potential, TrainConfig(**{"dtype": "float64", **train}), force_rms=1.0, device="cpu")


def test_registered_as_torch_backend():
    assert get_backend_class("torch") is TorchBackend


def test_log_cosh_equals_the_jax_definition():
    import jax

    from mlffbench.backends.jax.losses import pointwise as jax_pointwise
    from mlffbench.backends.torch.losses import pointwise

    x = np.array([-300.0, -3.0, -0.2, -1e-3, 0.0, 1e-3, 0.05, 2.0, 500.0])
    for p in (0.1, 1.0, 10.0):
        ours = pointwise("log-cosh", torch.as_tensor(x), p).numpy()
        from mlffbench.backends.jax.precision import float64_scope

        with float64_scope():
            theirs = np.asarray(jax_pointwise("log-cosh", jax.numpy.asarray(x), p))
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-15)
        small = np.abs(p * x) < 20
        np.testing.assert_allclose(ours[small], np.log(np.cosh(p * x[small])) / p, rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(pointwise("mse", torch.as_tensor(x), 1.0).numpy(), x**2)


@pytest.mark.parametrize(("optimizer", "weight_decay"), [("yogi", 0.0), ("adam", 0.0), ("adamw", 0.0), ("adam", 1e-3)])
def test_optimizer_equals_optax(optimizer, weight_decay):
    import jax
    import optax

    from mlffbench.backends.jax.trainer import make_optimizer
    from mlffbench.backends.torch.optim import Optimizer

    config = TrainConfig(optimizer=optimizer, weight_decay=weight_decay)
    rng = np.random.default_rng(1)
    params = {"a": rng.normal(size=(3, 2)), "b": rng.normal(size=4)}
    grads = [{k: rng.normal(size=v.shape) * 10 ** rng.uniform(-3, 1) for k, v in params.items()} for _ in range(6)]
    lrs = [1e-3, 3e-3, 2e-3, 5e-4, 1e-2, 1e-3]
    from mlffbench.backends.jax.precision import float64_scope

    with float64_scope():
        tx = make_optimizer(config)
        jp = {k: jax.numpy.asarray(v) for k, v in params.items()}
        state = tx.init(jp)
        for g, lr in zip(grads, lrs, strict=True):
            updates, state = tx.update({k: jax.numpy.asarray(v) for k, v in g.items()}, state, jp)
            jp = optax.apply_updates(jp, jax.tree_util.tree_map(lambda u, lr=lr: -lr * u, updates))
        expected = {k: np.asarray(v) for k, v in jp.items()}
    opt = Optimizer(config)
    tp = {k: torch.as_tensor(v).requires_grad_(True) for k, v in params.items()}
    ostate = opt.init(tp)
    for g, lr in zip(grads, lrs, strict=True):
        tp, ostate = opt.step(tp, {k: torch.as_tensor(v) for k, v in g.items()}, ostate, lr)
    for k in params:
        np.testing.assert_allclose(tp[k].detach().numpy(), expected[k], rtol=1e-10, atol=1e-14)


def test_forces_and_stress_by_finite_differences(data):
    _ds, batcher = data
    backend = _backend()
    graph_batch = batcher.make_batch([0, 1])
    state = backend.init(0, graph_batch)
    pot, params = backend.potential, {k: v.detach() for k, v in state.params.items()}
    batch = to_device(graph_batch, torch.float64)
    _energy, forces = pot.energy_and_forces(params, batch)
    assert np.abs(forces.numpy()).max() > 1e-3
    h = 1e-5
    rng = np.random.default_rng(3)
    for atom, comp in zip(rng.choice(20, 6, replace=False), rng.integers(0, 3, 6)):
        values = []
        for sign in (1, -1):
            pos = batch.positions.clone()
            pos[atom, comp] += sign * h
            values.append(float(pot.energy(params, batch, positions=pos).sum()))
        fd = -(values[0] - values[1]) / (2 * h)
        assert abs(fd - float(forces[atom, comp])) < 1e-7
    stress = pot.stress(params, batch).numpy()
    assert np.abs(stress[2:]).max() == 0.0  # empty and padding graphs
    for g in (0, 1):
        cell = batch.cell[g].numpy()
        volume = abs(np.linalg.det(cell))
        for i, j in [(0, 0), (1, 2), (2, 1), (0, 2)]:
            eps = np.zeros((3, 3))
            eps[i, j] += 0.5 * h
            eps[j, i] += 0.5 * h
            values = []
            for sign in (1, -1):
                deform = torch.as_tensor(np.eye(3) + sign * eps)
                pos = batch.positions @ deform
                cells = batch.cell @ deform
                values.append(float(pot.energy(params, batch, positions=pos, cell=cells)[g]))
            fd = (values[0] - values[1]) / (2 * h) / volume
            assert abs(fd - stress[g, i, j]) < 1e-8 + 1e-6 * abs(stress[g, i, j])


@pytest.mark.parametrize(("loss", "energy_weight"), [("log-cosh", 0.0), ("mse", 0.3), ("log-cosh", 2.0)])
def test_loss_follows_the_shared_definition(data, loss, energy_weight):
    """force_weight · mean over a configuration's 3N components of ℓ(ΔF) + energy_weight ·
    ℓ_E(ΔE/N), averaged over the real configurations of the batch (TrainConfig docstring)."""
    _ds, batcher = data
    backend = _backend(loss=loss, energy_weight=energy_weight, log_cosh_p=3.0, energy_log_cosh_p=7.0)
    graph_batch = batcher.make_batch([2, 4])  # 2 real graphs, one empty slot, the padding graph
    state = backend.init(0, graph_batch)
    batch = backend.to_device(graph_batch)
    got = float(backend._loss(state.params, batch).detach())
    energy, forces = backend.predict(state, graph_batch)

    def ell(x, p):
        return np.log(np.cosh(p * x)) / p if loss == "log-cosh" else x**2

    expected = 0.0
    for g in range(2):
        atoms = graph_batch.graph_index == g
        df = graph_batch.forces[atoms] - forces[atoms]
        de = (graph_batch.energy[g] - energy[g]) / graph_batch.n_atoms[g]
        expected += np.mean(ell(df, 3.0)) + energy_weight * ell(de, 7.0)
    assert got == pytest.approx(expected / 2, rel=1e-10)


def test_states_are_immutable_and_resume_is_exact(data):
    """Four steps in one go equal two steps, a serialised state restored into a fresh backend,
    and two more steps — bitwise, with dropout drawing from the state's random generator."""
    _ds, batcher = data
    batches = [batcher.make_batch(idx) for idx in ([0, 1, 2], [3, 4], [5, 0, 2], [1, 3, 4])]
    lrs = [1e-2, 3e-2, 2e-2, 1e-2]

    straight = _backend(dropout=0.3, seed=0)
    state = straight.init(7, batches[0])
    first = {k: v.clone() for k, v in state.params.items()}
    for batch, lr in zip(batches, lrs, strict=True):
        new, loss = straight.train_step(state, batch, lr)
        assert np.isfinite(straight.loss_value(loss))
        state = new
    initial = straight.init(7, batches[0])
    assert all(torch.equal(initial.params[k], first[k]) for k in first)  # init is a function of the seed
    assert not all(torch.equal(state.params[k], first[k]) for k in first)

    half = _backend(dropout=0.3, seed=1)  # a different global seed: nothing may depend on it
    s = half.init(7, batches[0])
    kept = {k: v.clone() for k, v in s.params.items()}
    s0 = s
    for batch, lr in zip(batches[:2], lrs[:2], strict=True):
        s, _ = half.train_step(s, batch, lr)
    assert all(torch.equal(s0.params[k], kept[k]) for k in kept)  # the old state is unchanged
    blob = half.state_to_bytes(s)

    resumed = _backend(dropout=0.3, seed=2)
    template = resumed.init(7, batches[0])
    r = resumed.state_from_bytes(template, blob)
    assert r.step == 2 and r.opt.count == 2
    torch.manual_seed(12345)  # the global RNG is not what dropout uses inside a step
    for batch, lr in zip(batches[2:], lrs[2:], strict=True):
        r, _ = resumed.train_step(r, batch, lr)
    for k in state.params:
        assert torch.equal(r.params[k], state.params[k]), k
        assert torch.equal(r.opt.nu[k], state.opt.nu[k]), k
    assert resumed.n_params(r) == sum(v.numel() for v in state.params.values())


def test_dropout_is_off_in_prediction(data):
    _ds, batcher = data
    backend = _backend(dropout=0.5)
    batch = batcher.make_batch([0, 1])
    state = backend.init(0, batch)
    e1, f1 = backend.predict(state, batch)
    e2, f2 = backend.predict(state, batch)
    assert np.array_equal(e1, e2) and np.array_equal(f1, f2)
    assert e1.dtype == np.float64 and f1.shape == (batch.n_nodes, 3)


def test_float32_and_calibration(data):
    _ds, batcher = data
    backend = _backend(dtype="float32", calibrate_output=True)
    backend.force_rms = 0.37
    batch = batcher.make_batch([0, 1, 2])
    state = backend.init(0, batch)
    assert all(v.dtype == torch.float32 for v in state.params.values())
    _, forces = backend.predict(state, batch)
    real = forces[batch.atom_mask]
    assert np.sqrt(np.mean(real**2)) == pytest.approx(0.37, rel=1e-4)
    assert backend.compile_count == 0 and backend.compile_seconds == 0.0
    env = backend.environment()
    assert env["backend"] == "torch" and env["device"].startswith("cpu") and env["torch"] == torch.__version__


def test_device_selection(monkeypatch):
    monkeypatch.setenv("MLFFBENCH_TORCH_DEVICE", "cpu")
    assert select_device() == torch.device("cpu")
    monkeypatch.setenv("MLFFBENCH_TORCH_DEVICE", "tpu:7")
    with pytest.raises(ConfigError, match="unknown torch device|only cpu and cuda"):
        select_device()
    if not torch.cuda.is_available():
        monkeypatch.setenv("MLFFBENCH_TORCH_DEVICE", "cuda")
        with pytest.raises(ConfigError, match="CUDA is not available"):
            select_device()
    monkeypatch.delenv("MLFFBENCH_TORCH_DEVICE")
    assert select_device().type == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu(data):
    _ds, batcher = data
    batch = batcher.make_batch([0, 1])
    cpu = _backend()
    gpu = TorchBackend(Potential(ToyModel(len(SPECIES)), [-0.5, -4.0]), TrainConfig(dtype="float64"), device="cuda")
    e_cpu, f_cpu = cpu.predict(cpu.init(3, batch), batch)
    e_gpu, f_gpu = gpu.predict(gpu.init(3, batch), batch)
    np.testing.assert_allclose(e_gpu, e_cpu, rtol=1e-10)
    np.testing.assert_allclose(f_gpu, f_cpu, rtol=1e-8, atol=1e-12)


def test_bad_inputs_give_clear_errors(data):
    _ds, batcher = data
    batch = batcher.make_batch([0])
    backend = _backend()
    state = backend.init(0, batch)
    with pytest.raises(RunError, match="not a torch backend state"):
        backend.state_from_bytes(state, b"PK\x03\x04 flax bytes")
    other = _backend()
    other.potential.module.lin1 = torch.nn.Linear(4, 5)
    other.potential.module.lin2 = torch.nn.Linear(5, 1)
    with pytest.raises(RunError, match="does not fit the model"):
        backend.state_from_bytes(state, other.state_to_bytes(other.init(0, batch)))
    with pytest.raises(ConfigError, match="do not fit the model"):
        backend.with_params(state, {"lin1.weight": np.zeros((8, 4))})
    bad = {k: np.zeros(tuple(v.shape) + (1,)) for k, v in state.params.items()}
    with pytest.raises(ConfigError, match="has shape"):
        backend.with_params(state, bad)
    with pytest.raises(ConfigError, match="needs a mlffbench.backends.torch.potential.Potential"):
        TorchBackend(object(), TrainConfig())
