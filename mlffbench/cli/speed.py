"""The ``mlffbench bench`` and ``mlffbench compare`` commands (registered in :mod:`mlffbench.cli.app`).

The work is done in :mod:`mlffbench.speed.bench` and :mod:`mlffbench.speed.compare`; heavy imports live
inside the command bodies.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from mlffbench import settings
from mlffbench.cli.dataopts import data_options
from mlffbench.cli.options import (
    count_option,
    data_dir_option,
    dataset_option,
    json_option,
    runs_dir_option,
    tracking_options,
)
from mlffbench.cli.process import trains_or_times
from mlffbench.errors import ConfigError

if TYPE_CHECKING:
    from mlffbench.data.user import DataRequest


def _ints(text: str, what: str) -> tuple[int, ...]:
    text = (text or "").strip()
    if text.lower() in ("", "none", "0"):
        return ()
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"{what} must be comma-separated positive integers, got '{text}'") from None
    if any(v < 1 for v in values):
        raise ConfigError(f"{what} must be comma-separated positive integers, got '{text}'")
    return values


def _params(items, what):
    from mlffbench.cli.app import _key_values

    return _key_values(tuple(items), what)


def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr)


@click.command()
@click.argument("model", required=False)
@dataset_option
@click.option(
    "--run",
    "run_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Time the trained model of this run directory instead.",
)
@click.option("--param", "-p", "params", multiple=True, help="Model option name=value (repeatable).")
@click.option("--train", "-t", "train_items", multiple=True, help="Training option name=value (repeatable).")
@click.option("--batch-size", type=int, help="Training batch size (default: the model's).")
@click.option("--dtype", type=click.Choice(["float32", "float64"]), help="Floating-point precision.")
@click.option("--max-configs", type=int, help="Use only the first N configurations of the dataset.")
@click.option(
    "--init-from",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Parameters from these weights (a released archive).",
)
@data_dir_option
@count_option("--repeats", 7, "Timed calls per workload (median and spread over them).")
@count_option("--warmup", 1, "Warm-up calls per workload (timed apart; they hold the compilation).")
@count_option("--train-steps", 4, "Optimizer steps per timed training call.")
@click.option(
    "--infer-batch",
    type=click.IntRange(0),
    default=0,
    help="The larger inference batch (default: the evaluation batch size).",
)
@click.option(
    "--sweep", default="1,2,3", show_default=True, help="Supercell sizes n (n×n×n) of the size sweep; 'none' skips it."
)
@count_option("--sweep-repeats", 3, "Timed calls per supercell size.")
@json_option()
@data_options
@trains_or_times
def bench(
    model,
    dataset,
    run_dir,
    params,
    train_items,
    batch_size,
    dtype,
    max_configs,
    init_from,
    data_dir,
    repeats,
    warmup,
    train_steps,
    infer_batch,
    sweep,
    sweep_repeats,
    json_path,
    data: DataRequest,
) -> None:
    """Training and inference speed of MODEL: compilation apart, synchronised clocks, median and IQR."""
    from mlffbench.data.user import command_request
    from mlffbench.runs.directory import write_json
    from mlffbench.speed.bench import BenchOptions
    from mlffbench.speed.bench import bench as run_bench
    from mlffbench.speed.bench import render as render_bench

    train_params = _params(train_items, "--train")
    for key, value in (("batch_size", batch_size), ("dtype", dtype), ("max_configs", max_configs)):
        if value is not None:
            train_params[key] = value
    if run_dir is None and model is None:
        raise ConfigError("bench needs MODEL, or --run DIR (see `mlffbench models`)")
    if run_dir is None and dataset is None:
        dataset = settings.get("dataset")
    options = BenchOptions(
        model=model or "",
        dataset=dataset or "",
        model_params=_params(params, "--param"),
        train_params=train_params,
        data_dir=data_dir,
        init_from=init_from,
        run_dir=run_dir,
        repeats=repeats,
        warmup=warmup,
        train_steps=train_steps,
        infer_batch=infer_batch,
        sweep=_ints(sweep, "--sweep"),
        sweep_repeats=sweep_repeats,
    )
    err = _console(stderr=True)
    with command_request(data):
        result = run_bench(options, log=lambda text: err.print(text, highlight=False))
    render_bench(result, _console())
    if json_path:
        write_json(json_path, result)
        _console().print(f"numbers: {json_path}", highlight=False)


def _model_params(items) -> dict[str, dict]:
    """``-p model:name=value`` for one model, ``-p name=value`` for all of them."""
    out: dict[str, dict] = {}
    for item in items:
        key, sep, value = item.partition("=")
        model, colon, name = key.partition(":")
        target, key = (model.strip(), name) if colon else ("*", key)
        out.setdefault(target, {}).update(_params((f"{key}{sep}{value}",), "--param"))
    return out


@click.command()
@click.argument("models", nargs=-1)
@dataset_option
@click.option(
    "--epochs", type=int, help="Training budget of every model in epochs (default: the --budget time instead)."
)
@click.option(
    "--budget",
    "budget_s",
    type=float,
    help="Without --epochs: seconds of training steps (compilation and validation excluded) for every model and seed (default: 180).",
)
@count_option("--seeds", 1, "Training seeds 0..N-1 per model (initialisation and batch order; one split).")
@click.option("--split-seed", type=int, default=0, show_default=True, help="Seed of the one split all runs share.")
@click.option(
    "--param",
    "-p",
    "params",
    multiple=True,
    help="Model option: MODEL:name=value for one model, name=value for all (repeatable).",
)
@click.option(
    "--train", "-t", "train_items", multiple=True, help="Training option name=value for every model (repeatable)."
)
@click.option("--max-configs", type=int, help="Use only the first N configurations (quick comparisons).")
@click.option(
    "--runs",
    "run_dirs",
    multiple=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Compare these finished run directories instead of training: --runs DIR DIR ...",
)
@click.option("--no-reuse", is_flag=True, help="Train afresh even where a matching finished run exists.")
@click.option(
    "--target",
    type=float,
    help="Target validation force MAE in meV/Å for the time-to-target (default: 1.1 × the worst final).",
)
@count_option("--repeats", 5, "Timed calls per model and workload.")
@count_option("--train-steps", 2, "Optimizer steps per timed training call.")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the report and plots (default: RUNS_DIR/compare-DATASET-TIME).",
)
@data_dir_option
@runs_dir_option("Where run directories are found and go (default: runs; see `mlffbench config`).")
@tracking_options
@click.option("--no-progress", is_flag=True, help="No progress bars.")
@click.option(
    "--task",
    "task_names",
    multiple=True,
    help="Run this task (see `mlffbench tasks`) on each model first; results kept in the runs are shown anyway.",
)
@click.option("--task-option", "task_items", multiple=True, help="TASK:name=value for a --task (repeatable).")
@json_option()
@data_options
@trains_or_times
def compare(
    models,
    dataset,
    epochs,
    budget_s,
    seeds,
    split_seed,
    params,
    train_items,
    max_configs,
    run_dirs,
    no_reuse,
    target,
    repeats,
    train_steps,
    out_dir,
    data_dir,
    runs_dir,
    tracking_uri,
    no_tracking,
    no_progress,
    task_names,
    task_items,
    json_path,
    data: DataRequest,
) -> None:
    """Train (or reuse) MODELS on one split and compare accuracy and speed side by side."""
    from mlffbench.data.user import command_request
    from mlffbench.runs.directory import write_json
    from mlffbench.speed.compare import CompareOptions
    from mlffbench.speed.compare import compare as run_compare
    from mlffbench.speed.report import render as render_compare

    if run_dirs and models:  # `--runs A B C`: the directories after the first arrive as MODELS
        if not all((Path(m) / "config.json").is_file() for m in models):
            raise ConfigError("give either MODELS (to train or reuse runs) or --runs DIR ..., not both")
        run_dirs, models = (*run_dirs, *(Path(m) for m in models)), ()
    train_params = _params(train_items, "--train")
    if max_configs is not None:
        train_params["max_configs"] = max_configs
    for key in ("epochs", "seed", "split_seed"):
        if key in train_params:
            raise ConfigError(f"set {key} with --{key.replace('_', '-')}{'s' if key == 'seed' else ''}, not --train")
    if target is not None and not target > 0:
        raise ConfigError(f"--target must be a positive force MAE in meV/Å, got {target}")
    from mlffbench.plugin.manager import get_registry

    for name in task_names:
        get_registry().task(name)  # an unknown task stops here, before anything trains
    task_options: dict[str, dict[str, str]] = {}
    for item in task_items:
        key, sep, value = item.partition("=")
        task_name, colon, option = key.partition(":")
        if not (sep and colon and option) or task_name not in task_names:
            raise ConfigError(f"--task-option '{item}' must be TASK:name=value for a TASK given with --task")
        task_options.setdefault(task_name, {})[option.strip()] = value
    for name, values in task_options.items():
        get_registry().task(name).resolve(values)
    options = CompareOptions(
        tasks=tuple(task_names),
        task_options=task_options,
        models=tuple(models),
        dataset=dataset or (settings.get("dataset") if not run_dirs else ""),
        epochs=epochs,
        **({"budget_s": budget_s} if budget_s is not None else {}),
        seeds=seeds,
        split_seed=split_seed,
        model_params=_model_params(params),
        train_params=train_params,
        run_dirs=tuple(run_dirs),
        reuse=not no_reuse,
        runs_dir=settings.path("runs_dir", runs_dir),
        data_dir=data_dir,
        out_dir=out_dir,
        target_force_mae=target / 1000 if target else None,
        repeats=repeats,
        train_steps=train_steps,
        tracking=not no_tracking,
        tracking_uri=tracking_uri,
        progress=not no_progress,
    )
    err = _console(stderr=True)
    with command_request(data):
        result = run_compare(options, console=err, log=lambda text: err.print(text, highlight=False))
    render_compare(result, _console())
    if json_path:
        write_json(json_path, result)
        _console().print(f"numbers: {json_path}", highlight=False)
