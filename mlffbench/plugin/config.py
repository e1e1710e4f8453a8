"""The base of the plugins' model configurations: frozen dataclasses validated per field.

A plugin declares each field with :func:`option` and a check (:class:`Integer`,
:class:`Length`, :class:`Flag`, :class:`OneOf`, :class:`PositiveInts`); the base runs the
checks in field order when the config is made, stores the checked value (e.g. a list as a
tuple, an int cutoff as a float) and raises :class:`mlffbench.errors.ConfigError` with one
line, ``"<label>: <field> <what is wrong>, got <value>"``::

    @dataclass(frozen=True)
    class MyConfig(ModelConfig, label="my config"):
        width: int = option(64, Integer(1))
        cutoff: float = option(5.0, Length())

:meth:`ModelConfig.from_dict` makes a config from a plain mapping and names an unknown key.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Self, TypeVar

from mlffbench.errors import ConfigError

T = TypeVar("T")

CHECK = "mlffbench.check"  # the field-metadata key of a field's check


class InvalidOption(ValueError):
    """A check's verdict on a value: the message after the field's name."""


def option(default: T, check: Callable[[Any], Any]) -> T:
    """A config field with ``default`` whose values ``check`` validates (and converts)."""
    return dataclasses.field(default=default, metadata={CHECK: check})


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class Integer:
    """An integer (not a bool) of at least ``minimum`` (and at most ``maximum``); ``at_least``:
    a further lower bound with a message of its own."""

    minimum: int = 1
    maximum: int | None = None
    at_least: int | None = None

    def __call__(self, value: Any) -> int:
        if self.maximum is not None:
            need = f"an integer from {self.minimum} to {self.maximum}"
        elif self.minimum == 1:
            need = "a positive integer"
        elif self.minimum == 0:
            need = "a non-negative integer"
        else:
            need = f"an integer of at least {self.minimum}"
        if not (_is_int(value) and value >= self.minimum and (self.maximum is None or value <= self.maximum)):
            raise InvalidOption(f"must be {need}, got {value!r}")
        if self.at_least is not None and value < self.at_least:
            raise InvalidOption(f"must be at least {self.at_least}, got {value}")
        return int(value)


@dataclass(frozen=True)
class Length:
    """A positive finite length in Å (an int or a float, not a bool), stored as a float."""

    def __call__(self, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidOption(f"must be a number (Å), got {value!r}")
        if not (math.isfinite(value) and value > 0):
            raise InvalidOption(f"must be a positive finite length (Å), got {value!r}")
        return float(value)


@dataclass(frozen=True)
class Flag:
    """``True`` or ``False`` (not 0 / 1, not a string)."""

    def __call__(self, value: Any) -> bool:
        if not isinstance(value, bool):
            raise InvalidOption(f"must be true or false, got {value!r}")
        return value


@dataclass(frozen=True)
class OneOf:
    """One of ``choices``."""

    choices: tuple[str, ...]

    def __call__(self, value: Any) -> Any:
        if value not in self.choices:
            raise InvalidOption(f"must be one of {', '.join(self.choices)}, got {value!r}")
        return value


@dataclass(frozen=True)
class PositiveInts:
    """A sequence (not a string) of positive integers, stored as a tuple. ``items``: the
    message for a non-positive or non-integer item; ``empty``: the message for an empty
    sequence (None: it may be empty). Both are formatted with ``value``."""

    items: str = "must contain positive integers, got {value!r}"
    empty: str | None = None

    def __call__(self, value: Any) -> tuple[int, ...]:
        if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
            raise InvalidOption(f"must be a sequence of positive integers, got {value!r}")
        items = tuple(value)
        if not all(_is_int(v) and v > 0 for v in items):
            raise InvalidOption(self.items.format(value=value))
        if not items and self.empty is not None:
            raise InvalidOption(self.empty.format(value=value))
        return tuple(int(v) for v in items)


class ModelConfig:
    """Base of a frozen config dataclass whose fields carry checks (:func:`option`).

    Class keywords: ``label`` (e.g. ``label="jat config"``) begins every error message;
    ``order``: field names checked first, in this order (the others follow in field order),
    so that of several bad values the same one is reported whatever the field order.
    A subclass with checks across fields overrides :meth:`validate` (called after the fields').
    """

    label: str = "model config"
    check_order: tuple[str, ...] = ()

    def __init_subclass__(cls, label: str | None = None, order: tuple[str, ...] | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if label is not None:
            cls.label = label
        if order is not None:
            cls.check_order = tuple(order)

    def __post_init__(self) -> None:
        fields = dataclasses.fields(self)  # type: ignore[arg-type]  # subclasses are dataclasses
        first = {name: i for i, name in enumerate(self.check_order)}
        for f in sorted(fields, key=lambda f: first.get(f.name, len(first))):  # stable: the rest in field order
            check = f.metadata.get(CHECK)
            if check is None:
                continue
            try:
                value = check(getattr(self, f.name))
            except InvalidOption as bad:
                raise ConfigError(f"{self.label}: {f.name} {bad}") from None
            object.__setattr__(self, f.name, value)
        self.validate()

    def validate(self) -> None:
        """Checks across fields (after every field's own); raise ConfigError."""

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Self:
        """A config from a plain mapping (e.g. parsed TOML/JSON); unknown keys are an error."""
        known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"{cls.label}: unknown option '{unknown[0]}' (known: {', '.join(sorted(known))})")
        return cls(**values)
