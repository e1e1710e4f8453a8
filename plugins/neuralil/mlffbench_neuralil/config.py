"""NeuralIL model configuration: defaults, dataset presets and the Optuna search space.

Defaults are the EAN model of the NeuralIL paper as released (branch ``main``,
``examples/train_an_nn.py``, MODELS.md §4): spherical Bessel descriptors with n_max 4 and
r_c 3.5 Å (10 species pairs × 15 coefficients = 150 values), a 2-dimensional species
embedding, the MLP ``Core`` [64, 32, 16, 16, 16] with LayerNorm after hidden layers 2..5,
one global affine energy map, and the repulsive Morse term with its bump switch
(``NeuralILwithMorse``). Switches:

``morse``
    ``True`` (faithful): ``NeuralILwithMorse``; ``False``: the plain NeuralIL model.
``species_energy_shift``
    ``False`` (faithful): only the global affine denormaliser maps the network output to
    atomic energies. ``True`` (deviation): per-species reference energies from the training
    statistics are added per atom by the backend.

Neighbours: the original keeps only the ``max_neighbors`` nearest atoms of each centre and
silently drops the rest; here every neighbour within r_c from the core's neighbour lists
enters, so there is no ``max_neighbors`` option (for EAN at 3.5 Å the most neighbours any
atom has is 29 < 35, so the released model is unaffected).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from mlffbench.errors import ConfigError
from mlffbench.search_space import Categorical, Float, Int, SearchSpace

DTYPES = ("float32", "float64")
MAX_N_MAX = 12  # spherical harmonics / Bessel roots are tabulated up to this order


@dataclass(frozen=True)
class NeuralilConfig:
    n_max: int = 4
    cutoff: float = 3.5
    embed_d: int = 2
    core_widths: tuple[int, ...] = (64, 32, 16, 16, 16)
    morse: bool = True
    species_energy_shift: bool = False
    dtype: str = "float32"

    def __post_init__(self) -> None:
        value = self.core_widths
        if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
            raise ConfigError(f"neuralil config: core_widths must be a sequence of positive integers, got {value!r}")
        items = tuple(value)
        if not items or not all(_is_int(v) and v > 0 for v in items):
            raise ConfigError(f"neuralil config: core_widths must hold at least one positive integer, got {value!r}")
        object.__setattr__(self, "core_widths", tuple(int(v) for v in items))
        if not (_is_int(self.n_max) and 0 <= self.n_max <= MAX_N_MAX):
            raise ConfigError(f"neuralil config: n_max must be an integer from 0 to {MAX_N_MAX}, got {self.n_max!r}")
        if not (_is_int(self.embed_d) and self.embed_d > 0):
            raise ConfigError(f"neuralil config: embed_d must be a positive integer, got {self.embed_d!r}")
        if isinstance(self.cutoff, bool) or not isinstance(self.cutoff, (int, float)):
            raise ConfigError(f"neuralil config: cutoff must be a number (Å), got {self.cutoff!r}")
        if not (math.isfinite(self.cutoff) and self.cutoff > 0):
            raise ConfigError(f"neuralil config: cutoff must be a positive finite length (Å), got {self.cutoff!r}")
        object.__setattr__(self, "n_max", int(self.n_max))
        object.__setattr__(self, "embed_d", int(self.embed_d))
        object.__setattr__(self, "cutoff", float(self.cutoff))
        for name in ("morse", "species_energy_shift"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"neuralil config: {name} must be true or false, got {getattr(self, name)!r}")
        if self.dtype not in DTYPES:
            raise ConfigError(f"neuralil config: dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")

    @property
    def n_coeffs(self) -> int:
        """Radial-angular coefficients per species pair: (n_max+1)(n_max+2)/2."""
        return (self.n_max + 1) * (self.n_max + 2) // 2

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> NeuralilConfig:
        """A config from a plain mapping (e.g. parsed TOML/JSON); unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"neuralil config: unknown option '{unknown[0]}' (known: {', '.join(sorted(known))})")
        return cls(**values)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# The paper's EAN model (MODELS.md §4.4-4.5); the same as the config defaults.
EAN_MODEL = {"n_max": 4, "cutoff": 3.5, "embed_d": 2, "core_widths": (64, 32, 16, 16, 16), "morse": True}

# The paper's EAN training settings (NeuralIL `main:examples/train_an_nn.py`, MODELS.md §2,
# §4.5), in mlffbench.training.config.TrainConfig keys: forces only, log-cosh with inverse
# scale p = 10 Å/eV, Adam followed by decoupled weight decay 1e-4 (the backend's "adamw"
# chain: Adam scaling, + 1e-4·θ, × the per-step LR), one-cycle LR (1e-3, 1e-2, 1e-5)
# restarted every epoch, batch 8, evaluation batch 32, 501 epochs on 667 configurations.
PAPER_EAN_TRAIN = {
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


def _derive(values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    model = {
        "n_max": int(values["n_max"]),
        "cutoff": float(values["cutoff"]),
        "embed_d": int(values["embed_d"]),
        "core_widths": tuple(int(w) for w in str(values["core_widths"]).split(":")),
        "morse": bool(values["morse"]),
    }
    lr_min, lr_max, lr_fin = EAN_TRAIN["lr"]
    scale = float(values["lr_max"]) / lr_max
    return model, {"lr": (lr_min * scale, lr_max * scale, lr_fin * scale), "weight_decay": float(values["weight_decay"])}


# Around the paper's EAN model (MODELS.md §4.4-4.5: n_max 4, r_c 3.5 Å, embedding 2, core
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
