"""The configs, presets and search spaces of the three mlip models (mlip validates them; no tracing)."""

from __future__ import annotations

import optuna
import pytest

from mlffbench.errors import ConfigError
from mlffbench.plugin.manager import get_registry
from mlffbench_mlip.config import MaceJaxConfig, NequipJaxConfig, VisnetJaxConfig
from mlffbench_mlip.model import mlip_network

MODELS = ("mace-jax", "nequip-jax", "visnet-jax")


def test_mace_defaults_match_the_small_mace_of_the_torch_plugin():
    c = MaceJaxConfig()
    assert (c.cutoff, c.num_rbf, c.radial_envelope, c.l_max, c.correlation, c.num_layers, c.num_channels) == (
        5.0,
        8,
        "polynomial",
        3,
        3,
        2,
        32,
    )


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: MaceJaxConfig(correlation=5), "mace-jax config: correlation must be an integer from 1 to 4"),
        (lambda: MaceJaxConfig(cutoff=0), "mace-jax config: cutoff must be a positive finite length"),
        (lambda: NequipJaxConfig(target_irreps="8y0e"), "nequip-jax config: target_irreps must be an irreps"),
        (lambda: VisnetJaxConfig(num_channels=30, num_heads=8), "num_channels must be a multiple of num_heads"),
        (lambda: VisnetJaxConfig(dtype="float16"), "visnet-jax config: dtype must be one of float32, float64"),
        (lambda: MaceJaxConfig(avg_num_neighbors=-1.0), "avg_num_neighbors must be a positive number"),
    ],
)
def test_bad_values_are_one_line_config_errors(make, message):
    with pytest.raises(ConfigError, match=message):
        make()


@pytest.mark.parametrize("name", MODELS)
def test_registered_with_presets_and_a_search_space_that_gives_valid_configs(name):
    spec = get_registry().model(name)
    assert spec.backend == "jax" and spec.cutoff(spec.default_config()) == 5.0
    for preset in ("ean", "rmd17"):
        mlip_network(spec.config_class(**spec.presets[preset]["model"]), (1, 6, 7, 8))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(8):
        trial = study.ask()
        model, train = spec.search_space.overrides(spec.search_space.sample(trial))
        config = spec.config_class(**model)
        mlip_network(config, (1, 6, 8))  # mlip's own config validation accepts it
        assert len(train["lr"]) == 3
