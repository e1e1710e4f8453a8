"""Typed search spaces that model plugins offer to ``mlffbench tune``.

A :class:`SearchSpace` names its dimensions (:class:`Float`, :class:`Int`,
:class:`Categorical`) and maps one set of sampled values to overrides of the model config
and of the training config (``derive``). Dimension names are the tuner's parameter names;
they need not be config fields (``n_layers`` and ``width`` become ``layer_dims``), which is
why a space carries its own mapping. The space knows no optimisation library: any object
with Optuna's ``suggest_float / suggest_int / suggest_categorical`` methods can sample it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mlffbench.errors import ConfigError


@dataclass(frozen=True)
class Float:
    """A real number in [low, high], sampled on a log scale when ``log``."""

    low: float
    high: float
    log: bool = False

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low < self.high):
            raise ValueError(f"Float needs finite low < high, got [{self.low}, {self.high}]")
        if self.log and self.low <= 0:
            raise ValueError(f"a log-scale Float needs low > 0, got {self.low}")

    def suggest(self, trial: Any, name: str) -> float:
        return trial.suggest_float(name, self.low, self.high, log=self.log)

    def describe(self) -> str:
        return f"float [{self.low:g}, {self.high:g}]" + (" log" if self.log else "")


@dataclass(frozen=True)
class Int:
    """An integer in [low, high] (both included), with ``step`` or on a log scale."""

    low: int
    high: int
    step: int = 1
    log: bool = False

    def __post_init__(self) -> None:
        if self.low > self.high or self.step < 1:
            raise ValueError(f"Int needs low <= high and step >= 1, got [{self.low}, {self.high}] step {self.step}")

    def suggest(self, trial: Any, name: str) -> int:
        return trial.suggest_int(name, self.low, self.high, step=self.step, log=self.log)

    def describe(self) -> str:
        return (
            f"int [{self.low}, {self.high}]"
            + (f" step {self.step}" if self.step != 1 else "")
            + (" log" if self.log else "")
        )


@dataclass(frozen=True)
class Categorical:
    """One of ``choices`` (None, bool, int, float or str: values a study database can hold)."""

    choices: tuple[Any, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "choices", tuple(self.choices))
        if not self.choices:
            raise ValueError("Categorical needs at least one choice")
        for choice in self.choices:
            if choice is not None and not isinstance(choice, (bool, int, float, str)):
                raise ValueError(f"Categorical choices must be None, bool, int, float or str, got {choice!r}")

    def suggest(self, trial: Any, name: str) -> Any:
        return trial.suggest_categorical(name, list(self.choices))

    def describe(self) -> str:
        return "one of " + ", ".join(str(c) for c in self.choices)


Dimension = Float | Int | Categorical


def _identity(values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    return dict(values), {}


@dataclass(frozen=True)
class SearchSpace:
    """Named dimensions plus ``derive(values) -> (model overrides, train overrides)``.

    Calling the space with an Optuna trial samples every dimension and returns the model
    overrides (``config_class(**space(trial))`` is a valid model config).
    """

    dimensions: Mapping[str, Dimension]
    derive: Callable[[Mapping[str, Any]], tuple[dict[str, Any], dict[str, Any]]] = _identity
    description: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "dimensions", dict(self.dimensions))
        for name, dim in self.dimensions.items():
            if not isinstance(dim, (Float, Int, Categorical)):
                raise TypeError(f"search-space dimension '{name}' must be Float, Int or Categorical, got {dim!r}")

    def sample(self, trial: Any, fixed: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Values of every dimension: ``fixed`` ones as given, the others suggested by ``trial``."""
        fixed = fixed or {}
        return {
            name: fixed[name] if name in fixed else dim.suggest(trial, name) for name, dim in self.dimensions.items()
        }

    def overrides(self, values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        missing = sorted(set(self.dimensions) - set(values))
        if missing:
            raise ConfigError(f"search-space values missing: {', '.join(missing)}")
        model, train = self.derive(values)
        return dict(model), dict(train)

    def __call__(self, trial: Any) -> dict[str, Any]:
        return self.overrides(self.sample(trial))[0]
