"""``mlffbench tasks`` (the registered tasks) and ``mlffbench task NAME RUN_DIR...`` (run one
on the models of one or more run directories). The work is in :mod:`mlffbench.tasks.base`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from mlffbench.cli.dataopts import data_options
from mlffbench.cli.options import data_dir_option
from mlffbench.errors import ConfigError, RunError


def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr)


@click.command("tasks")
@click.option("--options", "show_options", is_flag=True, help="Also list each task's options.")
def tasks(show_options: bool) -> None:
    """Registered benchmark tasks (`mlffbench task NAME RUN_DIR` runs one)."""
    from rich.table import Table

    from mlffbench.plugin.manager import get_registry

    registry = get_registry()
    table = Table(title="tasks")
    for col in ("name", "plugin", "description") + (("options",) if show_options else ()):
        table.add_column(col)
    for name, spec in sorted(registry.tasks.items()):
        row = [name, registry.provider[("tasks", name)], spec.description]
        if show_options:
            row.append(", ".join(f"{o.name}={o.default}" for o in spec.options))
        table.add_row(*row)
    _console().print(table)


def _options(items: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--option '{item}' is not of the form name=value")
        out[key.strip().replace("-", "_")] = value
    return out


@click.command("task")
@click.argument("name")
@click.argument("run_dirs", nargs=-1, required=True, metavar="RUN_DIR...")
@click.option(
    "--option", "-o", "items", multiple=True, help="Task option name=value (repeatable; see `tasks --options`)."
)
@click.option("--dtype", type=click.Choice(["float32", "float64"]), help="Precision (default: the run's).")
@click.option("--checkpoint", type=click.Choice(["best", "last"]), default="best", show_default=True)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder (default: RUN_DIR/tasks/NAME; with several runs: OUT/RUN_NAME).",
)
@data_dir_option
@click.option("--no-tracking", is_flag=True, help="Do not log the result to the run's MLflow run.")
@click.option(
    "--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), help="Also write the results ('-': print)."
)
@data_options
def task(name, run_dirs, items, dtype, checkpoint, out, data_dir, no_tracking, json_path, data) -> None:
    """Run task NAME on the model of each RUN_DIR; writes RUN_DIR/tasks/NAME/result.json (and
    plots) and logs the figures to the run's MLflow run. Exits 1 when a task reports a failure."""
    from mlffbench.data.user import command_request
    from mlffbench.plugin.manager import get_registry
    from mlffbench.runs.directory import write_json
    from mlffbench.runs.trained import TrainedModel
    from mlffbench.tasks.base import run_task

    spec = get_registry().task(name)
    spec.resolve(_options(items))  # every option checked before any model loads
    dirs = []
    for d in run_dirs:
        path = Path(d)
        if not (path / "config.json").is_file():
            raise RunError(f"'{path}' is not a run directory (no config.json)")
        dirs.append(path)
    err = _console(stderr=True)
    results = []
    for path in dirs:
        model = TrainedModel.from_run(path, checkpoint=checkpoint, dtype=dtype or spec.dtype)
        folder = None if out is None else (Path(out) if len(dirs) == 1 else Path(out) / path.name)
        err.print(f"task {name} on {model.spec.name} ({path})", highlight=False)
        with command_request(data):
            result = run_task(
                spec,
                model,
                _options(items),
                out_dir=folder,
                data_dir=data_dir,
                tracking=not no_tracking,
                log=lambda text: err.print(text, highlight=False),
            )
        results.append((path, result, folder or path / "tasks" / name))
    if json_path is not None and str(json_path) == "-":
        click.echo(json.dumps([{"run_dir": str(p), **r.to_dict()} for p, r, _ in results], indent=2))
    else:
        render(name, results, _console())
        if json_path is not None:
            write_json(json_path, [{"run_dir": str(p), **r.to_dict()} for p, r, _ in results])
    if not all(r.ok for _, r, _ in results):
        sys.exit(1)


def render(name: str, results, console) -> None:
    from rich.table import Table

    table = Table(title=f"task {name}")
    table.add_column("figure")
    table.add_column("unit")
    for path, r, _ in results:
        table.add_column(f"{r.model}\n{Path(path).name}", justify="right")
    names = list(dict.fromkeys(k for _, r, _ in results for k in r.figures))
    for key in names:
        unit = next((r.figures[key].unit for _, r, _ in results if key in r.figures), "")
        table.add_row(key, unit, *(r.figures[key].text() if key in r.figures else "—" for _, r, _ in results))
    console.print(table)
    for _, r, where in results:
        for t in r.tables.values():
            if len(t.rows) <= 20 and t.name != "energy_volume":
                sub = Table(title=f"{r.model}: {t.name}")
                for col in t.columns:
                    sub.add_column(str(col))
                for row in t.rows:
                    sub.add_row(*(str(v) for v in row))
                console.print(sub)
        files = ", ".join(r.plots.values())
        console.print(
            f"{r.model}: {r.note}; result: {where / 'result.json'}" + (f"; plots: {files}" if files else ""),
            highlight=False,
            soft_wrap=True,
        )
