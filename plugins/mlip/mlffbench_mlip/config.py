"""Configurations of the mlip models (MACE, NequIP, ViSNet in JAX): defaults, dataset
presets and the Optuna search spaces.

Each config names the mlip hyperparameters it exposes with mlip's own defaults, except where a
comment says otherwise (smaller, CPU-sized). Two settings that mlip takes from its dataset
statistics are config options here, so that a restored model is built exactly as trained:
``cutoff`` (mlip's ``graph_cutoff_angstrom``) and ``avg_num_neighbors`` (mlip's message
normalisation; its ``avg_r_min`` radial prefactor is off, as mlip does when it is not given).
mlip's own atomic energies and energy scaling are off (identity): mlffbench adds its per-species
reference energies. How the modules are fed: docs/models/mlip.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mlffbench.plugin.config import Flag, Integer, InvalidOption, Length, ModelConfig, OneOf, PositiveInts, option
from mlffbench.plugin.search_space import Categorical, Float, Int, SearchSpace

DTYPES = ("float32", "float64")
ENVELOPES = ("polynomial", "soft")  # mlip's RadialEnvelope POLYNOMIAL (p = 5) / SOFT
ACTIVATIONS = ("silu", "tanh", "elu", "relu", "sigmoid", "swish")
RADIAL_BASES = ("expnorm", "gauss", "bessel")
VECNORMS = ("none", "max_min", "rms")


@dataclass(frozen=True)
class PositiveNumber:
    """A positive finite number (not a bool), stored as a float."""

    def __call__(self, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise InvalidOption(f"must be a positive number, got {value!r}")
        return float(value)


@dataclass(frozen=True)
class IrrepsString:
    """An e3nn irreps string such as ``"32x0e + 32x1o"`` (checked for its form only)."""

    def __call__(self, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise InvalidOption(f"must be an irreps string such as '32x0e + 16x1o', got {value!r}")
        for term in value.split("+"):
            mul, _, ir = term.strip().rpartition("x")
            if not (ir[:-1].isdigit() and ir[-1:] in ("e", "o") and (mul == "" or mul.isdigit())):
                raise InvalidOption(f"must be an irreps string such as '32x0e + 16x1o', got {value!r}")
        return value


# MACE-JAX: mlip's MaceConfig, with the mace-torch plugin's small MACE where the two share a
# setting (r_max 5 Å, 8 Bessel functions, polynomial envelope p = 5, max_ell 3, correlation 3,
# 2 interactions, 32 channels), so that one architecture can be compared across frameworks.
@dataclass(frozen=True)
class MaceJaxConfig(
    ModelConfig, label="mace-jax config", order=("cutoff", "num_layers", "num_channels", "l_max", "correlation")
):
    cutoff: float = option(5.0, Length())  # mlip: from the dataset (graph_cutoff_angstrom)
    num_layers: int = option(2, Integer(1))
    num_channels: int = option(32, Integer(1))  # mlip: 128 (small, as the mace-torch plugin)
    l_max: int = option(3, Integer(0, 6))
    # degree of the node features kept after the symmetric contraction; mlip: l_max (3); 1 here,
    # as mace-torch's default hidden irreps "32x0e + 32x1o" (max_L = 1), so that the two MACEs
    # are one architecture (deviation)
    node_symmetry: int = option(1, Integer(0, 6))
    correlation: int = option(3, Integer(1, 4))
    # a skip connection in the first layer; mlip: off; on here, as mace-torch's default first
    # interaction (RealAgnosticResidualInteractionBlock) has one (deviation)
    residual_connection_first_layer: bool = option(True, Flag())
    num_rbf: int = option(8, Integer(1))
    readout_hidden: int = option(16, Integer(1))  # mlip's readout_irreps ("16x0e", "0e")
    radial_mlp_hidden: tuple[int, ...] = option((64, 64, 64), PositiveInts())
    radial_envelope: str = option("polynomial", OneOf(ENVELOPES))
    activation: str = option("silu", OneOf(ACTIVATIONS))
    avg_num_neighbors: float = option(10.0, PositiveNumber())  # mlip: from the dataset
    dtype: str = option("float32", OneOf(DTYPES))

    def validate(self) -> None:
        from mlffbench.errors import ConfigError

        if self.node_symmetry > self.l_max:
            raise ConfigError(
                f"{self.label}: node_symmetry ({self.node_symmetry}) must not exceed l_max ({self.l_max})"
            )


@dataclass(frozen=True)
class NequipJaxConfig(ModelConfig, label="nequip-jax config", order=("cutoff", "num_layers", "target_irreps", "l_max")):
    cutoff: float = option(5.0, Length())  # mlip: from the dataset
    num_layers: int = option(2, Integer(1))
    # mlip: "128x0e + 128x0o + 64x1o + 64x1e + 32x2e + 32x2o" (a quarter of it, CPU-sized)
    target_irreps: str = option("32x0e + 32x0o + 16x1o + 16x1e + 8x2e + 8x2o", IrrepsString())
    l_max: int = option(2, Integer(0, 6))  # mlip: 3 (2 with the l <= 2 features above)
    num_rbf: int = option(8, Integer(1))
    radial_mlp_hidden: tuple[int, ...] = option((64, 64), PositiveInts())
    radial_envelope: str = option("polynomial", OneOf(ENVELOPES))
    avg_num_neighbors: float = option(10.0, PositiveNumber())  # mlip: from the dataset
    dtype: str = option("float32", OneOf(DTYPES))


@dataclass(frozen=True)
class VisnetJaxConfig(ModelConfig, label="visnet-jax config", order=("cutoff", "num_layers", "num_channels")):
    cutoff: float = option(5.0, Length())  # mlip: from the dataset
    num_layers: int = option(2, Integer(1))  # mlip: 4
    num_channels: int = option(64, Integer(1))  # mlip: 256
    l_max: int = option(2, Integer(1, 2))  # mlip's vector layer norm supports l_max 1 or 2 only
    num_heads: int = option(8, Integer(1))
    num_rbf: int = option(32, Integer(1))
    radial_basis: str = option("expnorm", OneOf(RADIAL_BASES))
    vecnorm_type: str = option("none", OneOf(VECNORMS))
    activation: str = option("silu", OneOf(ACTIVATIONS))
    dtype: str = option("float32", OneOf(DTYPES))

    def validate(self) -> None:
        from mlffbench.errors import ConfigError

        if self.num_channels % self.num_heads:
            raise ConfigError(
                f"{self.label}: num_channels must be a multiple of num_heads, got {self.num_channels} "
                f"and {self.num_heads}"
            )


# Training defaults (mlffbench.training.config.TrainConfig keys): mlip's documented recipe is
# Adam(W) with a warm-up / decay schedule on a weighted MSE of energies and forces; here a
# one-cycle LR around its peak 1e-2 scaled down to 5e-3 for the small models, MSE, force weight
# 1 with a small energy weight, batch 4 (CPU-sized).
TRAIN_DEFAULTS: dict[str, Any] = {
    "epochs": 100,
    "batch_size": 4,
    "eval_batch_size": 16,
    "optimizer": "adam",
    "weight_decay": 0.0,
    "lr_schedule": "one-cycle",
    "lr": (5e-4, 5e-3, 1e-5),
    "loss": "mse",
    "force_weight": 1.0,
    "energy_weight": 0.01,
}
VISNET_TRAIN_DEFAULTS: dict[str, Any] = {**TRAIN_DEFAULTS, "lr": (1e-4, 1e-3, 1e-6)}  # attention: a lower peak

# Dataset presets: the mean neighbour counts at 5 Å (EAN: 54 per atom; rMD17 molecules 8-20,
# aspirin 17) set the message normalisation; the EAN batch is smaller (225 atoms each).
EAN_TRAIN = {"batch_size": 2, "eval_batch_size": 8}
PRESETS = {
    "mace-jax": {"ean": {"model": {"avg_num_neighbors": 54.0}, "train": EAN_TRAIN}, "rmd17": {"model": {}}},
    "nequip-jax": {"ean": {"model": {"avg_num_neighbors": 54.0}, "train": EAN_TRAIN}, "rmd17": {"model": {}}},
    "visnet-jax": {"ean": {"model": {}, "train": EAN_TRAIN}, "rmd17": {"model": {}}},
}


def _lr(values: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    lr_min, lr_max, lr_fin = defaults["lr"]
    scale = float(values["lr_max"]) / lr_max
    return {"lr": (lr_min * scale, lr_max * scale, lr_fin * scale)}


def _derive_mace(values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    model = {
        "cutoff": float(values["cutoff"]),
        "num_layers": int(values["num_layers"]),
        "num_channels": int(values["num_channels"]),
        "l_max": int(values["l_max"]),
        "correlation": int(values["correlation"]),
        "num_rbf": int(values["num_rbf"]),
    }
    return model, _lr(values, TRAIN_DEFAULTS)


def _derive_nequip(values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    c = int(values["channels"])
    l_max = int(values["l_max"])
    # per degree l, the parity (-1)^l first (mlip requires the irreps sorted so)
    irreps = [f"{max(c // 2**lv, 1)}x{lv}{p}" for lv in range(l_max + 1) for p in ("eo" if lv % 2 == 0 else "oe")]
    model = {
        "cutoff": float(values["cutoff"]),
        "num_layers": int(values["num_layers"]),
        "target_irreps": " + ".join(irreps),
        "l_max": l_max,
        "num_rbf": int(values["num_rbf"]),
    }
    return model, _lr(values, TRAIN_DEFAULTS)


def _derive_visnet(values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    model = {
        "cutoff": float(values["cutoff"]),
        "num_layers": int(values["num_layers"]),
        "num_channels": int(values["num_channels"]),
        "l_max": int(values["l_max"]),
        "num_rbf": int(values["num_rbf"]),
    }
    return model, _lr(values, VISNET_TRAIN_DEFAULTS)


# MACE (Batatia et al. 2022, mlip docs): 2 interactions recommended (1-3 explored), 32-256
# channels, l_max 1-3, correlation 1-3 (3 is the paper's), 8 Bessel functions (6-10),
# cutoffs 4-6 Å.
MACE_SEARCH_SPACE = SearchSpace(
    {
        "cutoff": Float(4.0, 6.0),
        "num_layers": Int(1, 3),
        "num_channels": Categorical((16, 32, 64, 128)),
        "l_max": Int(1, 3),
        "correlation": Int(1, 3),
        "num_rbf": Int(6, 10),
        "lr_max": Float(1e-3, 2e-2, log=True),
    },
    derive=_derive_mace,
    description="MACE-JAX cutoff, interactions, channels, l_max, correlation, Bessel functions, peak LR",
)

# NequIP (Batzner et al. 2022, mlip docs): 2-5 interaction blocks, l_max 1-3, 16-128
# scalar channels (higher orders halved per degree), 8 Bessel functions, cutoffs 4-6 Å.
NEQUIP_SEARCH_SPACE = SearchSpace(
    {
        "cutoff": Float(4.0, 6.0),
        "num_layers": Int(2, 5),
        "channels": Categorical((16, 32, 64, 128)),
        "l_max": Int(1, 3),
        "num_rbf": Int(6, 10),
        "lr_max": Float(1e-3, 2e-2, log=True),
    },
    derive=_derive_nequip,
    description="NequIP-JAX cutoff, layers, channels, l_max, Bessel functions, peak LR",
)

# ViSNet (Wang et al. 2024, mlip docs): 2-9 layers (mlip's default 4), 64-256 channels,
# l_max 1-2 (what mlip supports), 16-64 radial functions, cutoffs 4-6 Å.
VISNET_SEARCH_SPACE = SearchSpace(
    {
        "cutoff": Float(4.0, 6.0),
        "num_layers": Int(2, 6),
        "num_channels": Categorical((64, 128, 256)),
        "l_max": Int(1, 2),
        "num_rbf": Categorical((16, 32, 64)),
        "lr_max": Float(1e-4, 5e-3, log=True),
    },
    derive=_derive_visnet,
    description="ViSNet-JAX cutoff, layers, channels, l_max, radial functions, peak LR",
)
