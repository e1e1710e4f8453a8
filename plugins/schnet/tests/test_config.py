"""The SchNet config, its presets and search space, and the plugin's registration."""

from __future__ import annotations

import numpy as np
import optuna
import pytest

from mlffbench.backends.torch.potential import Potential
from mlffbench.data.stats import compute_stats
from mlffbench.errors import ConfigError
from mlffbench.plugin.manager import get_registry
from mlffbench.training.config import TrainConfig, from_dict
from mlffbench_schnet.config import PRESETS, TRAIN, SchnetConfig, search_space


def test_defaults_are_sized_for_ean():
    c = SchnetConfig()
    assert (c.hidden_channels, c.num_filters, c.num_interactions, c.num_gaussians) == (64, 64, 3, 50)
    assert (c.cutoff, c.readout_channels, c.species_energy_shift, c.pair_symmetry) == (5.0, 32, True, True)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"hidden_channels": 0}, "hidden_channels must be a positive integer"),
        ({"num_filters": 2.5}, "num_filters must be a positive integer"),
        ({"num_interactions": True}, "num_interactions must be a positive integer"),
        ({"num_gaussians": 1}, "num_gaussians must be at least 2"),
        ({"cutoff": -1.0}, "cutoff must be a positive finite length"),
        ({"cutoff": float("nan")}, "cutoff must be a positive finite length"),
        ({"cutoff": "5"}, "cutoff must be a number"),
        ({"species_energy_shift": 1}, "species_energy_shift must be true or false"),
        ({"pair_symmetry": "yes"}, "pair_symmetry must be true or false"),
    ],
)
def test_invalid_values_raise_config_error(overrides, message):
    with pytest.raises(ConfigError, match=message) as err:
        SchnetConfig(**overrides)
    assert "\n" not in str(err.value)


def test_from_dict_names_unknown_keys():
    c = SchnetConfig.from_dict({"cutoff": 4, "num_interactions": 2})
    assert c.cutoff == 4.0 and isinstance(c.cutoff, float) and c.num_interactions == 2
    with pytest.raises(ConfigError, match="unknown option 'max_num_neighbors'"):
        SchnetConfig.from_dict({"max_num_neighbors": 32})


def test_presets_and_train_defaults_are_valid():
    for family, preset in PRESETS.items():
        SchnetConfig(**preset.get("model", {}))
        config = from_dict(TrainConfig, {**TRAIN, **preset.get("train", {})}, f"schnet {family} training")
        assert config.force_weight > 0


def test_search_space_gives_valid_configs():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(5):
        trial = study.ask()
        config = SchnetConfig(**search_space(trial))
        assert 3.5 <= config.cutoff <= 6.0 and config.hidden_channels == config.num_filters


def test_registered_through_the_entry_point(ean):
    registry = get_registry()
    spec = registry.model("schnet")
    assert registry.provider[("models", "schnet")] == "schnet"
    assert spec.backend == "torch" and spec.config_class is SchnetConfig
    assert spec.cutoff(SchnetConfig(cutoff=4.5)) == 4.5 and spec.search_space is search_space
    stats = compute_stats(ean, np.arange(10))
    potential = spec.build(SchnetConfig(), stats)
    assert isinstance(potential, Potential)
    np.testing.assert_allclose(potential.reference_energies.numpy(), stats.reference_energies)
    unshifted = spec.build(SchnetConfig(species_energy_shift=False), stats)
    assert not unshifted.reference_energies.any()


def test_cli_rejects_bad_model_option_in_one_line(tmp_path):
    import subprocess
    import sys

    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlffbench.cli.app",
            "run",
            "schnet",
            "--dataset",
            "ean",
            "-p",
            "cutoff=-2",
            "--runs-dir",
            str(tmp_path),
            "--no-tracking",
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "error: schnet config: cutoff must be a positive finite length (Å), got -2"
    ]
