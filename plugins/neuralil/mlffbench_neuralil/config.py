"""NeuralIL model configuration: defaults, dataset presets and the Optuna search space.

Defaults are the released EAN model; its switches and mlffbench's neighbour handling:
docs/models/neuralil.md §6.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mlffbench.plugin.config import Flag, Integer, Length, ModelConfig, OneOf, PositiveInts, option
from mlffbench.plugin.search_space import Categorical, Float, Int, SearchSpace

DTYPES = ("float32", "float64")
MAX_N_MAX = 12  # spherical harmonics / Bessel roots are tabulated up to this order
_ONE_WIDTH = "must hold at least one positive integer, got {value!r}"


@dataclass(frozen=True)
class NeuralilConfig(ModelConfig, label="neuralil config", order=("core_widths", "n_max", "embed_d", "cutoff")):
    n_max: int = option(4, Integer(0, MAX_N_MAX))
    cutoff: float = option(3.5, Length())
    embed_d: int = option(2, Integer(1))
    core_widths: tuple[int, ...] = option((64, 32, 16, 16, 16), PositiveInts(items=_ONE_WIDTH, empty=_ONE_WIDTH))
    morse: bool = option(True, Flag())
    species_energy_shift: bool = option(False, Flag())
    dtype: str = option("float32", OneOf(DTYPES))

    @property
    def n_coeffs(self) -> int:
        """Radial-angular coefficients per species pair: (n_max+1)(n_max+2)/2."""
        return (self.n_max + 1) * (self.n_max + 2) // 2


# The paper's EAN model (docs/models/neuralil.md §4-5); the same as the config defaults.
EAN_MODEL = {"n_max": 4, "cutoff": 3.5, "embed_d": 2, "core_widths": (64, 32, 16, 16, 16), "morse": True}

# The paper's EAN training settings (NeuralIL `main:examples/train_an_nn.py`, docs/models/training.md,
# §4.5), in mlffbench.training.config.TrainConfig keys: forces only, log-cosh with inverse
# scale p = 10 Å/eV, Adam followed by decoupled weight decay 1e-4 (the backend's "adamw"
# chain: Adam scaling, + 1e-4·θ, × the per-step LR), one-cycle LR (1e-3, 1e-2, 1e-5)
# restarted every epoch, batch 8, evaluation batch 32, 501 epochs on 667 configurations.
PAPER_EAN_TRAIN: dict[str, Any] = {
    "epochs": 501,
    "batch_size": 8,
    "eval_batch_size": 32,
    "optimizer": "adamw",
    "weight_decay": 1e-4,
    "lr_schedule": "one-cycle-epoch",
    "lr": (1e-3, 1e-2, 1e-5),
    "loss": "log-cosh",
    "log_cosh_p": 10.0,
    "force_weight": 1.0,
    "energy_weight": 0.0,
}

# Training defaults = the paper's settings. They also learn within a CPU budget on the
# 75-configuration EAN set (60 training configurations, 7 steps per epoch): with
# ``--epochs 150`` the test force MAE is 145 meV/Å (zero-force baseline 614 meV/Å on that
# test part) in about 4.5 minutes on 2 CPU cores.
EAN_TRAIN = dict(PAPER_EAN_TRAIN)

PRESETS = {"ean": {"model": EAN_MODEL, "train": EAN_TRAIN}}


def _derive(values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    model = {
        "n_max": int(values["n_max"]),
        "cutoff": float(values["cutoff"]),
        "embed_d": int(values["embed_d"]),
        "core_widths": tuple(int(w) for w in str(values["core_widths"]).split(":")),
        "morse": bool(values["morse"]),
    }
    lr_min, lr_max, lr_fin = EAN_TRAIN["lr"]
    scale = float(values["lr_max"]) / lr_max
    return model, {
        "lr": (lr_min * scale, lr_max * scale, lr_fin * scale),
        "weight_decay": float(values["weight_decay"]),
    }


# Around the paper's EAN model (docs/models/neuralil.md §4-5: n_max 4, r_c 3.5 Å, embedding 2, core
# 64:32:16:16:16, Morse on, peak LR 1e-2, decoupled weight decay 1e-4): descriptor resolution,
# cutoff, embedding width, the MLP of the paper and of the later branches (64:32:16), the Morse
# switch, the peak LR (scaling the default one-cycle triple) and the weight decay.
SEARCH_SPACE = SearchSpace(
    {
        "n_max": Int(2, 6),
        "cutoff": Float(3.0, 5.0),
        "embed_d": Categorical((1, 2, 4, 8)),
        "core_widths": Categorical(("64:32:16:16:16", "64:32:16", "128:64:32:16", "32:16:16")),
        "morse": Categorical((True, False)),
        "lr_max": Float(1e-3, 3e-2, log=True),
        "weight_decay": Float(1e-6, 1e-3, log=True),
    },
    derive=_derive,
    description="NeuralIL descriptor size, cutoff, embedding, MLP, Morse, peak LR, weight decay",
)

# Kept for callers of the earlier function form: ``search_space(trial)`` gives model overrides.
search_space = SEARCH_SPACE
