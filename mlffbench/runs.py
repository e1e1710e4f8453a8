"""Run directories: config, split, statistics, metrics, history and checkpoints of one run."""

from __future__ import annotations

import datetime as _dt
import json
import os
import secrets
from pathlib import Path
from typing import Any

from mlffbench.errors import RunError

CONFIG = "config.json"
SPLIT = "split.json"
STATS = "stats.json"
METRICS = "metrics.json"
HISTORY = "history.json"
CHECKPOINTS = "checkpoints"


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (temp file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise RunError(f"'{path}' not found")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise RunError(f"'{path}' is not valid JSON: {exc}") from None


def new_run_dir(runs_dir: Path, model: str, dataset: str) -> Path:
    """A fresh, unique run directory under ``runs_dir`` (never reuses an existing one)."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    for _ in range(100):
        path = Path(runs_dir) / f"{model}-{dataset}-{stamp}-{secrets.token_hex(2)}"
        try:
            path.mkdir(parents=True, exist_ok=False)
            return path
        except FileExistsError:
            continue
    raise RunError(f"could not create a new run directory under '{runs_dir}'")


def existing_run_dir(path: Path) -> Path:
    path = Path(path)
    if not (path / CONFIG).is_file():
        raise RunError(f"'{path}' is not a run directory (no {CONFIG})")
    return path
