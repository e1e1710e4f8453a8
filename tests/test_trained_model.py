"""The one trained-model type: the output scale travels with the backend state (JAX and torch),
so a run is restored from its files alone; a JAX state of the previous format still loads."""

from __future__ import annotations

import numpy as np
import pytest

from mlffbench.training.config import TrainConfig


def _toy_jax_backend(**train):
    import flax.linen as nn
    import jax.numpy as jnp

    from mlffbench.backends.jax.potential import Potential
    from mlffbench.backends.jax.trainer import JaxBackend

    class Toy(nn.Module):
        @nn.compact
        def __call__(self, graph):
            d = jnp.linalg.norm(graph.vectors, axis=-1)
            h = nn.Embed(2, 4)(graph.species)
            msg = h[graph.senders] * (jnp.exp(-d) * graph.edge_mask)[:, None]
            return nn.Dense(1)(jnp.tanh(h + jnp.zeros_like(h).at[graph.receivers].add(msg)))[:, 0]

    return JaxBackend(Potential(Toy(), np.zeros(2)), TrainConfig(**train), force_rms=0.7)


def _example():
    from mlffbench.runs.trained import example_batch

    return example_batch((1, 8), 3.0)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_jax_state_bytes_carry_the_output_scale_and_scope_float64(dtype):
    import jax
    from flax import serialization

    backend = _toy_jax_backend(calibrate_output=True, dtype=dtype)
    state = backend.init(0, _example())
    scale = backend.potential.output_scale
    assert scale != 1.0 and not jax.config.jax_enable_x64  # float64 only inside the backend's calls
    leaf = jax.tree_util.tree_leaves(state.params)[0]
    assert leaf.dtype == np.dtype(dtype)
    blob = backend.state_to_bytes(state)
    assert backend.saved_output_scale(blob) == pytest.approx(scale)
    energy, _ = backend.predict(state, _example())

    other = _toy_jax_backend(calibrate_output=False, dtype=dtype)
    template = other.init(1, _example())
    assert other.potential.output_scale == 1.0
    restored = other.state_from_bytes(template, blob)
    assert other.potential.output_scale == pytest.approx(scale)
    np.testing.assert_array_equal(other.predict(restored, _example())[0], energy)

    # format 1 (the bare flax state, no scale): still loads, the potential keeps its scale
    old = serialization.to_bytes(state)
    assert other.saved_output_scale(old) is None
    other.potential.output_scale = 2.5
    again = other.state_from_bytes(template, old)
    assert other.potential.output_scale == 2.5
    for a, b in zip(jax.tree_util.tree_leaves(again.params), jax.tree_util.tree_leaves(state.params), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert not jax.config.jax_enable_x64


def test_float64_scope_restores_the_previous_setting():
    import jax

    from mlffbench.backends.jax.precision import float64_scope

    assert not jax.config.jax_enable_x64
    with float64_scope("float64"):
        assert jax.config.jax_enable_x64
        with float64_scope("float32"):  # a float32 scope leaves the setting as it is
            assert jax.config.jax_enable_x64
    assert not jax.config.jax_enable_x64


@pytest.mark.slow
def test_a_calibrated_jax_run_is_restored_without_its_dataset(tmp_path, monkeypatch):
    """``from_run`` of a run whose output scale was calibrated on its first training batch reads
    no data (the checkpoint holds the scale) and reproduces the run's test metrics."""
    from mlffbench.data import loading
    from mlffbench.runs.experiment import RunOptions, train_and_evaluate
    from mlffbench.runs.trained import TrainedModel
    from mlffbench.speed import compare

    options = RunOptions(
        model="jat",
        dataset="ean",
        runs_dir=tmp_path / "runs",
        tracking=False,
        progress=False,
        model_params={"layer_dims": [16, 16], "embed_d": 16, "cutoff": 3.5},
        train_params={"epochs": 1, "max_configs": 16, "batch_size": 4, "eval_batch_size": 8, "calibrate_output": True},
    )
    run_dir, metrics = train_and_evaluate(options)

    def no_data(*args, **kwargs):
        raise AssertionError("from_run read the dataset")

    with monkeypatch.context() as patch:
        patch.setattr(loading, "load_dataset", no_data)
        model = TrainedModel.from_run(run_dir)
    assert model.backend.potential.output_scale != 1.0 and model.run.metrics["test"] == metrics["test"]
    with_data = TrainedModel.from_run(run_dir, with_data=True)
    assert with_data.backend.potential.output_scale == model.backend.potential.output_scale
    errors = compare.errors_of(with_data.predictions(with_data.require_data().split.test))
    for key in ("force_mae", "energy_mae_per_atom"):
        assert errors[key] == pytest.approx(metrics["test"][key], rel=1e-6)
