"""The ``mlffbench`` command. Heavy imports live inside the command bodies: defining the commands
imports click and the light modules only (settings, errors, the process set-up), so that
``mlffbench --help`` and a command's ``--help`` start fast."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from mlffbench import __version__, settings
from mlffbench.cli import process
from mlffbench.cli.dataopts import data_options
from mlffbench.cli.options import data_dir_option, dataset_option, runs_dir_option, tracking_options
from mlffbench.cli.process import trains_or_times
from mlffbench.errors import ConfigError, MlffbenchError

if TYPE_CHECKING:
    from mlffbench.data.user import DataRequest
    from mlffbench.runs.experiment import RunOptions


def _console():
    from rich.console import Console

    return Console()


def _err_console():
    from rich.console import Console

    return Console(stderr=True)


def _key_values(items: tuple[str, ...], what: str) -> dict:
    from mlffbench.training.config import parse_value

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{what} '{item}' is not of the form name=value")
        out[key.strip().replace("-", "_")] = parse_value(value)
    return out


class Group(click.Group):
    """Turns user errors into one red line and a non-zero exit, never a traceback."""

    def invoke(self, ctx):
        from mlffbench.cli.signals import stop_handlers
        from mlffbench.runs.record import Terminated

        try:
            with stop_handlers():  # a batch scheduler's or `timeout`'s SIGTERM stops like Ctrl-C
                return super().invoke(ctx)
        except MlffbenchError as exc:
            from rich.markup import escape

            _err_console().print(
                f"[bold red]error:[/] {escape(str(exc))}", markup=True, highlight=False, soft_wrap=True
            )
            sys.exit(exc.exit_code)
        except Terminated:
            _err_console().print("[bold red]terminated[/] (SIGTERM)")
            sys.exit(143)
        except KeyboardInterrupt:
            _err_console().print("[bold red]interrupted[/]")
            sys.exit(130)


@click.group(cls=Group)
@click.version_option(__version__, prog_name="mlffbench")
def main() -> None:
    """Benchmark machine-learned force fields: same splits, same harness, logged runs."""


# ----------------------------------------------------------------- plugins
@main.command()
def plugins() -> None:
    """Installed plugins: name, distribution, version, hooks."""
    from rich.table import Table

    from mlffbench.plugin.manager import get_plugins

    loaded = get_plugins()
    table = Table(title="mlffbench plugins")
    for col in ("name", "distribution", "version", "hooks", "status"):
        table.add_column(col)
    for info in loaded.info:
        status = "[red]failed: " + info.error + "[/]" if info.error else ("blocked" if info.blocked else "loaded")
        table.add_row(info.name, info.distribution, info.version, ", ".join(info.hooks), status)
    console = _console()
    console.print(table)
    for problem in loaded.registry.problems:
        console.print(f"[yellow]warning:[/] {problem}", highlight=False)


@main.command()
def models() -> None:
    """Registered models."""
    from rich.table import Table

    from mlffbench.plugin.manager import get_registry

    registry = get_registry()
    table = Table(title="models")
    for col in ("name", "backend", "plugin", "presets", "description"):
        table.add_column(col)
    for name, spec in sorted(registry.models.items()):
        table.add_row(
            name, spec.backend, registry.provider[("models", name)], ", ".join(spec.presets), spec.description
        )
    _console().print(table)


@main.command("config")
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the settings to this JSON file ('-': standard output only).",
)
def config_command(json_path: Path | None) -> None:
    """Effective defaults (dataset, data, runs, tracking, storage) and where each came from."""
    values = settings.effective()
    record: dict[str, Any] = {
        "settings": {
            k: {"value": v.value, "source": v.source, "meaning": settings.BUILTIN[k][1]} for k, v in values.items()
        },
        "files": {"user": str(settings.user_file()), "project": str(settings.project_file())},
    }
    if json_path is not None and str(json_path) == "-":
        click.echo(json.dumps(record, indent=2))
        return
    from rich.table import Table

    table = Table(title="mlffbench settings (file < environment < command line)")
    for col in ("setting", "value", "from", "meaning"):
        table.add_column(col)
    for key, v in values.items():
        table.add_row(key, v.value or "—", v.source, settings.BUILTIN[key][1])
    console = _console()
    console.print(table)
    for kind, path in record["files"].items():
        state = "found" if Path(path).is_file() else "none"
        console.print(f"{kind} file: {path} ({state})", highlight=False)
    if json_path is not None:
        from mlffbench.runs.directory import write_json

        write_json(json_path, record)


# ---------------------------------------------------------------- datasets
@main.group(invoke_without_command=True, cls=click.Group)
@click.option(
    "--cards",
    "cards_dirs",
    multiple=True,
    type=click.Path(exists=True, file_okay=False),
    help="Also list the cards (*.toml) in this folder (repeatable; also $MLFFBENCH_CARDS).",
)
@click.pass_context
def datasets(ctx: click.Context, cards_dirs: tuple[str, ...]) -> None:
    """Registered datasets and your own cards; `datasets show NAME|PATH` describes one,
    `datasets card FILE...` writes a card for your files."""
    if ctx.invoked_subcommand is not None:
        return
    from rich.table import Table

    from mlffbench.data.user import user_cards
    from mlffbench.plugin.manager import get_registry

    registry = get_registry()
    table = Table(title="datasets")
    for col in ("name", "format", "family", "files", "split", "license", "plugin"):
        table.add_column(col)
    for name, card in sorted(registry.datasets.items()):
        table.add_row(
            name,
            card.format,
            card.family,
            str(len(card.files)),
            str(card.split.get("policy", "random")),
            card.license,
            registry.provider[("datasets", name)],
        )
    shadowed = []
    for card in user_cards(cards_dirs):
        if card.name in registry.datasets:
            shadowed.append(card)
            continue
        table.add_row(
            card.name,
            card.format,
            card.family,
            str(len(card.files)),
            str(card.split.get("policy", "random")),
            card.license,
            card.root,
        )
    console = _console()
    console.print(table)
    for card in shadowed:
        console.print(
            f"[yellow]warning:[/] card {card.source}: name '{card.name}' is taken by a registered dataset; ignored",
            highlight=False,
        )


@datasets.command("show")
@click.argument("name")
@click.option(
    "--data-dir", type=click.Path(path_type=Path), help="Folder with the original files (default: $MLFFBENCH_DATA_DIR)."
)
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Also write the figures to this JSON file.")
@click.option("--no-download", is_flag=True, help="Fail instead of downloading missing files.")
@data_options
def datasets_show(
    name: str, data_dir: Path | None, json_path: Path | None, no_download: bool, data: DataRequest
) -> None:
    """Configurations, atoms, elements, periodicity and energy/force statistics of NAME
    (a dataset name, a card file, a data file or a folder)."""
    from rich.table import Table

    from mlffbench.data.loading import load_dataset
    from mlffbench.data.summary import describe
    from mlffbench.data.user import resolve_card
    from mlffbench.runs.directory import write_json

    card = resolve_card(name, data)
    ds = load_dataset(card, data_dir=data_dir, download=not no_download)
    info = describe(ds, card)
    table = Table(title=f"dataset {card.name}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    for key, value in info.items():
        if isinstance(value, float):
            value = f"{value:.6g}"
        elif isinstance(value, (list, dict)):
            value = json.dumps(value)
        table.add_row(key, str(value))
    _console().print(table)
    if json_path:
        write_json(json_path, info)


@datasets.command("card")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--out", "out", type=click.Path(dir_okay=False, path_type=Path), help="Write the card here (default: print it)."
)
@data_options
def datasets_card(files: tuple[Path, ...], out: Path | None, data: DataRequest) -> None:
    """A complete dataset card for FILES (sha256, format, units, counts, elements and which of
    energy/forces/stress are present); saved beside the files, it loads as is."""
    from mlffbench.data.cards import parse_card
    from mlffbench.data.loading import load_dataset
    from mlffbench.data.user import card_for_files, card_toml, describe_card

    card = card_for_files([("", Path(f)) for f in files], units=data.units, options=data.options, format=data.format)
    ds = load_dataset(card, download=False)  # checks that the files load with these options
    counts = describe_card(card, ds)
    text = card_toml(card, {**counts, "save as": f"{card.root}/{card.name}.toml (paths are relative to the card)"})
    if out is None:
        click.echo(text, nl=False)
        return
    out = Path(out)
    if out.resolve().parent != Path(card.root):
        raise ConfigError(f"--out {out}: the card's paths are relative to {card.root}; save it there")
    if out.exists():
        raise ConfigError(f"--out {out}: file exists (not overwritten)")
    parse_card(text, str(out), root=card.root)  # loads as a user will load it
    out.write_text(text, encoding="utf-8")
    click.echo(f"wrote {out}")


# --------------------------------------------------------------- training
def _run_options(f):
    options = [
        dataset_option,
        click.option("--epochs", type=int, help="Number of epochs."),
        click.option("--batch-size", type=int, help="Configurations per training batch."),
        click.option("--lr", help="Learning rates min,max,final (one-cycle) e.g. 5e-4,3e-3,5e-6."),
        click.option("--seed", type=int, help="Seed for initialisation and batch order."),
        click.option("--split-seed", type=int, help="Seed of the split."),
        click.option(
            "--split-policy", "split_policy", help="Split policy: random, group, formula, files (default: the card's)."
        ),
        click.option("--fractions", help="Split fractions train,val,test (default 0.8,0.1,0.1)."),
        click.option("--max-configs", type=int, help="Use only the first N configurations (quick runs)."),
        click.option(
            "--time-budget",
            type=float,
            help="Stop after this many seconds of training steps (compilation and validation excluded); with --epochs 0: train until they are spent.",
        ),
        click.option("--dtype", type=click.Choice(["float32", "float64"]), help="Floating-point precision."),
        click.option("--param", "-p", "params", multiple=True, help="Model option name=value (repeatable)."),
        click.option("--train", "-t", "train_items", multiple=True, help="Training option name=value (repeatable)."),
        click.option(
            "--config",
            "config_file",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="JSON file with 'model' and 'train' sections.",
        ),
        click.option(
            "--init-from",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="Start from these weights (a released parameter archive).",
        ),
        data_dir_option,
        runs_dir_option("Where run directories go (default: runs; see `mlffbench config`)."),
        tracking_options,
        click.option("--no-progress", is_flag=True, help="No progress bar."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _collect(
    model,
    dataset,
    epochs,
    batch_size,
    lr,
    seed,
    split_seed,
    split_policy,
    fractions,
    max_configs,
    time_budget,
    dtype,
    params,
    train_items,
    config_file,
    init_from,
    data_dir,
    runs_dir,
    tracking_uri,
    no_tracking,
    no_progress,
    resume=None,
    evaluate_split="",
) -> RunOptions:
    from mlffbench.runs.experiment import RunOptions

    model_params, train_params = {}, {}
    if config_file:
        try:
            loaded = json.loads(Path(config_file).read_text())
        except json.JSONDecodeError as exc:
            raise ConfigError(f"config file '{config_file}' is not valid JSON: {exc}") from None
        if not isinstance(loaded, dict) or set(loaded) - {"model", "train", "dataset", "name", "description"}:
            raise ConfigError(f"config file '{config_file}' must hold an object with 'model' and 'train' sections")
        model_params.update(loaded.get("model", {}))
        train_params.update(loaded.get("train", {}))
        dataset = dataset or loaded.get("dataset")
    model_params.update(_key_values(params, "--param"))
    train_params.update(_key_values(train_items, "--train"))

    def floats(text, n, what):
        try:
            values = tuple(float(v) for v in text.split(","))
        except ValueError:
            values = ()
        if len(values) != n:
            raise ConfigError(f"{what} must be {n} comma-separated numbers, got '{text}'")
        return values

    for key, value in (
        ("epochs", epochs),
        ("batch_size", batch_size),
        ("seed", seed),
        ("split_seed", split_seed),
        ("split_policy", split_policy),
        ("max_configs", max_configs),
        ("max_time_s", time_budget),
        ("dtype", dtype),
    ):
        if value is not None:
            train_params[key] = value
    if lr:
        train_params["lr"] = floats(lr, 3, "--lr")
    if fractions:
        train_params["split_fractions"] = floats(fractions, 3, "--fractions")
    if not dataset and resume is None:
        dataset = settings.get("dataset")
    return RunOptions(
        model=model,
        dataset=dataset or "",
        model_params=model_params,
        train_params=train_params,
        data_dir=data_dir,
        runs_dir=settings.path("runs_dir", runs_dir),
        resume=resume,
        init_from=init_from,
        tracking_uri=tracking_uri,
        tracking=not no_tracking,
        progress=not no_progress,
        evaluate_split=evaluate_split,
    )


def _report(run_dir: Path, metrics: dict) -> None:
    from rich.table import Table

    from mlffbench.training.metrics import GPA

    table = Table(title=f"{metrics['model']} on {metrics['dataset']}")
    parts = [part for part in ("val", "test", "all") if part in metrics]
    stress = any("stress_mae" in metrics[part] for part in parts)
    columns = ("part", "E MAE meV/atom", "E RMSE meV/atom", "F MAE meV/Å", "F RMSE meV/Å") + (
        ("σ MAE GPa", "σ RMSE GPa") if stress else ()
    )
    for col in columns:
        table.add_column(col, justify="right" if col != "part" else "left")
    for part in parts:
        m = metrics[part]

        def fmt(key, scale=1000.0, digits=2, m=m):
            return f"{scale * m[key]:.{digits}f}" if key in m else "—"

        cells = [fmt("energy_mae_per_atom"), fmt("energy_rmse_per_atom"), fmt("force_mae"), fmt("force_rmse")]
        if stress:
            cells += [fmt("stress_mae", GPA, 3), fmt("stress_rmse", GPA, 3)]
        table.add_row(part, *cells)
    console = _console()
    console.print(table)
    speed = metrics.get("train_configs_per_s")
    facts = [
        f"wall {metrics['wall_s']:.1f} s",
        f"training {speed:.2f} configurations/s" if speed else "no training",
        f"compile {metrics['compile_s']:.1f} s ({metrics['compile_count']} shapes)",
        f"{metrics['n_params']:,} parameters",
        f"epochs {metrics['epochs']} (best {metrics['best_epoch']})",
    ]
    if metrics.get("zero_force_mae"):
        facts.append(f"zero-force test MAE {1000 * metrics['zero_force_mae']:.1f} meV/Å")
    if metrics.get("constant_stress_mae"):
        facts.append(f"constant-stress test MAE {GPA * metrics['constant_stress_mae']:.3f} GPa")
    if metrics.get("energies") == "offset-fitted":
        facts.append("energies: per-species offsets fitted after force-only training")
    console.print(" · ".join(facts), highlight=False)
    if metrics.get("stopped"):
        console.print(f"stopped: {metrics['stopped']}", highlight=False)
    console.print(f"run directory: {run_dir}", highlight=False)


@main.command()
@click.argument("model", required=False)
@_run_options
@data_options
@click.option(
    "--resume", type=click.Path(exists=True, file_okay=False, path_type=Path), help="Continue this run directory."
)
@trains_or_times
def run(model, resume, data: DataRequest, **kwargs) -> None:
    """Train MODEL on a dataset and evaluate it on the held-out parts."""

    from mlffbench.data.user import command_request
    from mlffbench.runs.experiment import train_and_evaluate

    if model is None and resume is None:
        raise ConfigError("missing MODEL (see `mlffbench models`)")
    options = _collect(model, resume=resume, **kwargs)
    with command_request(data):
        run_dir, metrics = train_and_evaluate(options, console=_err_console())
    _report(run_dir, metrics)


@main.command("runs")
@click.argument("runs_dir", required=False, type=click.Path(path_type=Path))
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the rows (and problems) to this JSON file.",
)
@click.option(
    "--check",
    "check",
    is_flag=True,
    help="Verify each run against its MLflow run and checkpoints; exit 1 on any disagreement.",
)
def runs_command(runs_dir: Path | None, json_path: Path | None, check: bool) -> None:
    """Run directories in RUNS_DIR: model, dataset, split, epochs, status, best validation force MAE, MLflow run."""
    from rich.table import Table

    from mlffbench.runs import record as run_records
    from mlffbench.runs.directory import write_json

    folder = settings.path("runs_dir", runs_dir)
    rows = run_records.list_runs(folder)
    if check:
        for row in rows:
            row["problems"] = run_records.check(Path(row["run_dir"]))
    table = Table(title="runs")
    for col in ("run", "model", "dataset", "split", "epochs", "status", "best val F MAE meV/Å", "MLflow run"):
        table.add_column(col)
    for row in rows:
        best = row["best_val_force_mae"]
        table.add_row(
            Path(row["run_dir"]).name,
            row["model"],
            row["dataset"],
            (row["split_fingerprint"] or "—")[:12],
            str(row["epochs"]),
            row["status"],
            f"{1000 * best:.2f}" if best is not None else "—",
            row["mlflow_run_id"] or "—",
        )
    console = _console()
    console.print(table)
    problems = [(row["run_dir"], p) for row in rows for p in row.get("problems", [])]
    problems += run_records.check_stores(folder, rows) if check else []  # e.g. a killed compare's parent run
    for run_dir, problem in problems:
        console.print(f"[red]disagreement:[/] {run_dir}: {problem}", highlight=False, soft_wrap=True)
    if check and not problems:
        console.print(f"{len(rows)} runs checked: records, checkpoints and MLflow agree", highlight=False)
    if json_path is not None:
        write_json(json_path, rows)
    if problems:
        sys.exit(1)


@main.command()
@click.argument("model")
@_run_options
@data_options
@click.option(
    "--split",
    "evaluate_split",
    type=click.Choice(["val", "test", "all"]),
    default="test",
    show_default=True,
    help="Which configurations to evaluate.",
)
def evaluate(model, evaluate_split, data: DataRequest, **kwargs) -> None:
    """Evaluate MODEL with given weights (--init-from) without training."""
    from mlffbench.data.user import command_request
    from mlffbench.runs.experiment import train_and_evaluate

    if kwargs.get("init_from") is None:
        raise ConfigError("evaluate needs --init-from PATH (weights to evaluate)")
    kwargs["epochs"], kwargs["time_budget"] = 0, None  # epochs 0 with a time budget would train
    kwargs["no_progress"] = True
    options = _collect(model, evaluate_split=evaluate_split, **kwargs)
    with command_request(data):
        run_dir, metrics = train_and_evaluate(options, console=_err_console())
    _report(run_dir, metrics)


# ------------------------------------------------- speed: bench and compare
from mlffbench.cli.speed import bench as _bench_command
from mlffbench.cli.speed import compare as _compare_command

main.add_command(_bench_command)
main.add_command(_compare_command)


# ------------------------------------------------------------------ tuning
@main.command()
@click.argument("model", required=False)
@dataset_option
@click.option("--study", help="Study name: joins or resumes it (default: a new MODEL-DATASET-TIME study).")
@click.option(
    "--storage", help="Optuna storage URL, e.g. postgresql://user@host:5432/db (default: sqlite in the runs dir)."
)
@click.option("--trials", type=int, default=20, show_default=True, help="Trials this worker runs.")
@click.option(
    "--study-trials",
    type=int,
    default=0,
    help="Stop once the study has this many complete+pruned trials (all workers).",
)
@click.option("--epochs", type=int, help="Training epochs per trial.")
@click.option(
    "--trial-timeout",
    type=float,
    help="Seconds of training per trial (compilation and validation excluded; default without --epochs: 20).",
)
@click.option("--objective", help="accuracy (val force MAE) or accuracy,speed (plus inference µs/atom/step).")
@click.option(
    "--pruner",
    type=click.Choice(["median", "hyperband", "none"]),
    help="Pruner on the validation force MAE (default median).",
)
@click.option("--sampler", type=click.Choice(["tpe", "random"]), default="tpe", show_default=True, help="Sampler.")
@click.option("--seed", type=int, help="Sampler seed.")
@click.option(
    "--reports-per-epoch", type=int, help="Validation reports to the pruner per epoch (default: >= 4 per trial)."
)
@click.option("--max-configs", type=int, help="Use only the first N configurations (cheap trials).")
@click.option(
    "--param", "-p", "params", multiple=True, help="Fix a search-space parameter or a model option: name=value."
)
@click.option("--train", "-t", "train_items", multiple=True, help="Fix a training option: name=value.")
@click.option(
    "--heartbeat",
    type=int,
    default=60,
    show_default=True,
    help="Seconds between trial heartbeats; a trial silent for twice this is marked failed.",
)
@click.option("--top", type=int, default=10, show_default=True, help="Best trials shown.")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the best config and plots go (default: RUNS_DIR/tune-STUDY).",
)
@data_dir_option
@runs_dir_option(
    "Where trial runs, the default study database and MLflow store go (default: runs; see `mlffbench config`)."
)
@tracking_options
@data_options
@trains_or_times
def tune(
    model,
    dataset,
    study,
    storage,
    trials,
    study_trials,
    epochs,
    trial_timeout,
    objective,
    pruner,
    sampler,
    seed,
    reports_per_epoch,
    max_configs,
    params,
    train_items,
    heartbeat,
    top,
    out_dir,
    data_dir,
    runs_dir,
    tracking_uri,
    no_tracking,
    data: DataRequest,
) -> None:
    """Search MODEL's hyperparameters with Optuna (pruning, resumable, many workers)."""
    from mlffbench.data.user import command_request
    from mlffbench.tuning.report import render
    from mlffbench.tuning.study import TuneOptions
    from mlffbench.tuning.study import tune as run_tune

    if model is None and study is None:
        raise ConfigError("missing MODEL (or --study NAME to resume a study)")
    if model is not None and dataset is None and study is None:
        dataset = settings.get("dataset")
    objectives = tuple(o.strip() for o in objective.split(",")) if objective else None
    options = TuneOptions(
        model=model,
        dataset=dataset,
        study=study,
        storage=storage,
        trials=trials,
        study_trials=study_trials,
        objectives=objectives,
        epochs=epochs,
        trial_timeout=trial_timeout,
        max_configs=max_configs,
        reports_per_epoch=reports_per_epoch,
        pruner=pruner,
        sampler=sampler,
        seed=seed,
        params=_key_values(params, "--param"),
        train_params=_key_values(train_items, "--train"),
        heartbeat=heartbeat,
        data_dir=data_dir,
        runs_dir=settings.path("runs_dir", runs_dir),
        out_dir=out_dir,
        tracking_uri=tracking_uri,
        tracking=not no_tracking,
        top=top,
    )
    err = _err_console()  # SIGTERM stops like Ctrl-C (trial marked failed): see Group
    with command_request(data):
        summary = run_tune(options, log=lambda text: err.print(text, highlight=False, markup=False))
    render(summary, _console())


# ----------------------------------------------------------------- physics
from mlffbench.cli.physics import check as _check_command
from mlffbench.cli.physics import md as _md_command
from mlffbench.cli.physics import scan as _scan_command

main.add_command(_check_command)
main.add_command(_md_command)
main.add_command(_scan_command)

# ------------------------------------------------------------------- tasks
from mlffbench.cli.tasks import task as _task_command
from mlffbench.cli.tasks import tasks as _tasks_command

main.add_command(_tasks_command)
main.add_command(_task_command)


def entry() -> None:
    """The console script. The commands that train or time set up the process themselves, and may
    re-execute it only from here (:mod:`mlffbench.cli.process`); the others leave it as it started."""

    process.console_script = True
    main()


if __name__ == "__main__":
    entry()
