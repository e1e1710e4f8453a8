"""Schedule and loss against the values computed with the original codes (docs/models/training.md)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mlffbench.errors import ConfigError
from mlffbench.training.config import TrainConfig
from mlffbench.training.schedule import learning_rate, one_cycle

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "models_reference_values.json"


@pytest.fixture(scope="module")
def reference():
    return json.loads(REFERENCE.read_text())


@pytest.mark.parametrize("case", ["neuralil_main_ean", "jat_train_JAT_EAN", "jat_full_JAT_training"])
def test_one_cycle_matches_original_per_step(reference, case):
    ref = reference["one_cycle_lr_per_epoch"][case]
    n = ref["steps_per_epoch"]
    lr_min, lr_max, lr_fin = ref["min_max_fin"]
    ours = [one_cycle(step, n, lr_min, lr_max, lr_fin) for step in range(n)]
    np.testing.assert_allclose(ours, ref["lr_by_step"], rtol=1e-6)
    assert one_cycle(n, n, lr_min, lr_max, lr_fin) == pytest.approx(lr_min * lr_fin / lr_max)


def test_one_cycle_restarts_every_epoch():
    lr = (5e-4, 3e-3, 5e-6)
    first = [learning_rate("one-cycle-epoch", lr, 0, s, 10, 5) for s in range(10)]
    third = [learning_rate("one-cycle-epoch", lr, 2, s, 10, 5) for s in range(10)]
    assert first == third and first[0] == 5e-4 and max(first) == 3e-3


def test_log_cosh_matches_reference_and_is_stable(reference):
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    from mlffbench.backends.jax.losses import log_cosh

    x = np.asarray(reference["log_cosh"]["x"])
    from mlffbench.backends.jax.precision import float64_scope

    with float64_scope():
        for p in (0.1, 1.0, 10.0):
            np.testing.assert_allclose(
                np.asarray(log_cosh(jnp.asarray(x), p)), reference["log_cosh"][f"p={p}"], rtol=1e-9, atol=1e-12
            )
        grad = jax.grad(lambda v: log_cosh(v, 10.0))(0.3)
        assert float(grad) == pytest.approx(np.tanh(3.0), rel=1e-12)
    big = np.asarray(log_cosh(jnp.asarray([1e4, -1e4]), 1.0))
    assert np.all(np.isfinite(big))
    np.testing.assert_allclose(big, 1e4 - np.log(2.0), rtol=1e-6)


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"optimizer": "sgd"}, "unknown optimizer 'sgd'"),
        ({"lr": (1e-3, -1.0, 1e-5)}, "lr must be three positive numbers"),
        ({"batch_size": 0}, "batch_size must be >= 1"),
        ({"force_weight": 0.0, "energy_weight": 0.0}, "at least one of force_weight"),
    ],
)
def test_train_config_rejects_bad_values(bad, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**bad)
