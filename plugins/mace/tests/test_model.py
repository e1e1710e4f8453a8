"""The MACE plugin's spec, config and module: registration, mace-torch's hidden irreps, config checks,
float64 constants that survive the backend's float32 initialisation, seeded re-initialisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mlffbench.data.stats import SpeciesStats
from mlffbench.errors import ConfigError
from mlffbench.plugin.manager import get_registry
from mlffbench.training.config import TrainConfig
from mlffbench_mace.config import PRESETS, SEARCH_SPACE, TRAIN, MaceConfig
from mlffbench_mace.model import build


def test_registered_through_the_entry_point():
    spec = get_registry().model("mace")
    assert spec.backend == "torch" and spec.config_class is MaceConfig
    assert spec.cutoff(MaceConfig(r_max=4.5)) == 4.5
    assert set(spec.presets) == {"ean", "rmd17"} and spec.search_space is SEARCH_SPACE
    TrainConfig(**{**TRAIN, **PRESETS["rmd17"]["train"]})  # valid training options


def test_config_defaults_and_checks():
    config = MaceConfig()
    assert (config.r_max, config.num_bessel, config.num_polynomial_cutoff, config.max_ell) == (5.0, 8, 5, 3)
    assert (config.correlation, config.num_interactions, config.mlp_channels) == (3, 2, 16)
    assert config.hidden_irreps() == "32x0e + 32x1o"
    assert MaceConfig(num_channels=16, max_L=0).hidden_irreps() == "16x0e"
    assert MaceConfig.from_dict({"radial_mlp": [8, 8]}).radial_mlp == (8, 8)  # as a run's config.json holds it
    with pytest.raises(ConfigError, match="max_L"):
        MaceConfig(max_ell=1, max_L=2)
    with pytest.raises(ConfigError):
        MaceConfig(interaction="NoSuchBlock")
    with pytest.raises(ConfigError):
        MaceConfig(r_max=0.0)


@pytest.fixture(scope="module")
def module():
    config = MaceConfig(num_channels=4, max_ell=2, correlation=2, radial_mlp=(8,))
    return build(config, SpeciesStats(species=(1, 6, 8), reference_energies=np.zeros(3))).module


def test_constants_stay_float64_exact_through_a_float32_cast(module):
    before = {n: b.clone() for n, b in module.named_buffers() if b.is_floating_point()}
    assert any(".U_matrix_" in n for n in before) and any("_w3j_" in n for n in before)
    assert all(b.dtype == torch.float64 for b in before.values())
    module.to(torch.float32)  # what the torch backend does before its (float32) initialisation
    module.to(torch.float64)
    for name, b in module.named_buffers():
        if name in before:
            assert b.dtype == torch.float64 and torch.equal(b, before[name]), name
    # a plain round trip of the same values would have lost the digits
    assert any(not torch.equal(b.float().double(), b) for n, b in before.items() if ".U_matrix_" in n)


def test_reset_parameters_is_seeded_and_drawn_like_mace_torch(module):
    def draw(seed):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module.reset_parameters()
        return {n: p.detach().clone() for n, p in module.named_parameters()}

    a, b, c = draw(0), draw(0), draw(1)
    assert all(torch.equal(a[n], b[n]) for n in a)
    assert not torch.equal(torch.cat([v.flatten() for v in a.values()]), torch.cat([v.flatten() for v in c.values()]))
    weights = torch.cat([v.flatten() for n, v in a.items() if ".symmetric_contractions." not in n])
    assert abs(float(weights.std()) - 1.0) < 0.1  # e3nn: standard normal
    for n, v in a.items():
        if ".symmetric_contractions." in n:  # mace: standard normal / number of coupling paths
            assert float(v.std() * v.shape[1]) == pytest.approx(1.0, abs=0.5), n


class _Corner:
    """An Optuna-like trial that takes every dimension's upper end."""

    def suggest_float(self, name, low, high, log=False):
        return high

    def suggest_int(self, name, low, high, step=1, log=False):
        return high

    def suggest_categorical(self, name, choices):
        return choices[-1]


def test_search_space_gives_valid_configs():
    model, train = SEARCH_SPACE.overrides(SEARCH_SPACE.sample(_Corner()))
    config = MaceConfig(**model)
    assert (config.num_channels, config.max_ell, config.correlation, config.r_max) == (128, 3, 3, 6.0)
    TrainConfig(**{**TRAIN, **train})
    assert max(train["lr"]) == pytest.approx(2e-2)
