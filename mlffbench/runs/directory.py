"""Run directories: config, split, statistics, metrics, history and checkpoints of one run."""

from __future__ import annotations

import datetime as _dt
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlffbench.data.splits import Split
from mlffbench.data.stats import DatasetStats
from mlffbench.errors import RunError
from mlffbench.training.config import TrainConfig, from_dict
from mlffbench.training.loop import BEST, LAST

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


@dataclass(frozen=True)
class RunRecord:
    """The files of a run directory, read and typed: ``config.json`` (model, dataset, its card,
    model and training configuration, imported weights, data directory, the raw record),
    ``split.json``, ``stats.json`` and, where the run got that far, ``metrics.json`` and
    ``history.json``. What :meth:`mlffbench.runs.trained.TrainedModel.from_run` restores a model from."""

    run_dir: Path
    model: str
    dataset: str
    model_config: dict[str, Any]
    train: TrainConfig
    stats: DatasetStats
    split: Split
    init_from: Path | None
    data_dir: Path | None
    config: dict[str, Any]
    metrics: dict[str, Any] | None = None
    history: list[dict[str, Any]] | None = None

    @classmethod
    def read(cls, run_dir: Path) -> RunRecord:
        """The record of ``run_dir`` (RunError naming what is missing or unreadable)."""

        run_dir = existing_run_dir(run_dir)
        config = read_json(run_dir / CONFIG)
        try:
            model, train = str(config["model"]), from_dict(TrainConfig, config["train"], "training")
            model_config = dict(config["model_config"])
        except KeyError as exc:
            raise RunError(f"'{run_dir / CONFIG}' lacks the field {exc}") from None
        return cls(
            run_dir=run_dir,
            model=model,
            dataset=str(config.get("dataset", "")),
            model_config=model_config,
            train=train,
            stats=DatasetStats.from_dict(read_json(run_dir / STATS)),
            split=Split.load(run_dir / SPLIT),
            init_from=Path(config["init_from"]) if config.get("init_from") else None,
            data_dir=Path(config["data_dir"]) if config.get("data_dir") else None,
            config=config,
            metrics=read_json(run_dir / METRICS) if (run_dir / METRICS).is_file() else None,
            history=read_json(run_dir / HISTORY) if (run_dir / HISTORY).is_file() else None,
        )

    def checkpoint(self, which: str = "best") -> Path:
        """The path of the ``best`` or ``last`` checkpoint (it may not exist)."""

        return self.run_dir / CHECKPOINTS / (BEST if which == "best" else LAST)
