"""The task contract: what a benchmark task is, what it returns, and how its result is kept.

A task is registered through the hook ``mlffbench_tasks(register)`` as a :class:`TaskSpec`:
a name, a description, the options it takes (:class:`TaskOption`) and ``run(model, options)``,
where ``model`` is a :class:`mlffbench.runs.trained.TrainedModel` (or anything offering the
same ``calculator()``/``predictor()``, see :func:`calculator_of`) and ``options`` a dict of the
declared options' values plus two the runner always sets: ``out_dir`` (the folder the result
goes to; a task may write its own files there) and ``data_dir`` (where the model's dataset
files are, or None). ``run`` returns a :class:`TaskResult`: figures (named numbers with
units), tables, plots (PNG files in ``out_dir``) and free-form ``data``.

:func:`run_task` checks the options, runs the task and writes ``result.json`` into
``out_dir`` (by default ``RUN_DIR/tasks/NAME/``) and, for a model of a run directory with an
MLflow run, logs the figures as metrics ``task.NAME.FIGURE`` and the folder as artifacts.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlffbench.errors import ConfigError, RunError

RESULT = "result.json"
TASKS_DIR = "tasks"
OPTION_TYPES = {"int": int, "float": float, "str": str, "bool": bool, "path": Path}


@dataclass(frozen=True)
class TaskOption:
    """One option of a task: ``--option NAME=VALUE`` on the command line.

    ``type``: one of int, float, str, bool, path, or ``floats`` / ``ints`` (comma-separated)."""

    name: str
    type: str = "float"
    default: Any = None
    help: str = ""

    def parse(self, value: Any) -> Any:
        if value is None:
            return None
        if self.type in ("floats", "ints"):
            kind = float if self.type == "floats" else int
            items = value if isinstance(value, (list, tuple)) else str(value).split(",")
            try:
                return tuple(kind(v) for v in items)
            except (TypeError, ValueError):
                raise ConfigError(f"option {self.name}: expected comma-separated {self.type}, got '{value}'") from None
        if self.type == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ConfigError(f"option {self.name}: expected true or false, got '{value}'")
        if self.type == "path" and not isinstance(value, (str, Path)):
            return value  # in Python: an object the task takes as is (e.g. an ASE Atoms for `structure`)
        if self.type not in OPTION_TYPES:
            return value
        try:
            return OPTION_TYPES[self.type](value)
        except (TypeError, ValueError):
            raise ConfigError(f"option {self.name}: expected {self.type}, got '{value}'") from None


@dataclass(frozen=True)
class Figure:
    """A named number with its unit (``GPa``, ``Å³/atom``, ``THz``, ``""`` for a pure number or flag)."""

    name: str
    value: float | int | bool | str | None
    unit: str = ""
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        value = self.value
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        return {"value": value, "unit": self.unit, "description": self.description}

    def text(self, digits: int = 4) -> str:
        v = self.value
        if v is None:
            return "—"
        if isinstance(v, bool):
            return "yes" if v else "no"
        if isinstance(v, float):
            return f"{v:.{digits}g}"
        return str(v)


@dataclass
class Table:
    name: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"columns": list(self.columns), "rows": [list(r) for r in self.rows]}


@dataclass
class TaskResult:
    """What a task returns: ``figures`` (shown by ``mlffbench task`` and as columns of
    ``compare``), ``tables``, ``plots`` (name -> PNG file), ``data`` (anything JSON)."""

    task: str
    model: str = ""
    source: str = ""
    figures: dict[str, Figure] = field(default_factory=dict)
    tables: dict[str, Table] = field(default_factory=dict)
    plots: dict[str, str] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    ok: bool = True  # False: the task ran and found a failure (e.g. a failed conformance check)
    note: str = ""
    raw: Any = field(default=None, repr=False, compare=False)  # the task's own result object (in-process only)

    def figure(self, name: str, value, unit: str = "", description: str = "") -> None:
        if hasattr(value, "item"):
            value = value.item()
        self.figures[name] = Figure(name, value, unit, description)

    def table(self, name: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        self.tables[name] = Table(name, list(columns), [list(r) for r in rows])

    def value(self, name: str):
        return self.figures[name].value

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "model": self.model,
            "source": self.source,
            "ok": self.ok,
            "note": self.note,
            "written": _dt.datetime.now().isoformat(timespec="seconds"),
            "options": {k: _jsonable(v) for k, v in self.options.items()},
            "figures": {k: f.to_dict() for k, f in self.figures.items()},
            "tables": {k: t.to_dict() for k, t in self.tables.items()},
            "plots": dict(self.plots),
            "data": _jsonable(self.data),
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> TaskResult:
        out = cls(
            task=str(raw.get("task", "")),
            model=str(raw.get("model", "")),
            source=str(raw.get("source", "")),
            ok=bool(raw.get("ok", True)),
            note=str(raw.get("note", "")),
            plots=dict(raw.get("plots", {})),
            data=dict(raw.get("data", {})),
            options=dict(raw.get("options", {})),
        )
        for name, f in (raw.get("figures") or {}).items():
            out.figures[name] = Figure(name, f.get("value"), f.get("unit", ""), f.get("description", ""))
        for name, t in (raw.get("tables") or {}).items():
            out.tables[name] = Table(name, list(t.get("columns", [])), [list(r) for r in t.get("rows", [])])
        return out

    def write(self, out_dir: Path) -> Path:
        from mlffbench.runs.directory import write_json

        path = Path(out_dir) / RESULT
        write_json(path, self.to_dict())
        return path


def _jsonable(value: Any) -> Any:
    import numpy as np

    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


@dataclass(frozen=True)
class TaskSpec:
    """A benchmark task a plugin offers (hook ``mlffbench_tasks``)."""

    name: str
    run: Callable[[Any, dict[str, Any]], TaskResult]
    description: str = ""
    options: tuple[TaskOption, ...] = ()
    needs_run: bool = False  # True: only on a model of a run directory
    dtype: str | None = None  # the precision `mlffbench task` loads a run's model in (None: the run's)

    def option(self, name: str) -> TaskOption:
        for o in self.options:
            if o.name == name:
                return o
        known = ", ".join(o.name for o in self.options) or "none"
        raise ConfigError(f"task '{self.name}' has no option '{name}' (options: {known})")

    def resolve(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """The declared options' values: ``given`` (parsed) over the defaults; unknown names refused."""
        out = {o.name: o.default for o in self.options}
        for key, value in given.items():
            key = key.replace("-", "_")
            out[key] = self.option(key).parse(value)
        return out


# ------------------------------------------------------------------ helpers for tasks
def calculator_of(model: Any):
    """An ASE calculator (energy, forces, stress) of ``model``: its own ``calculator()`` where it
    has one (e.g. a test's wrapper around ASE's EMT), else :class:`mlffbench.ase.MlffbenchCalculator`
    around its predictor (analytic forces and stress of the model's backend)."""
    own = getattr(model, "calculator", None)
    if callable(own):
        return own()
    from mlffbench.ase import MlffbenchCalculator

    return MlffbenchCalculator(model.predictor())


def model_label(model: Any) -> str:
    spec = getattr(model, "spec", None)
    return str(getattr(spec, "name", None) or getattr(model, "label", "") or "model")


def save_plot(fig, out_dir: Path, name: str) -> str:
    """Save a matplotlib figure as ``out_dir/name.png`` and close it; returns the path."""
    import matplotlib.pyplot as plt

    path = Path(out_dir) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def default_out_dir(model: Any, task: str) -> Path:
    run_dir = getattr(model, "run_dir", None)
    if run_dir is None:
        raise ConfigError(f"task '{task}': the model has no run directory; give an output folder (--out)")
    return Path(run_dir) / TASKS_DIR / task


def run_task(
    spec: TaskSpec,
    model: Any,
    options: Mapping[str, Any] | None = None,
    out_dir: Path | None = None,
    data_dir: Path | None = None,
    tracking: bool = True,
    log: Callable[[str], None] | None = None,
) -> TaskResult:
    """Run ``spec`` on ``model`` with ``options`` (names -> raw or parsed values); write
    ``result.json`` into ``out_dir`` (default ``RUN_DIR/tasks/NAME``) and log it to the run's
    MLflow run (``tracking``)."""
    if spec.needs_run and getattr(model, "run_dir", None) is None:
        raise ConfigError(f"task '{spec.name}' needs the model of a run directory")
    values = spec.resolve(options or {})
    out = Path(out_dir) if out_dir is not None else default_out_dir(model, spec.name)
    out.mkdir(parents=True, exist_ok=True)
    result = spec.run(model, {**values, "out_dir": out, "data_dir": data_dir})
    if not isinstance(result, TaskResult):
        raise RunError(f"task '{spec.name}' returned {type(result).__name__}, not a TaskResult")
    result.task = spec.name
    result.model = result.model or model_label(model)
    result.source = result.source or str(getattr(model, "source", "") or "")
    result.options = values
    result.write(out)
    if tracking and getattr(model, "run_dir", None) is not None:
        log_to_mlflow(result, Path(model.run_dir), out, log)
    return result


def log_to_mlflow(result: TaskResult, run_dir: Path, out_dir: Path, log=None) -> None:
    """Figures as metrics ``task.NAME.FIGURE`` and the task's folder as artifacts
    ``tasks/NAME`` of the run's own MLflow run (where config.json names one)."""
    from mlffbench.runs import directory as runs

    config = runs.read_json(run_dir / runs.CONFIG)
    run_id, uri = config.get("mlflow_run_id"), config.get("tracking_uri")
    if not run_id or not uri:
        return
    try:
        import logging

        import mlflow

        for name in ("mlflow", "alembic"):
            logging.getLogger(name).setLevel(logging.WARNING)
        client = mlflow.MlflowClient(uri)
        for name, f in result.figures.items():
            v = f.value
            if isinstance(v, bool):
                v = float(v)
            if isinstance(v, (int, float)) and math.isfinite(float(v)):
                client.log_metric(run_id, f"task.{result.task}.{name}", float(v))
        client.set_tag(run_id, f"mlffbench.task.{result.task}", "ok" if result.ok else "failed")
        client.log_artifacts(run_id, str(out_dir), artifact_path=f"{TASKS_DIR}/{result.task}")
    except Exception as exc:  # noqa: BLE001 - an unreachable store must not lose the result on disk
        if log is not None:
            log(f"warning: task result not logged to MLflow ({type(exc).__name__}: {exc})".splitlines()[0])


def read_results(run_dir: Path) -> dict[str, TaskResult]:
    """The task results kept in a run directory (``tasks/*/result.json``), by task name."""
    import json

    out: dict[str, TaskResult] = {}
    folder = Path(run_dir) / TASKS_DIR
    if not folder.is_dir():
        return out
    for path in sorted(folder.glob(f"*/{RESULT}")):
        with contextlib.suppress(OSError, json.JSONDecodeError, AttributeError, TypeError):
            result = TaskResult.from_dict(json.loads(path.read_text()))
            out[result.task or path.parent.name] = result
    return out
