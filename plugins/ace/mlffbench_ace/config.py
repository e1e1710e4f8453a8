"""ACE model configuration: defaults and the typed search space of ``mlffbench tune``.

The basis (docs/models/ace.md §1): ``n_radial`` radial functions (Bessel × cosine cutoff)
per neighbour species, real spherical harmonics up to ``l_max``, invariants up to
``body_order`` (2: the 2-body A_{zn00}; 3: plus the 3-body Σ_m A A; 4: plus the 4-body
Clebsch–Gordan contractions of three A's, on the first ``n_radial_high`` radial functions
and up to ``l_max_high``). ``ridge`` is the fit's relative ridge λ (the fitted kind only).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mlffbench.plugin.config import Integer, InvalidOption, Length, ModelConfig, OneOf, option
from mlffbench.plugin.search_space import Float, Int, SearchSpace

DTYPES = ("float32", "float64")


@dataclass(frozen=True)
class NonNegative:
    """A finite number ≥ 0 (an int or a float, not a bool), stored as a float."""

    def __call__(self, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise InvalidOption(f"must be a finite number >= 0, got {value!r}")
        return float(value)


_ORDER = (
    "cutoff",
    "n_radial",
    "l_max",
    "body_order",
    "n_radial_high",
    "l_max_high",
    "ridge",
    "hidden",
    "n_layers",
    "dtype",
)


@dataclass(frozen=True)
class AceConfig(ModelConfig, label="ace config", order=_ORDER):
    cutoff: float = option(5.0, Length())
    n_radial: int = option(5, Integer(1, 16))
    l_max: int = option(3, Integer(0, 6))
    body_order: int = option(4, Integer(2, 4))
    n_radial_high: int = option(2, Integer(1, 16))  # radial functions in the 4-body products
    l_max_high: int = option(2, Integer(0, 6))  # l_max of the 4-body products
    ridge: float = option(1e-2, NonNegative())  # relative ridge λ of the fit (ace-linear, docs §2)
    hidden: int = option(32, Integer(1))  # ace-gnn: node feature width
    n_layers: int = option(2, Integer(0, 8))  # ace-gnn: message-passing layers
    dtype: str = option("float64", OneOf(DTYPES))


# A fit solves in float64: the fitted model's default precision (float32 stays selectable).
LINEAR_TRAIN_DEFAULTS: dict[str, Any] = {
    "epochs": 1,  # ignored by a fit (one closed-form step); recorded as 1
    "batch_size": 1,  # configurations per block of the normal equations (J by position JVPs: cost ∝ atoms²)
    "eval_batch_size": 8,
    "loss": "mse",  # the fit minimises squared errors whatever the loss (docs/models/ace.md §2)
    "force_weight": 1.0,
    "energy_weight": 1.0,
    "dtype": "float64",
}
GNN_TRAIN_DEFAULTS: dict[str, Any] = {
    "epochs": 40,
    "batch_size": 4,
    "eval_batch_size": 8,
    "optimizer": "adam",
    "lr_schedule": "one-cycle",
    "lr": (2e-4, 2e-3, 1e-5),
    "loss": "log-cosh",
    "force_weight": 1.0,
    "energy_weight": 0.1,
    "dtype": "float32",
}
GNN_MODEL_DEFAULTS: dict[str, Any] = {"dtype": "float32", "n_radial": 4, "l_max": 2, "body_order": 3}


def _derive(values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    n_radial, l_max = int(values["n_radial"]), int(values["l_max"])
    model = {
        "n_radial": n_radial,
        "l_max": l_max,
        "body_order": int(values["body_order"]),
        "n_radial_high": min(2, n_radial),
        "l_max_high": min(2, l_max),
        "ridge": float(values["ridge"]),
        "cutoff": float(values["cutoff"]),
    }
    return model, {}


# Basis size (radial functions, l_max, body order), the cutoff and the ridge: what a linear
# ACE fit is tuned over. The 4-body part stays on 2 radial functions and l ≤ 2 (its size
# grows with the cube of the channels).
SEARCH_SPACE = SearchSpace(
    {
        "n_radial": Int(2, 8),
        "l_max": Int(0, 4),
        "body_order": Int(2, 4),
        "cutoff": Float(3.5, 6.0),
        "ridge": Float(1e-10, 1e-1, log=True),
    },
    derive=_derive,
    description="ACE radial functions, l_max, body order, cutoff, ridge",
)
