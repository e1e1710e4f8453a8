"""The NeuralIL config, its presets and search space, and the plugin's registration."""

from __future__ import annotations

import numpy as np
import optuna
import pytest

from mlffbench.backends.jax.potential import Potential
from mlffbench.data.stats import compute_stats
from mlffbench.errors import ConfigError
from mlffbench.plugin.manager import get_registry
from mlffbench.training.config import TrainConfig
from mlffbench_neuralil.config import PAPER_EAN_TRAIN, NeuralilConfig, search_space


def test_defaults_are_the_paper_ean_model():
    c = NeuralilConfig()
    assert (c.n_max, c.cutoff, c.embed_d, c.core_widths, c.morse) == (4, 3.5, 2, (64, 32, 16, 16, 16), True)
    assert c.n_coeffs == 15 and not c.species_energy_shift and c.dtype == "float32"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"core_widths": ()}, "core_widths must hold at least one positive integer"),
        ({"core_widths": (64, 0)}, "core_widths must hold at least one positive integer"),
        ({"core_widths": "64"}, "core_widths must be a sequence"),
        ({"n_max": -1}, "n_max must be an integer from 0 to 12"),
        ({"n_max": 4.0}, "n_max must be an integer"),
        ({"embed_d": True}, "embed_d must be a positive integer"),
        ({"cutoff": 0.0}, "cutoff must be a positive finite length"),
        ({"cutoff": float("nan")}, "cutoff must be a positive finite length"),
        ({"cutoff": "3.5"}, "cutoff must be a number"),
        ({"morse": "yes"}, "morse must be true or false"),
        ({"dtype": "bfloat16"}, "dtype must be one of float32, float64"),
    ],
)
def test_invalid_values_raise_config_error(overrides, message):
    with pytest.raises(ConfigError, match=message):
        NeuralilConfig(**overrides)


def test_lists_become_tuples_and_unknown_keys_are_named():
    c = NeuralilConfig.from_dict({"core_widths": [32, 16], "cutoff": 4})
    assert c.core_widths == (32, 16) and c.cutoff == 4.0 and isinstance(c.cutoff, float)
    assert hash(c) == hash(NeuralilConfig(core_widths=(32, 16), cutoff=4.0))
    with pytest.raises(ConfigError, match="unknown option 'max_neighbors'"):
        NeuralilConfig.from_dict({"max_neighbors": 35})


def test_paper_training_settings():
    """docs/models/training.md, docs/models/neuralil.md §5: Adam + decoupled weight decay 1e-4, one-cycle (1e-3, 1e-2, 1e-5)
    per epoch, log-cosh p = 10 on forces only, batch 8."""
    paper = TrainConfig(**PAPER_EAN_TRAIN)
    assert (paper.optimizer, paper.weight_decay, paper.lr, paper.lr_schedule) == (
        "adamw",
        1e-4,
        (1e-3, 1e-2, 1e-5),
        "one-cycle-epoch",
    )
    assert (paper.loss, paper.log_cosh_p, paper.force_weight, paper.energy_weight) == ("log-cosh", 10.0, 1.0, 0.0)
    assert (paper.batch_size, paper.eval_batch_size, paper.epochs) == (8, 32, 501)


def test_registered_through_the_entry_point(weights_path, ean):
    registry = get_registry()
    spec = registry.model("neuralil")
    assert registry.provider[("models", "neuralil")] == "neuralil"
    assert spec.backend == "jax" and spec.config_class is NeuralilConfig
    assert spec.cutoff(NeuralilConfig(cutoff=4.5)) == 4.5
    model = spec.default_config(**spec.presets["ean"]["model"])
    assert model == NeuralilConfig()
    train = TrainConfig(**{**spec.train_defaults, **spec.presets["ean"]["train"]})
    assert train.batch_size == 8 and train.loss == "log-cosh" and train.force_weight == 1.0
    assert train == TrainConfig(**PAPER_EAN_TRAIN)
    potential = spec.build(model, compute_stats(ean, np.arange(10)))
    assert isinstance(potential, Potential) and potential.module.n_species == 4
    params = spec.import_weights(weights_path, model, species=(1, 6, 7, 8))
    assert params["embed"]["embedding"].shape == (4, 2)


def test_search_space_gives_valid_configs():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(25):
        trial = study.ask()
        config = NeuralilConfig(**search_space(trial))
        assert 2 <= config.n_max <= 6 and 3.0 <= config.cutoff <= 5.0
        seen.add((config.n_max, config.core_widths))
        study.tell(trial, 0.0)
    assert len(seen) > 5
    fixed = optuna.trial.FixedTrial(
        {
            "n_max": 4,
            "cutoff": 3.5,
            "embed_d": 2,
            "core_widths": "64:32:16:16:16",
            "morse": True,
            "lr_max": 1e-2,
            "weight_decay": 1e-4,
        }
    )
    assert NeuralilConfig(**search_space(fixed)) == NeuralilConfig()
    _, train = search_space.overrides(search_space.sample(fixed))
    assert train == {"lr": pytest.approx(PAPER_EAN_TRAIN["lr"]), "weight_decay": 1e-4}  # the paper's settings
