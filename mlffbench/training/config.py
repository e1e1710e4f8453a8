"""The training configuration shared by every backend."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from mlffbench.errors import ConfigError

OPTIMIZERS = ("yogi", "adam", "adamw")
LOSSES = ("log-cosh", "mse")
SCHEDULES = ("one-cycle-epoch", "one-cycle", "constant")


@dataclass(frozen=True)
class TrainConfig:
    """How to train. Loss semantics follow docs/models/training.md §1: ``log_cosh_p`` is the inverse scale.

    The loss of one configuration is ``force_weight · mean over its 3N force components of
    ℓ(ΔF) + energy_weight · ℓ_E(ΔE / N)``
    (+ ``stress_weight`` · the mean over the 9 stress components of ℓ_E(Δσ · V / N), the virial
    per atom in eV, for periodic configurations that have a reference stress); the batch loss
    is the mean over configurations.
    """

    epochs: int = 100
    batch_size: int = 8
    # Configurations per gradient pass (JAX backend; the PyTorch backend always takes the
    # whole batch): a batch is split into parts of this many configurations whose gradients
    # are summed before the one optimizer update, so the update is the batch's (to rounding)
    # and only the working set shrinks: on a CPU, EAN batches of 8 train 15-19 % faster in
    # passes of 1 or 2 (the (E, 48) arrays of a pass then fit the caches). 0 = the whole
    # batch in one pass (right for a GPU).
    micro_batch_size: int = 0
    eval_batch_size: int = 16
    optimizer: str = "yogi"
    weight_decay: float = 0.0
    lr_schedule: str = "one-cycle-epoch"
    lr: tuple[float, float, float] = (5e-4, 3e-3, 5e-6)
    loss: str = "log-cosh"
    log_cosh_p: float = 10.0
    energy_log_cosh_p: float = 50.0
    force_weight: float = 1.0
    energy_weight: float = 0.0
    stress_weight: float = 0.0  # > 0 needs a dataset with stress in a declared unit
    seed: int = 0
    # Scale the model's energies at initialisation so that its initial forces have the
    # training set's force RMS (a constant, not trained; off = the model as published).
    calibrate_output: bool = False
    patience: int = 0  # epochs without a better validation error before stopping; 0 = never
    # Budget in seconds of training steps (compilation and validation excluded, as the
    # recorded train_s), checked before every step; 0 = none. With epochs = 0: train until spent.
    max_time_s: float = 0.0
    dtype: str = "float32"
    split_policy: str = ""  # empty: the dataset card's default
    split_fractions: tuple[float, ...] = ()  # empty: the dataset card's default
    split_seed: int = 0
    holdout: tuple[str, ...] = ()
    max_configs: int = 0  # use only the first N configurations of the dataset (0 = all)

    def __post_init__(self) -> None:
        def need(cond: bool, message: str) -> None:
            if not cond:
                raise ConfigError(message)

        need(self.epochs >= 0, f"epochs must be >= 0, got {self.epochs}")
        need(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        need(
            self.micro_batch_size >= 0, f"micro_batch_size must be >= 0 (0 = whole batch), got {self.micro_batch_size}"
        )
        need(self.eval_batch_size >= 1, f"eval_batch_size must be >= 1, got {self.eval_batch_size}")
        need(self.optimizer in OPTIMIZERS, f"unknown optimizer '{self.optimizer}' (known: {', '.join(OPTIMIZERS)})")
        need(self.loss in LOSSES, f"unknown loss '{self.loss}' (known: {', '.join(LOSSES)})")
        need(self.lr_schedule in SCHEDULES, f"unknown lr schedule '{self.lr_schedule}' (known: {', '.join(SCHEDULES)})")
        need(
            len(self.lr) == 3 and all(v > 0 for v in self.lr),
            f"lr must be three positive numbers (min, max, final), got {self.lr}",
        )
        need(self.log_cosh_p > 0 and self.energy_log_cosh_p > 0, "log-cosh parameters must be > 0")
        need(
            self.force_weight >= 0 and self.energy_weight >= 0 and self.stress_weight >= 0, "loss weights must be >= 0"
        )
        need(
            self.force_weight + self.energy_weight + self.stress_weight > 0,
            "at least one of force_weight, energy_weight and stress_weight must be > 0",
        )
        need(self.dtype in ("float32", "float64"), f"dtype must be float32 or float64, got '{self.dtype}'")
        need(self.weight_decay >= 0, "weight_decay must be >= 0")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def from_dict(cls: type, values: dict[str, Any], what: str) -> Any:
    """Build a frozen config dataclass from a dict, naming unknown keys in the error."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"unknown {what} option(s): {', '.join(unknown)} (known: {', '.join(fields)})")
    coerced = {}
    for key, value in values.items():
        default = getattr(cls(), key) if _has_defaults(cls) else None
        coerced[key] = tuple(value) if isinstance(default, tuple) and isinstance(value, list) else value
    return cls(**coerced)


def _has_defaults(cls: type) -> bool:
    return all(
        f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        for f in dataclasses.fields(cls)
    )


def parse_value(text: str) -> Any:
    """Parse a command-line ``key=value`` value: JSON when it parses, else the plain string."""
    import json

    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text
