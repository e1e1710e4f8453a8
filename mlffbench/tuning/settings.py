"""What a study tunes, stored in the study (user attribute ``mlffbench``) so that a second
worker, or a resumed one, runs exactly the same trials.

Values given on a worker's command line that differ from the stored ones are an error (a
study whose budget or fixed values change half-way compares unlike trials).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from mlffbench.errors import ConfigError

OBJECTIVES = ("accuracy", "speed")
# A new study given neither --epochs nor --trial-timeout trains each trial for this many
# seconds of training steps (compilation and validation excluded). With JAT's compilation
# and evaluation (~20 s a trial on a 2-core CPU), `tune jat --trials 100` on EAN takes at
# most about 100 x 40 s (67 min), less with the pruner.
DEFAULT_TRIAL_BUDGET_S = 20.0
TRIAL_OVERHEAD_S = 20.0  # compilation and evaluation of a trial, for the estimate said at the start
PRUNERS = ("median", "hyperband", "none")
ATTR = "mlffbench"


@dataclass(frozen=True)
class TuneSettings:
    """The study-wide settings (``None`` / empty where the user did not give a value)."""

    model: str
    dataset: str
    objectives: tuple[str, ...] = ("accuracy",)
    epochs: int | None = None  # per trial; None: the plugin's / preset's default
    trial_timeout: float = 0.0  # per-trial training budget in seconds (0 = none)
    max_configs: int = 0  # use only the first N configurations (cheap trials)
    reports_per_epoch: int = 1  # validation evaluations reported to the pruner per epoch
    pruner: str = "median"
    fixed_dims: dict[str, Any] = field(default_factory=dict)  # search-space values fixed by --param
    fixed_model: dict[str, Any] = field(default_factory=dict)  # model options fixed by --param
    fixed_train: dict[str, Any] = field(default_factory=dict)  # training options fixed by --train

    def __post_init__(self) -> None:
        objectives = tuple(self.objectives)
        if not objectives or len(set(objectives)) != len(objectives) or set(objectives) - set(OBJECTIVES):
            raise ConfigError(f"--objective must be accuracy or accuracy,speed, got '{','.join(objectives)}'")
        if objectives[0] != "accuracy":
            raise ConfigError("the first objective must be accuracy (e.g. --objective accuracy,speed)")
        object.__setattr__(self, "objectives", objectives)
        if self.pruner not in PRUNERS:
            raise ConfigError(f"unknown pruner '{self.pruner}' (known: {', '.join(PRUNERS)})")
        if self.epochs is not None and self.epochs < 1:
            raise ConfigError(f"--epochs must be >= 1 for tuning, got {self.epochs}")
        if self.trial_timeout < 0 or self.max_configs < 0:
            raise ConfigError("--trial-timeout and --max-configs must be >= 0")
        if self.reports_per_epoch < 1:
            raise ConfigError(f"--reports-per-epoch must be >= 1, got {self.reports_per_epoch}")

    @property
    def multi(self) -> bool:
        return len(self.objectives) > 1

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TuneSettings:
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {k: (tuple(v) if k == "objectives" else v) for k, v in values.items() if k in known}
        return cls(**kwargs)


def default_reports_per_epoch(epochs: int | None) -> int:
    """Pruning needs several reports per trial: at least ~4 (one per epoch from 4 epochs on)."""
    if epochs is None or epochs >= 4:
        return 1
    return -(-4 // epochs)


def merge(stored: TuneSettings, given: dict[str, Any], study: str) -> TuneSettings:
    """``stored`` with the command line's ``given`` values, which must agree with it."""
    current = stored.to_dict()
    for key, value in given.items():
        if value is None or key not in current:
            continue
        if _jsonable(value) != current[key]:
            raise ConfigError(
                f"study '{study}' was created with {key}={current[key]!r}, not {_jsonable(value)!r}; "
                "leave the option out to resume it, or start a new study"
            )
    return stored


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value
