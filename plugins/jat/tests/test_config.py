"""The JAT config, its presets and search space, and the plugin's registration."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import optuna
import pytest

from mlffbench.backends.jax.potential import Potential
from mlffbench.data.stats import compute_stats
from mlffbench.errors import ConfigError
from mlffbench.plugin.manager import get_registry
from mlffbench.training.config import TrainConfig
from mlffbench_jat.config import EAN_MODEL, EAN_TRAIN, JatConfig, search_space


def test_defaults_are_the_thesis_ean_model():
    c = JatConfig()
    assert (c.layer_dims, c.n_head, c.embed_d, c.cutoff) == ((48,) * 7, 1, 48, 5.0)
    assert c.readout_dims == (64, 32, 16, 16)
    assert (c.edge_feature_float32, c.cutoff_envelope, c.species_energy_shift) == (False, "none", False)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"layer_dims": ()}, "layer_dims must name at least one"),
        ({"layer_dims": (48, 0)}, "layer_dims must contain positive integers"),
        ({"layer_dims": "48"}, "layer_dims must be a sequence"),
        ({"readout_dims": (64, 2.5)}, "readout_dims must contain positive integers"),
        ({"n_head": 0}, "n_head must be a positive integer"),
        ({"embed_d": True}, "embed_d must be a positive integer"),
        ({"cutoff": -1.0}, "cutoff must be a positive finite length"),
        ({"cutoff": float("inf")}, "cutoff must be a positive finite length"),
        ({"cutoff": "5"}, "cutoff must be a number"),
        ({"cutoff_envelope": "smooth"}, "cutoff_envelope must be one of none, cosine"),
        ({"edge_feature_float32": 1}, "edge_feature_float32 must be true or false"),
        ({"dtype": "float16"}, "dtype must be one of float32, float64"),
    ],
)
def test_invalid_values_raise_config_error(overrides, message):
    with pytest.raises(ConfigError, match=message):
        JatConfig(**overrides)


def test_lists_become_tuples_and_unknown_keys_are_named():
    c = JatConfig.from_dict({"layer_dims": [32, 32, 32], "cutoff": 4})
    assert c.layer_dims == (32, 32, 32) and c.cutoff == 4.0 and isinstance(c.cutoff, float)
    assert hash(c) == hash(JatConfig(layer_dims=(32, 32, 32), cutoff=4.0))
    with pytest.raises(ConfigError, match="unknown option 'n_heads'"):
        JatConfig.from_dict({"n_heads": 2})


def test_registered_through_the_entry_point(weights_path, ean):
    ean_set = ean
    registry = get_registry()
    spec = registry.model("jat")
    assert registry.provider[("models", "jat")] == "jat"
    assert spec.backend == "jax" and spec.config_class is JatConfig
    assert spec.cutoff(JatConfig(cutoff=3.5)) == 3.5
    # presets and training defaults are valid model and training configs
    ean = spec.default_config(**spec.presets["ean"]["model"])
    ani1 = spec.default_config(**spec.presets["ani1"]["model"])
    assert (ean.layer_dims, ean.n_head, ean.cutoff) == ((48,) * 7, 1, 5.0)
    assert (ani1.layer_dims, ani1.n_head, ani1.cutoff) == ((48,) * 5, 4, 3.0)
    # training from scratch: the documented deviations (edge basis, Adam, batch 2, one cycle)
    scratch = spec.default_config(**spec.model_defaults)
    assert scratch.edge_basis == 16 and scratch.species_energy_shift
    train = TrainConfig(**spec.train_defaults)
    assert (train.batch_size, train.loss, train.log_cosh_p, train.optimizer) == (2, "log-cosh", 10.0, "adam")
    assert train.lr_schedule == "one-cycle"
    # the thesis settings stay selectable: plugins/jat/configs/ean-thesis.json
    thesis = json.loads((Path(__file__).parents[1] / "configs" / "ean-thesis.json").read_text())
    assert JatConfig(**{**EAN_MODEL, **thesis["model"]}) == JatConfig()
    thesis_train = TrainConfig(**{**thesis["train"], "lr": tuple(thesis["train"]["lr"])})
    assert thesis_train == TrainConfig(**EAN_TRAIN)
    assert (thesis_train.optimizer, thesis_train.batch_size, thesis_train.lr) == ("yogi", 8, (5e-4, 3e-3, 5e-6))
    ani1_train = TrainConfig(**spec.presets["ani1"]["train"])
    assert ani1_train.force_weight == 0 and ani1_train.energy_weight > 0
    # build and weight import through the spec
    potential = spec.build(ean, compute_stats(ean_set, np.arange(10)))
    assert isinstance(potential, Potential) and potential.module.n_species == 4
    params = spec.import_weights(weights_path, ean)
    assert params["embed"]["embedding"].shape == (4, 48)


def test_search_space_gives_valid_configs():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(25):
        trial = study.ask()
        config = JatConfig(**search_space(trial))
        assert 3 <= len(config.layer_dims) <= 9 and config.layer_dims[0] in (32, 48, 64)
        assert config.n_head in (1, 2, 4) and 3.5 <= config.cutoff <= 6.0
        seen.add((len(config.layer_dims), config.n_head))
        study.tell(trial, 0.0)
    assert len(seen) > 5
    fixed = optuna.trial.FixedTrial(
        {
            "n_layers": 7,
            "width": 48,
            "n_head": 1,
            "cutoff": 5.0,
            "readout": "64:32:16:16",
            "cutoff_envelope": "none",
            "edge_basis": 0,
            "lr_max": 4e-3,
        }
    )
    assert JatConfig(**search_space(fixed)) == JatConfig()
    _, train = search_space.overrides(search_space.sample(fixed))
    assert train["lr"] == pytest.approx((4e-4, 4e-3, 2e-5))  # the default (2e-4, 2e-3, 1e-5) scaled x2


def test_released_weights_get_the_published_architecture():
    """Training from scratch uses the plugin's model defaults (edge basis, energy shift);
    with --init-from the released (thesis) architecture is built instead."""
    from mlffbench.runs.experiment import resolve_configs

    registry = get_registry()
    spec, card = registry.model("jat"), registry.dataset("ean")
    scratch, train = resolve_configs(spec, card, {}, {})
    released, _ = resolve_configs(spec, card, {}, {}, from_weights=True)
    assert (scratch.edge_basis, scratch.species_energy_shift) == (16, True)
    assert released == JatConfig()
    assert train.optimizer == "adam" and train.batch_size == 2
    # a user value still wins over both
    assert resolve_configs(spec, card, {"edge_basis": 8}, {}, from_weights=True)[0].edge_basis == 8
