"""SchNet model configuration: defaults, dataset presets and the Optuna search space.

The layers are torch-geometric's; only the sizes are ours, chosen for EAN on a CPU:
docs/models/schnet.md §4.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mlffbench.plugin.config import Flag, Integer, Length, ModelConfig, option
from mlffbench.plugin.search_space import Categorical, Float, Int, SearchSpace

# checked in this order (the first bad value is the one reported)
_ORDER = ("hidden_channels", "num_filters", "num_interactions", "num_gaussians", "readout_channels", "cutoff")


@dataclass(frozen=True)
class SchnetConfig(ModelConfig, label="schnet config", order=_ORDER):
    hidden_channels: int = option(64, Integer(1))
    num_filters: int = option(64, Integer(1))
    num_interactions: int = option(3, Integer(1))
    num_gaussians: int = option(50, Integer(1, at_least=2))
    cutoff: float = option(5.0, Length())
    readout_channels: int = option(32, Integer(1))
    species_energy_shift: bool = option(True, Flag())
    pair_symmetry: bool = option(True, Flag())


# Training defaults (TrainConfig keys), chosen so that SchNet learns EAN and rMD17 molecules
# within a CPU budget of about ten minutes (measured runs: the plugin's README.md).
TRAIN: dict[str, Any] = {
    "epochs": 14,
    "batch_size": 4,
    "eval_batch_size": 16,
    "optimizer": "adam",
    "weight_decay": 0.0,
    "lr_schedule": "one-cycle",
    "lr": (2e-4, 3e-3, 1e-2),
    "loss": "log-cosh",
    "log_cosh_p": 10.0,
    "energy_log_cosh_p": 50.0,
    "force_weight": 1.0,
    "energy_weight": 1.0,
}

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "ean": {"model": {}, "train": {}},
    "rmd17": {"model": {}, "train": {"epochs": 15, "batch_size": 8, "eval_batch_size": 64}},
}


def _derive(values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    width = int(values["width"])
    model = {
        "hidden_channels": width,
        "num_filters": width,
        "num_interactions": int(values["num_interactions"]),
        "num_gaussians": int(values["num_gaussians"]),
        "cutoff": float(values["cutoff"]),
        "readout_channels": max(width // 2, 16),
    }
    lr_min, lr_max, lr_fin = TRAIN["lr"]
    scale = float(values["lr_max"]) / lr_max
    return model, {"lr": (lr_min * scale, lr_max * scale, lr_fin * scale)}


# Around the 2017 paper's settings (docs/models/schnet.md §3: 64 features, 3 interactions, Gaussians
# every 0.1 Å) and PyG's QM9 ones (128 / 6): width 32-128, 2-6 interactions, 25-100 Gaussians
# (0.05-0.2 Å spacing at 5 Å), cutoffs 3.5-6 Å (below half the 12.9 Å EAN box), and the
# peak LR of the one-cycle schedule (scaling the default triple; Adam).
SEARCH_SPACE = SearchSpace(
    {
        "width": Categorical((32, 64, 128)),
        "num_interactions": Int(2, 6),
        "num_gaussians": Categorical((25, 50, 100)),
        "cutoff": Float(3.5, 6.0),
        "lr_max": Float(5e-4, 1e-2, log=True),
    },
    derive=_derive,
    description="SchNet width, interactions, Gaussians, cutoff, peak LR",
)

# Kept for callers of the earlier function form: ``search_space(trial)`` gives model overrides.
search_space = SEARCH_SPACE
