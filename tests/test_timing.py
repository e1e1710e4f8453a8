"""The timing protocol on workloads of known cost: compilation timed apart, device
synchronisation before the clock is read, recompilations counted, robust statistics."""

from __future__ import annotations

import time

import numpy as np
import pytest

from mlffbench.errors import ConfigError
from mlffbench.speed import timing

RUN_S = 0.05  # cost of one call of the known-cost models
TRACE_S = 1.0  # extra cost of compiling them (a sleep while JAX traces)


def test_protocol_waits_for_sync_and_counts_compilations():
    """Framework-free: the work happens in sync (as on an asynchronous device); the counter
    says a compilation happened on the 3rd timed call."""
    calls = {"n": 0}

    def run():
        calls["n"] += 1
        return calls["n"]

    def sync(token):
        time.sleep(RUN_S + (TRACE_S if token in (1, 4) else 0.0))

    def compilations():  # one compilation done by call 1 (warm-up) and one more by call 4
        return (calls["n"] >= 1) + (calls["n"] >= 4)

    result = timing.measure(timing.Workload("fake", run, sync, compilations, configs=2, atoms=10), repeats=5, warmup=1)
    assert calls["n"] == 6
    assert result.warmup_compilations == 1 and result.recompilations == 1
    assert result.warmup_s[0] >= RUN_S + TRACE_S
    assert result.samples[2] >= RUN_S + TRACE_S  # the recompiling call keeps its cost ...
    assert RUN_S <= result.median_s < RUN_S + TRACE_S / 2  # ... but does not move the median
    assert result.compile_s >= TRACE_S * 0.9
    rates = result.rates()
    assert rates["us_per_atom_step"] == pytest.approx(1e6 * result.median_s / 10)
    assert rates["configs_per_s"] == pytest.approx(2 / result.median_s)
    with pytest.raises(ConfigError):
        timing.measure(timing.Workload("fake", run), repeats=0)


def test_interleaved_alternates_calls():
    order = []
    a = timing.Workload("a", lambda: order.append("a"))
    b = timing.Workload("b", lambda: order.append("b"))
    ta, tb = timing.measure_interleaved([a, b], repeats=3, warmup=2)
    assert order == ["a", "a", "b", "b"] + ["a", "b"] * 3
    assert len(ta.samples) == len(tb.samples) == 3 and len(ta.warmup_s) == 2


def test_warmup_lasts_at_least_the_minimum_time():
    calls = []
    w = timing.Workload("w", lambda: calls.append(time.sleep(0.01)))
    result = timing.measure(w, repeats=2, warmup=1, warmup_min_s=0.1)
    assert sum(result.warmup_s) >= 0.1 and 5 <= len(result.warmup_s) <= 11
    assert len(calls) == len(result.warmup_s) + 2


def test_power_law_fit_recovers_exponent():
    atoms = np.array([225, 1800, 6075])
    fit = timing.fit_power_law(atoms, 3e-6 * atoms**1.0)
    assert fit["exponent"] == pytest.approx(1.0, abs=1e-9) and fit["r2"] == pytest.approx(1.0)
    assert timing.fit_power_law(atoms, 1e-9 * atoms**2.0)["exponent"] == pytest.approx(2.0, abs=1e-9)
    with pytest.raises(ConfigError):
        timing.fit_power_law([100, 100], [1.0, 2.0])


@pytest.fixture(scope="module")
def ean_batches():
    from mlffbench.data.loading import load_dataset
    from mlffbench.graph.batching import GraphBatcher
    from mlffbench.graph.neighbors import compute_neighbors

    ds = load_dataset("ean").select(np.arange(3))
    batcher = GraphBatcher(ds, compute_neighbors(ds, 3.0), (1, 6, 7, 8), 1)
    return [batcher.make_batch([i], batch_size=1) for i in range(3)], batcher


def test_jax_backend_known_cost_model(ean_batches):
    """A flax model that sleeps RUN_S per call (host callback) and TRACE_S while compiling:
    the backend's inference timing holds the compilation in the warm-up only."""
    jax = pytest.importorskip("jax")
    import flax.linen as nn
    import jax.numpy as jnp

    from mlffbench.backends.jax.potential import Potential
    from mlffbench.backends.jax.trainer import JaxBackend
    from mlffbench.training.config import TrainConfig

    def slow(x):
        time.sleep(RUN_S)
        return x

    class Sleepy(nn.Module):
        @nn.compact
        def __call__(self, graph):
            time.sleep(TRACE_S)  # Python runs only while JAX traces, i.e. when it compiles
            w = self.param("w", nn.initializers.ones, ())
            pause = jax.pure_callback(slow, jax.ShapeDtypeStruct((), jnp.float32), jnp.zeros((), jnp.float32))
            d2 = jnp.sum(graph.vectors**2, axis=1) * graph.edge_mask
            per_atom = jax.ops.segment_sum(d2, graph.receivers, num_segments=graph.species.shape[0])
            return w * per_atom + pause

    batches, _ = ean_batches
    backend = JaxBackend(Potential(Sleepy(), np.zeros(4)), TrainConfig())
    state = backend.init(0, batches[0])
    result = timing.measure(timing.inference_workload(backend, state, batches[0]), repeats=4, warmup=1)
    assert result.warmup_compilations >= 1 and result.recompilations == 0
    assert result.compile_s >= 0.9 * TRACE_S
    assert RUN_S <= result.median_s < RUN_S + TRACE_S / 2
    assert result.atoms == 225 and result.configs == 1
    out = backend.inference_fn(state, batches[0])()
    backend.sync(out)
    assert np.isfinite(np.asarray(out[1])).all() and np.abs(np.asarray(out[1])).max() > 0  # real forces

    # a workload whose batch changes shape on its 3rd timed call: exactly one recompilation
    shapes = {b.shape for b in batches}
    other = next(b for b in batches if b.shape != batches[0].shape) if len(shapes) > 1 else None
    if other is None:
        pytest.skip("the first EAN configurations share one padded shape")
    fns = iter([backend.inference_fn(state, b) for b in (batches[0], batches[0], batches[0], other, other, other)])
    result = timing.measure(
        timing.Workload("switch", lambda: next(fns)(), backend.sync, backend.compilations), repeats=5, warmup=1
    )
    assert result.warmup_compilations == 0  # batches[0]'s shape was compiled above
    assert result.recompilations == 1
    assert result.samples[2] >= TRACE_S and result.median_s < RUN_S + TRACE_S / 2


def test_torch_backend_known_cost_model(ean_batches):
    torch = pytest.importorskip("torch")

    from mlffbench.backends.torch.potential import Potential
    from mlffbench.backends.torch.trainer import TorchBackend
    from mlffbench.training.config import TrainConfig

    class Sleepy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(()))

        def forward(self, graph):
            time.sleep(RUN_S)
            d2 = (graph.vectors**2).sum(dim=1)
            per_atom = torch.zeros(graph.species.shape[0], dtype=d2.dtype).index_add(0, graph.receivers, d2)
            return self.w * per_atom

    batches, _ = ean_batches
    backend = TorchBackend(Potential(Sleepy(), np.zeros(4)), TrainConfig(), device="cpu")
    state = backend.init(0, batches[0])
    result = timing.measure(timing.inference_workload(backend, state, batches[0]), repeats=4, warmup=1)
    assert result.warmup_compilations == 0 and result.recompilations == 0  # eager: nothing compiles
    assert RUN_S <= result.median_s < RUN_S + TRACE_S / 2
    assert backend.peak_device_memory() is None  # CPU
    steps = timing.measure(timing.training_workload(backend, state, batches[:2], 1e-3), repeats=3, warmup=1)
    assert steps.median_s >= 2 * RUN_S and steps.configs == 2
