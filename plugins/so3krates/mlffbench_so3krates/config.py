"""SO3krates model configuration: defaults, deviations and the typed search space of ``mlffbench tune``.

The architecture (docs/models/so3krates.md): ``n_layers`` SO3krates layers on ``features``
invariant features per atom and Euclidean variables χ^l of the degrees 1..``max_degree``
(one (2l+1)-vector per degree and atom); ``n_heads`` attention heads on the invariant
features (the Euclidean variables have one head per degree); ``n_rbf`` radial basis
functions (``radial_basis``) and a smooth cutoff function (``cutoff_fn``) at ``cutoff``.

Published settings (the authors' mlff 1.0 default model, its ``config.yaml``; the model of
the Nat. Commun. 2024 paper for small molecules): 2 layers, F = 128, 4 heads, degrees
{1, 2, 3, 4}, cutoff 5 Å with the cosine cutoff, 32 PhysNet radial functions, SiLU,
identity q/k non-linearity, no residual MLPs, no layer norms, messages scaled by 1/√(F/H),
an energy head Dense(128) → identity → Dense(1) with the last kernel zero at init. All of
them are the defaults here, with these deviations:

* ``species_energy_shift = True``: mlffbench's per-species reference energies (a fit to
  the training energies) are added per atom; the authors' default subtracts nothing
  (``shift_mode: null``) and their learnable per-type shift is off. ``False`` restores it.
* ``atomic_scale_shift``: the per-species learnable scale and shift of the atomic energy
  (the authors' ``energy_learn_atomic_type_scales/shifts``, both off by default there and here).
* The species embedding has one row per species of the dataset (the authors': one per
  atomic number up to 118); a weight import takes the rows of the dataset's elements.

Training defaults (TRAIN_DEFAULTS) follow mlffbench's CPU budget rather than the paper's
(Adam 1e-3 with an exponential decay over 10^5+ steps, MSE on energies 0.01 / forces 0.99):
a one-cycle Adam schedule, batch 2, forces with a small energy weight.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mlffbench.errors import ConfigError
from mlffbench.plugin.config import Flag, Integer, Length, ModelConfig, OneOf, option
from mlffbench.plugin.search_space import Categorical, Float, Int, SearchSpace

DTYPES = ("float32", "float64")
RADIAL_BASES = ("physnet", "bernstein")
CUTOFF_FNS = ("cosine", "exponential", "phys")
ACTIVATIONS = ("identity", "silu")
MESSAGE_NORMALIZATIONS = ("sqrt_num_features", "identity")

_ORDER = (
    "n_layers",
    "features",
    "n_heads",
    "max_degree",
    "cutoff",
    "n_rbf",
    "radial_basis",
    "cutoff_fn",
    "qk_nonlinearity",
    "residual_mlp_1",
    "residual_mlp_2",
    "layer_norm_1",
    "layer_norm_2",
    "message_normalization",
    "regression_dim",
    "energy_activation",
    "output_zero_init",
    "atomic_scale_shift",
    "species_energy_shift",
    "dtype",
)


@dataclass(frozen=True)
class So3kratesConfig(ModelConfig, label="so3krates config", order=_ORDER):
    n_layers: int = option(2, Integer(1, 16))
    features: int = option(128, Integer(1))
    n_heads: int = option(4, Integer(1))
    max_degree: int = option(4, Integer(1, 8))  # Euclidean variables of the degrees 1..max_degree
    cutoff: float = option(5.0, Length())
    n_rbf: int = option(32, Integer(1))
    radial_basis: str = option("physnet", OneOf(RADIAL_BASES))
    cutoff_fn: str = option("cosine", OneOf(CUTOFF_FNS))
    qk_nonlinearity: str = option("identity", OneOf(ACTIVATIONS))
    residual_mlp_1: bool = option(False, Flag())
    residual_mlp_2: bool = option(False, Flag())
    layer_norm_1: bool = option(False, Flag())
    layer_norm_2: bool = option(False, Flag())
    message_normalization: str = option("sqrt_num_features", OneOf(MESSAGE_NORMALIZATIONS))
    regression_dim: int = option(128, Integer(0))  # 0: Dense(1) straight from the features
    energy_activation: str = option("identity", OneOf(ACTIVATIONS))
    output_zero_init: bool = option(True, Flag())
    atomic_scale_shift: bool = option(False, Flag())
    species_energy_shift: bool = option(True, Flag())
    dtype: str = option("float32", OneOf(DTYPES))

    @property
    def degrees(self) -> tuple[int, ...]:
        return tuple(range(1, self.max_degree + 1))

    def validate(self) -> None:
        if self.features % self.n_heads:
            raise ConfigError(
                f"{self.label}: features must be divisible by n_heads, got {self.features}, {self.n_heads}"
            )
        if self.features % self.max_degree:
            raise ConfigError(
                f"{self.label}: features must be divisible by the number of degrees (max_degree), "
                f"got {self.features}, {self.max_degree}"
            )
        if self.features < 4:
            raise ConfigError(
                f"{self.label}: features must be at least 4 (the spherical filter has F/4), got {self.features}"
            )


MODEL_DEFAULTS: dict[str, Any] = {}
TRAIN_DEFAULTS: dict[str, Any] = {
    "epochs": 40,
    "batch_size": 2,
    "eval_batch_size": 16,
    "optimizer": "adam",
    "weight_decay": 0.0,
    "lr_schedule": "one-cycle",
    "lr": (2e-4, 2e-3, 1e-5),
    "loss": "mse",
    "force_weight": 1.0,
    "energy_weight": 0.01,
}


def _derive(values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    lcm = {1: 4, 2: 4, 3: 12, 4: 4}[int(values["max_degree"])]
    width = int(values["width"])
    features = max(lcm, (width // lcm) * lcm)  # divisible by the 4 heads and the degrees
    model = {
        "n_layers": int(values["n_layers"]),
        "features": features,
        "n_heads": 4,
        "max_degree": int(values["max_degree"]),
        "cutoff": float(values["cutoff"]),
        "n_rbf": int(values["n_rbf"]),
        "residual_mlp_1": bool(values["residual_mlps"]),
        "residual_mlp_2": bool(values["residual_mlps"]),
        "qk_nonlinearity": values["qk_nonlinearity"],
    }
    lr_min, lr_max, lr_fin = TRAIN_DEFAULTS["lr"]
    scale = float(values["lr_max"]) / lr_max
    return model, {"lr": (lr_min * scale, lr_max * scale, lr_fin * scale)}


# The ranges the papers explored (NeurIPS 2022: 1-6 layers, F = 132, degrees up to 3;
# Nat. Commun. 2024: 1-3 layers, F = 128, degrees up to 4, cutoff 5 Å), the residual MLPs
# and q/k non-linearity of mlff 1.0, and the peak learning rate.
SEARCH_SPACE = SearchSpace(
    {
        "n_layers": Int(1, 4),
        "width": Categorical((48, 64, 96, 128)),
        "max_degree": Int(1, 4),
        "cutoff": Float(3.5, 6.0),
        "n_rbf": Categorical((16, 32)),
        "residual_mlps": Categorical((False, True)),
        "qk_nonlinearity": Categorical(ACTIVATIONS),
        "lr_max": Float(3e-4, 1e-2, log=True),
    },
    derive=_derive,
    description="SO3krates depth, width, max degree, cutoff, radial functions, residual MLPs, q/k activation, peak LR",
)
