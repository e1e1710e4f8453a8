"""The physics commands: ``check`` (conformance suite), ``md`` (molecular dynamics with ASE) and
``scan`` (energy along a bond stretch or a dataset's dissociation curves). Thin wrappers;
the work is in :mod:`mlffbench.tasks.conformance`, :mod:`mlffbench.tasks.md` and :mod:`mlffbench.tasks.scan`."""

from __future__ import annotations

from pathlib import Path

import click

from mlffbench.cli.dataopts import data_options
from mlffbench.cli.process import trains_or_times
from mlffbench.errors import ConfigError


def _console():
    from rich.console import Console

    return Console()


def _key_values(items, what):
    from mlffbench.cli.app import _key_values as parse

    return parse(items, what)


@click.command()
@click.argument("target", metavar="MODEL|RUN_DIR")
@click.option(
    "--init-from", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Released weights for MODEL."
)
@click.option(
    "--dataset", "-d", help="Take the species and configurations from this dataset (default: EAN and rMD17 ethanol)."
)
@click.option(
    "--config-index",
    "config_indices",
    type=int,
    multiple=True,
    help="Configurations of --dataset to check on (default 0; repeatable).",
)
@click.option("--param", "-p", "params", multiple=True, help="Model option name=value (repeatable).")
@click.option(
    "--dtype",
    type=click.Choice(["float64", "float32"]),
    default="float64",
    show_default=True,
    help="Precision of the checks (tolerances follow).",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Initialisation seed (and the determinism check's seed)."
)
@click.option(
    "--checkpoint",
    type=click.Choice(["best", "last"]),
    default="best",
    show_default=True,
    help="Checkpoint of a run directory.",
)
@click.option("--only", multiple=True, help="Run only this check (repeatable), e.g. --only forces.")
@click.option(
    "--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), help="Also write the report as JSON."
)
@click.option(
    "--data-dir", type=click.Path(path_type=Path), help="Folder with the dataset files (default: $MLFFBENCH_DATA_DIR)."
)
@data_options
def check(
    target, init_from, dataset, config_indices, params, dtype, seed, checkpoint, only, json_path, data_dir, data
) -> None:
    """Run the conformance suite on MODEL (or the model of RUN_DIR): invariances, periodic
    images, forces and stress against finite differences, batching, save/load, determinism,
    cutoff smoothness. Exits 1 when a check fails."""
    import sys

    from mlffbench.data.user import command_request
    from mlffbench.runs.directory import write_json
    from mlffbench.runs.trained import TrainedModel
    from mlffbench.tasks.base import run_task
    from mlffbench.tasks.builtin import CHECK
    from mlffbench.tasks.conformance.command import check_model
    from mlffbench.tasks.conformance.table import report_table

    if (Path(target) / "config.json").is_file():  # the `check` task on the run's model
        if init_from is not None or params:
            raise ConfigError("--init-from and --param apply to a model name, not to a run directory")
        with command_request(data):
            model = TrainedModel.from_run(Path(target), checkpoint=checkpoint, dtype=dtype)
            options = {"dataset": dataset, "config_index": config_indices or (0,), "only": ",".join(only), "seed": seed}
            report = run_task(CHECK, model, options, data_dir=data_dir).raw
    else:
        with command_request(data):
            report = check_model(
                target,
                init_from=init_from,
                dataset=dataset,
                data_dir=data_dir,
                model_params=_key_values(params, "--param"),
                dtype=dtype,
                seed=seed,
                checkpoint=checkpoint,
                config_indices=config_indices or (0,),
                only=list(only) or None,
            )
    console = _console()
    console.print(report_table(report))
    failed = report.failed()
    reported = [r.name for r in report.results if r.status == "reported"]
    note = f" ({len(reported)} reported, declared by the model: {', '.join(reported)})" if reported else ""
    console.print(
        f"[bold red]failed: {', '.join(failed)}[/]" if failed else f"[green]all checks passed[/]{note}", highlight=False
    )
    if json_path:
        write_json(json_path, report.to_dict())
    if failed:
        sys.exit(1)


def _out_dir(out, run_dir: Path, what: str) -> Path:
    import datetime as dt

    if out is not None:
        return Path(out)
    return Path(run_dir) / f"{what}-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"


@click.command()
@click.argument("run_dir", metavar="RUN_DIR", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--steps", type=int, default=1000, show_default=True, help="MD steps.")
@click.option("--ensemble", type=click.Choice(["nve", "nvt"]), default="nve", show_default=True)
@click.option(
    "--temperature", type=float, default=300.0, show_default=True, help="Initial (NVE) or target (NVT) temperature, K."
)
@click.option("--timestep", type=float, default=0.5, show_default=True, help="Time step, fs.")
@click.option(
    "--thermostat",
    type=click.Choice(["langevin", "bussi"]),
    default="langevin",
    show_default=True,
    help="NVT thermostat.",
)
@click.option("--friction", type=float, default=0.01, show_default=True, help="Langevin friction, 1/fs.")
@click.option("--taut", type=float, default=100.0, show_default=True, help="Bussi time constant, fs.")
@click.option("--dataset", "-d", help="Dataset of the starting configuration (default: the run's).")
@click.option("--config-index", type=int, default=0, show_default=True, help="Starting configuration.")
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed of the initial velocities and the thermostat."
)
@click.option(
    "--traj-interval", type=int, default=10, show_default=True, help="Write every N-th step to the trajectory."
)
@click.option("--dtype", type=click.Choice(["float32", "float64"]), help="Precision (default: the run's).")
@click.option("--checkpoint", type=click.Choice(["best", "last"]), default="best", show_default=True)
@click.option(
    "--plant",
    type=click.Choice(["force-sign"]),
    help="Plant a defect in the model (to see the stability verdict catch it).",
)
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), help="Output folder (default: RUN_DIR/md-TIME)."
)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    help="Folder with the dataset files (default: the run's, else $MLFFBENCH_DATA_DIR).",
)
@data_options
@trains_or_times
def md(
    run_dir,
    steps,
    ensemble,
    temperature,
    timestep,
    thermostat,
    friction,
    taut,
    dataset,
    config_index,
    seed,
    traj_interval,
    dtype,
    checkpoint,
    plant,
    out,
    data_dir,
    data,
) -> None:
    """Molecular dynamics with the model of RUN_DIR (ASE): trajectory, NVE drift, temperature,
    steps/s and stability (collapsed when a bond deviates > 0.5 Å or the temperature runs away)."""
    from rich.table import Table

    from mlffbench.data.user import command_request
    from mlffbench.runs.trained import TrainedModel
    from mlffbench.tasks.base import run_task
    from mlffbench.tasks.builtin import MD
    from mlffbench.tasks.md import MDOptions

    MDOptions(  # every option checked before the model loads
        steps=steps,
        ensemble=ensemble,
        temperature_K=temperature,
        timestep_fs=timestep,
        thermostat=thermostat,
        friction_per_fs=friction,
        taut_fs=taut,
        seed=seed,
        trajectory_interval=traj_interval,
    )
    model = TrainedModel.from_run(run_dir, checkpoint=checkpoint, dtype=dtype)
    options = {
        "steps": steps,
        "ensemble": ensemble,
        "temperature": temperature,
        "timestep": timestep,
        "thermostat": thermostat,
        "friction": friction,
        "taut": taut,
        "dataset": dataset,
        "config_index": config_index,
        "seed": seed,
        "traj_interval": traj_interval,
        "plant": plant,
        "out": _out_dir(out, run_dir, "md"),
    }
    with command_request(data):  # the `md` task, its result also in RUN_DIR/tasks/md
        task_result = run_task(MD, model, options, data_dir=data_dir)
    result, label = task_result.raw, task_result.data["label"]
    s = result.summary()
    table = Table(
        title=f"{ensemble.upper()} MD of {model.spec.name} from {label} ({task_result.data['n_atoms']} atoms)",
        show_header=False,
    )
    table.add_column("", style="bold")
    table.add_column("")
    verdict = "[green]stable[/]" if result.stable else "[bold red]collapsed (unstable)[/]"
    rows = [
        ("steps", f"{s['steps_done']} of {steps} ({s['simulated_ps']:.3f} ps at {timestep:g} fs)"),
        ("stability", f"{verdict}: {s['reason']}"),
        (
            "energy drift",
            f"{s['drift_mev_per_atom_ps']:.4g} meV/atom/ps" + (" (NVT: thermostatted)" if ensemble == "nvt" else ""),
        ),
        ("temperature", f"{s['temperature_mean_K']:.1f} ± {s['temperature_std_K']:.1f} K (target {temperature:g} K)"),
        ("max bond deviation", f"{s['max_bond_deviation_A']:.3f} Å over {s['n_bonds']} bonds"),
        ("speed", f"{s['steps_per_s']:.2f} MD steps/s"),
    ]
    for key, value in rows:
        table.add_row(key, value)
    for key, value in result.files.items():
        table.add_row(key, value)
    _console().print(table)


@click.command()
@click.argument("run_dir", metavar="RUN_DIR", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--dataset",
    "-d",
    help="Dataset with curves (groups) and reference energies (default: comp6-s66x8; with --bond: the run's).",
)
@click.option("--curve", "curves", multiple=True, help="Only this curve (group name, e.g. mol00; repeatable).")
@click.option("--bond", nargs=2, type=int, help="Stretch the bond I J of a configuration instead (atom J moves).")
@click.option("--config-index", type=int, default=0, show_default=True, help="Configuration for --bond.")
@click.option("--range", "span", default="0.9:2.5:17", show_default=True, help="--bond distances start:stop:points, Å.")
@click.option("--dtype", type=click.Choice(["float32", "float64"]), help="Precision (default: the run's).")
@click.option("--checkpoint", type=click.Choice(["best", "last"]), default="best", show_default=True)
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), help="Output folder (default: RUN_DIR/scan-TIME)."
)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    help="Folder with the dataset files (default: the run's, else $MLFFBENCH_DATA_DIR).",
)
@data_options
def scan(run_dir, dataset, curves, bond, config_index, span, dtype, checkpoint, out, data_dir, data) -> None:
    """Energy (and force) of the model of RUN_DIR along dissociation curves against the
    reference (MAE of relative energies per curve), or along a stretched bond."""
    from rich.table import Table

    from mlffbench.data.user import command_request
    from mlffbench.runs.trained import TrainedModel
    from mlffbench.tasks.base import run_task
    from mlffbench.tasks.builtin import SCAN

    model = TrainedModel.from_run(run_dir, checkpoint=checkpoint, dtype=dtype)
    distances = None
    if bond:
        try:
            start, stop, points = (float(v) for v in span.split(":"))
        except ValueError:
            raise ConfigError(f"--range must be start:stop:points, got '{span}'") from None
        if not (0 < start < stop and points >= 2):
            raise ConfigError(f"--range needs 0 < start < stop and at least 2 points, got '{span}'")
        distances = (start, stop, points)
    options = {
        "dataset": dataset,
        "curves": ",".join(curves),
        "bond": tuple(bond) if bond else None,
        "config_index": config_index,
        "out": _out_dir(out, run_dir, "scan"),
        **({"range": distances} if distances else {}),
    }
    with command_request(data):  # the `scan` task, its result also in RUN_DIR/tasks/scan
        result = run_task(SCAN, model, options, data_dir=data_dir).raw
    console = _console()
    table = Table(title=f"{model.spec.name}: {result.title}")
    for col in ("curve", "points", "distance Å", "ΔE MAE meV", "F MAE meV/Å", "note"):
        table.add_column(col, justify="left" if col in ("curve", "note") else "right")
    for c in result.curves:
        if c.skipped:
            table.add_row(c.name, "—", "—", "—", "—", f"[yellow]skipped: {c.skipped}[/]")
            continue
        e = f"{1000 * c.energy_mae:.1f}" if c.reference is not None else "—"
        f = f"{1000 * c.force_mae:.1f}" if c.reference_force is not None else "—"
        note = (
            "" if c.reference is not None else "E−E(first) " + " ".join(f"{1000 * v:.0f}" for v in c.predicted) + " meV"
        )
        table.add_row(c.name, str(len(c.distance)), f"{c.distance.min():.2f}–{c.distance.max():.2f}", e, f, note)
    console.print(table)
    s = result.summary()
    if s["mean_energy_mae_eV"] is not None:
        console.print(
            f"mean over {s['evaluated']} curves: ΔE MAE {1000 * s['mean_energy_mae_eV']:.1f} meV"
            + (
                f", F MAE {1000 * s['mean_force_mae_eV_per_A']:.1f} meV/Å"
                if s["mean_force_mae_eV_per_A"] is not None
                else ""
            ),
            highlight=False,
        )
    if s["skipped"]:
        console.print(
            f"[yellow]warning:[/] {s['skipped']} curves skipped (elements unknown to the model)", highlight=False
        )
    console.print(f"plot: {result.files['plot']}", highlight=False)
