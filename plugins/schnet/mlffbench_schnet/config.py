"""SchNet model configuration: defaults, dataset presets and the Optuna search space.

The layers are torch-geometric's (``torch_geometric.nn.models.schnet``, MODELS.md §5); only
the sizes are ours. Defaults are sized for EAN (15 ion pairs, 225 atoms, periodic 12.9 Å box)
on a CPU, following the 2017 paper's choices where they fit:

``hidden_channels = num_filters = 64``, ``num_interactions = 3``
    The paper's width and depth (Schütt et al., NeurIPS 2017; the JAT thesis also compares
    against three interactions). PyG's defaults (128 / 6, the SchNetPack QM9 settings) cost
    about four times as much per edge for no gain on 60 training configurations.
``cutoff = 5.0`` Å
    The JAT / NeuralIL EAN cutoff, so all three models see the same neighbourhoods: about
    55 neighbours per atom on average (at most 74) with periodic images. The core's
    neighbour list keeps every pair below the cutoff, periodic images included; nothing is
    truncated (PyG's own graph has no PBC and keeps at most 32 neighbours).
``num_gaussians = 50``
    Gaussian centres every 0.1 Å from 0 to the cutoff, the paper's spacing (γ = 1/(2·0.1²)
    ≈ 48 Å⁻² in PyG's parametrisation).
``readout_channels = 32``
    The paper's output network Dense(32) → ssp → Dense(1) (PyG: hidden_channels // 2).
``species_energy_shift = True``
    Per-species reference energies (least squares on the training split) are added per atom,
    so the network learns only the small remainder.
``pair_symmetry = True``
    Interaction blocks run on one edge of each (i→j, j→i) pair of the full neighbour list:
    the same sums, half the filter-network work (see ``model.py``). False: PyG's
    ``InteractionBlock.forward`` on every edge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from mlffbench.errors import ConfigError
from mlffbench.search_space import Categorical, Float, Int, SearchSpace

_INT_FIELDS = ("hidden_channels", "num_filters", "num_interactions", "num_gaussians", "readout_channels")


@dataclass(frozen=True)
class SchnetConfig:
    hidden_channels: int = 64
    num_filters: int = 64
    num_interactions: int = 3
    num_gaussians: int = 50
    cutoff: float = 5.0
    readout_channels: int = 32
    species_energy_shift: bool = True
    pair_symmetry: bool = True

    def __post_init__(self) -> None:
        for name in _INT_FIELDS:
            value = getattr(self, name)
            if not (isinstance(value, int) and not isinstance(value, bool) and value > 0):
                raise ConfigError(f"schnet config: {name} must be a positive integer, got {value!r}")
        if self.num_gaussians < 2:
            raise ConfigError(f"schnet config: num_gaussians must be at least 2, got {self.num_gaussians}")
        if isinstance(self.cutoff, bool) or not isinstance(self.cutoff, (int, float)):
            raise ConfigError(f"schnet config: cutoff must be a number (Å), got {self.cutoff!r}")
        if not (math.isfinite(self.cutoff) and self.cutoff > 0):
            raise ConfigError(f"schnet config: cutoff must be a positive finite length (Å), got {self.cutoff!r}")
        object.__setattr__(self, "cutoff", float(self.cutoff))
        for name in ("species_energy_shift", "pair_symmetry"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"schnet config: {name} must be true or false, got {getattr(self, name)!r}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SchnetConfig:
        """A config from a plain mapping (e.g. parsed JSON); unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"schnet config: unknown option '{unknown[0]}' (known: {', '.join(sorted(known))})")
        return cls(**values)


# Training defaults (TrainConfig keys), chosen so that SchNet learns EAN and rMD17 molecules
# within a CPU budget of about ten minutes (measured runs: the plugin's README.md).
TRAIN = {
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


def _derive(values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
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


# Around the 2017 paper's settings (MODELS.md §5.3: 64 features, 3 interactions, Gaussians
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
