"""Defaults the commands take when an option is left out, and where each came from.

Sources, lowest first; a later one overrides an earlier one:

1. built in (``BUILTIN`` below: EAN, the primary benchmark of the seed thesis, and the
   folders the commands always used);
2. the user's file: ``$MLFFBENCH_CONFIG`` if set, else ``$XDG_CONFIG_HOME/mlffbench/config.toml``
   (``~/.config/mlffbench/config.toml``);
3. the project's file: ``mlffbench.toml`` in the working directory;
4. the environment (``ENV`` below);
5. the command line (the caller passes the value it was given).

A file holds a ``[defaults]`` table with any of the keys of ``BUILTIN``; relative paths in a
file are relative to the file's folder. ``mlffbench config`` shows the effective values.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlffbench.errors import ConfigError

PROJECT_FILE = "mlffbench.toml"
CONFIG_ENV = "MLFFBENCH_CONFIG"

# key -> (built-in value, what it is); "" means "derived": the tracking store and the Optuna
# storage default to SQLite files in the runs directory.
BUILTIN: dict[str, tuple[str, str]] = {
    "dataset": ("ean", "dataset when --dataset is left out"),
    "data_dir": ("~/.cache/mlffbench/data", "folder with the original dataset files"),
    "runs_dir": ("runs", "where run directories, studies and reports go"),
    "tracking_uri": ("", "MLflow tracking URI (empty: sqlite:///RUNS_DIR/mlflow.db)"),
    "storage": ("", "Optuna storage URL (empty: sqlite:///RUNS_DIR/optuna.db)"),
}
ENV: dict[str, tuple[str, ...]] = {
    "dataset": ("MLFFBENCH_DATASET",),
    "data_dir": ("MLFFBENCH_DATA_DIR",),
    "runs_dir": ("MLFFBENCH_RUNS_DIR",),
    "tracking_uri": ("MLFFBENCH_TRACKING_URI", "MLFLOW_TRACKING_URI"),
    "storage": ("MLFFBENCH_STORAGE",),
}
PATH_KEYS = ("data_dir", "runs_dir")


@dataclass(frozen=True)
class Value:
    """An effective setting and where it came from (``built-in``, a file's path, ``$VAR``, ``command line``)."""

    key: str
    value: str
    source: str


def user_file() -> Path:
    explicit = os.environ.get(CONFIG_ENV, "").strip()
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME", "").strip() or str(Path.home() / ".config")
    return Path(base).expanduser() / "mlffbench" / "config.toml"


def project_file() -> Path:
    return Path.cwd() / PROJECT_FILE


def read_file(path: Path) -> dict[str, str]:
    """The ``[defaults]`` of a settings file (paths made absolute); ConfigError naming the file."""
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror})") from None
    unknown_tables = sorted(set(data) - {"defaults"})
    if unknown_tables:
        raise ConfigError(f"{path}: unknown table [{unknown_tables[0]}] (a settings file holds [defaults])")
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        raise ConfigError(f"{path}: 'defaults' must be a table")
    out: dict[str, str] = {}
    for key, value in defaults.items():
        if key not in BUILTIN:
            raise ConfigError(f"{path}: unknown setting '{key}' (known: {', '.join(BUILTIN)})")
        if not isinstance(value, str):
            raise ConfigError(f"{path}: setting '{key}' must be a string, got {type(value).__name__}")
        if key in PATH_KEYS and value:
            p = Path(value).expanduser()
            value = str(p if p.is_absolute() else (path.parent / p).resolve())
        out[key] = value
    return out


def effective(given: dict[str, Any] | None = None) -> dict[str, Value]:
    """Every setting with its source; ``given`` holds command-line values (None: not given)."""
    values = {key: Value(key, builtin, "built-in") for key, (builtin, _) in BUILTIN.items()}
    for path in (user_file(), project_file()):
        if path.is_file():
            for key, value in read_file(path).items():
                values[key] = Value(key, value, str(path))
    for key, names in ENV.items():
        for name in names:
            raw = os.environ.get(name, "").strip()
            if raw:
                values[key] = Value(key, raw, f"${name}")
                break
    for key, value in (given or {}).items():
        if value is not None and str(value) != "":
            if key not in BUILTIN:
                raise KeyError(key)
            values[key] = Value(key, str(value), "command line")
    return values


def get(key: str, given: Any = None) -> str:
    """The effective value of one setting (``given``: the command line's, if any)."""
    return effective({key: given})[key].value


def path(key: str, given: Any = None) -> Path:
    return Path(get(key, given)).expanduser()


CACHE_DIR_ENV = "MLFFBENCH_CACHE_DIR"


def cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """mlffbench's cache folder (parsed sets, hashes, compiled programs): ``$MLFFBENCH_CACHE_DIR``
    (of ``environ``, default ``os.environ``) > ~/.cache/mlffbench/cache."""
    raw = (os.environ if environ is None else environ).get(CACHE_DIR_ENV, "").strip()
    return Path(raw).expanduser() if raw else Path.home() / ".cache" / "mlffbench" / "cache"
