"""Study results: counts, the best trials (or the Pareto front), the best config as a file
``mlffbench run MODEL --config FILE`` accepts, and PNG plots (optimization history,
intermediate values, parameter importances, Pareto front)."""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from mlffbench.runs import directory as runs

if TYPE_CHECKING:
    from matplotlib.figure import Figure

OBJECTIVE_NAMES = {"accuracy": "val force MAE (eV/Å)", "speed": "inference µs/atom/step"}
# Training keys that only make trials cheap: left out of the best config (add them back with
# --max-configs / --time-budget if wanted).
BUDGET_KEYS = ("max_configs", "max_time_s")


def _trial_row(trial, settings) -> dict[str, Any]:
    return {
        "number": trial.number,
        "state": trial.state.name,
        "values": list(trial.values) if trial.values else None,
        "params": dict(trial.params),
        "duration_s": trial.duration.total_seconds() if trial.duration else None,
        "reason": trial.user_attrs.get("fail_reason") or trial.user_attrs.get("pruned_reason", ""),
        "run_dir": trial.user_attrs.get("run_dir", ""),
    }


def best_config(trial, runner) -> dict[str, Any]:
    """The trial's model and training overrides as a ``--config`` file's content."""
    values = {**runner.settings.fixed_dims, **trial.params}
    model, train = runner.configs(values)
    for key in BUDGET_KEYS:
        train.pop(key, None)
    settings = runner.settings
    objective = ", ".join(
        f"{OBJECTIVE_NAMES[o]} {v:.5g}" for o, v in zip(settings.objectives, trial.values, strict=True)
    )
    budget = f"{settings.epochs} epoch(s)" if settings.epochs else "the default epochs"
    if settings.max_configs:
        budget += f" on the first {settings.max_configs} configurations"
    return {
        "description": (
            f"best trial {trial.number} of study '{runner.study_name}' ({objective}; trained for {budget}). "
            f"Use: mlffbench run {runner.spec.name} --config FILE (add --epochs N for a longer run)"
        ),
        "dataset": settings.dataset,
        "model": runs_jsonable(model),
        "train": runs_jsonable(train),
    }


def runs_jsonable(values: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}


def summarize(study, spec, settings, runner, out_dir: Path, top: int = 10) -> dict[str, Any]:
    """Counts, best trials / Pareto front, best-config file(s) and plots under ``out_dir``."""
    import optuna

    trials = study.get_trials(deepcopy=False)
    states = [t.state for t in trials]
    TS = optuna.trial.TrialState
    summary: dict[str, Any] = {
        "model": spec.name,
        "dataset": settings.dataset,
        "objectives": list(settings.objectives),
        "n_trials": len(trials),
        "n_complete": states.count(TS.COMPLETE),
        "n_pruned": states.count(TS.PRUNED),
        "n_fail": states.count(TS.FAIL),
        "n_running": states.count(TS.RUNNING),
        "failures": [_trial_row(t, settings) for t in trials if t.state == TS.FAIL][-top:],
    }
    complete = [t for t in trials if t.state == TS.COMPLETE and t.values and all(math.isfinite(v) for v in t.values)]
    out_dir = Path(out_dir)
    if not complete:
        summary.update({"best": None, "rows": [], "best_config": None, "plots": []})
        return summary
    if settings.multi:
        front = sorted(study.best_trials, key=lambda t: t.values[0])
        rows = [_trial_row(t, settings) for t in front]
        best = front[0]
        for t in front:
            runs.write_json(out_dir / "pareto" / f"trial-{t.number}.json", best_config(t, runner))
    else:
        ranked = sorted(complete, key=lambda t: t.values[0])
        rows = [_trial_row(t, settings) for t in ranked[:top]]
        best = ranked[0]
    path = out_dir / "best-config.json"
    runs.write_json(path, best_config(best, runner))
    summary.update({"best": _trial_row(best, settings), "rows": rows, "best_config": str(path)})
    summary["plots"] = plots(study, settings, out_dir)
    runs.write_json(out_dir / "summary.json", summary)
    return summary


def plots(study, settings, out_dir: Path) -> list[str]:
    """PNG plots; a plot that cannot be drawn (e.g. importances of one trial) is skipped."""
    import matplotlib

    if "matplotlib.pyplot" not in __import__("sys").modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as ovm

    first = OBJECTIVE_NAMES[settings.objectives[0]]
    target = (lambda t: t.values[0]) if settings.multi else None
    jobs = [
        ("optimization-history.png", lambda: ovm.plot_optimization_history(study, target=target, target_name=first)),
        ("param-importances.png", lambda: ovm.plot_param_importances(study, target=target, target_name=first)),
    ]
    if settings.multi:
        names = [OBJECTIVE_NAMES[o] for o in settings.objectives]
        jobs.append(("pareto-front.png", lambda: ovm.plot_pareto_front(study, target_names=names)))
    else:
        jobs.append(("intermediate-values.png", lambda: ovm.plot_intermediate_values(study)))
    written = []
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, draw in jobs:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # experimental-API, importance-evaluator and layout notices
            try:
                axes = draw()
            except Exception:  # noqa: BLE001 - too few trials / no varying parameter
                plt.close("all")
                continue
            # optuna draws on a Figure of its own (never a SubFigure); an array of Axes has no .figure
            figure = cast("Figure", axes.figure if hasattr(axes, "figure") else axes.flat[0].figure)  # type: ignore[attr-defined]
            figure.savefig(out_dir / name, dpi=110, bbox_inches="tight")
        plt.close(figure)
        written.append(str(out_dir / name))
    return written


def render(summary: dict[str, Any], console) -> None:
    """The rich table of the best trials (or the Pareto front) and the counts."""
    from rich.table import Table

    objectives = summary["objectives"]
    multi = len(objectives) > 1
    console.print(
        f"study '{summary['study']}': {summary['n_trials']} trials — {summary['n_complete']} complete, "
        f"{summary['n_pruned']} pruned, {summary['n_fail']} failed"
        + (f", {summary['n_running']} running" if summary["n_running"] else ""),
        highlight=False,
    )
    if summary.get("stale_marked_failed"):
        console.print(f"marked failed (their worker stopped): trials {summary['stale_marked_failed']}", highlight=False)
    for row in summary["failures"]:
        console.print(
            f"[yellow]trial {row['number']} failed:[/] {row['reason'] or 'worker stopped (no heartbeat)'}",
            highlight=False,
        )
    if not summary["rows"]:
        console.print("no completed trial yet", highlight=False)
        return
    table = Table(title=f"{summary['model']} on {summary['dataset']}: " + ("Pareto front" if multi else "best trials"))
    table.add_column("trial", justify="right")
    table.add_column("val F MAE meV/Å", justify="right")
    if multi:
        table.add_column("µs/atom/step", justify="right")
    table.add_column("s", justify="right")
    table.add_column("parameters")
    for row in summary["rows"]:
        cells = [str(row["number"]), f"{1000 * row['values'][0]:.1f}"]
        if multi:
            cells.append(f"{row['values'][1]:.3g}")
        cells.append(f"{row['duration_s']:.0f}" if row["duration_s"] is not None else "")
        cells.append(" ".join(f"{k}={_short(v)}" for k, v in row["params"].items()))
        table.add_row(*cells)
    console.print(table)
    console.print(f"best config: {summary['best_config']}", highlight=False)
    for path in summary.get("plots", []):
        console.print(f"plot: {path}", highlight=False)


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
