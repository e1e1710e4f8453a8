"""The built-in tasks, registered through the hook ``mlffbench_tasks`` (entry point
``builtin_tasks``) like a third party's: ``check`` (the conformance suite), ``md``, ``scan``,
``inference`` (the inference timing of ``bench``), ``eos``, ``elastic``, ``phonons``.

``check``, ``md`` and ``scan`` wrap the work of :mod:`mlffbench.tasks.conformance`,
:mod:`mlffbench.tasks.md` and :mod:`mlffbench.tasks.scan`; their commands (``mlffbench check
RUN``, ``md``, ``scan``) build the same task results (:func:`check_result`, :func:`md_result`,
:func:`scan_result`) and write them to ``RUN_DIR/tasks/NAME/result.json`` too.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from mlffbench import hookimpl
from mlffbench.errors import ConfigError
from mlffbench.tasks import elastic, eos, phonons
from mlffbench.tasks.base import TaskOption, TaskResult, TaskSpec


# ------------------------------------------------------------------ check
def check_result(report) -> TaskResult:
    """The conformance report as a task result: passed/failed counts, each check's status and
    its largest deviation relative to its tolerance."""
    result = TaskResult("check", ok=report.ok, note=f"conformance of {report.model} ({report.dtype})")
    failed = report.failed()
    result.figure("checks", len(report.results), "", "checks run")
    result.figure("failed", len(failed), "", "checks failed")
    result.figure("passed", bool(not failed), "", "every check passed (or was reported/skipped)")
    rows = []
    for r in report.results:
        ok = sum(bool(m.ok) for m in r.measurements)
        failing = "; ".join(m.text() for m in r.measurements if not m.ok)
        rows.append([r.name, r.status, f"{ok}/{len(r.measurements)}", failing or r.detail])
    result.table("checks", ["check", "status", "measurements within tolerance", "failing / detail"], rows)
    result.data = report.to_dict()
    result.raw = report
    return result


def _run_check(model, options: dict[str, Any]) -> TaskResult:
    from mlffbench.tasks.conformance.command import check_trained

    indices = tuple(options["config_index"] or ()) or (0,)
    only = [s for s in str(options["only"] or "").split(",") if s.strip()] or None
    report = check_trained(
        model,
        dataset=options["dataset"],
        data_dir=options["data_dir"],
        config_indices=indices,
        only=only,
        seed=int(options["seed"]),
    )
    return check_result(report)


CHECK = TaskSpec(
    name="check",
    run=_run_check,
    description="Conformance suite: invariances, periodic images, forces/stress vs finite differences, batching, save/load, cutoff",
    options=(
        TaskOption(
            "dataset",
            "str",
            None,
            "Check on configurations of this dataset (default: EAN and ethanol, else the run's).",
        ),
        TaskOption("config_index", "ints", (0,), "Configurations of the dataset (comma-separated)."),
        TaskOption("only", "str", "", "Only these checks (comma-separated)."),
        TaskOption("seed", "int", 0, "Seed of the determinism check."),
    ),
    dtype="float64",  # the suite's tolerances are for float64 unless --dtype float32
)


# --------------------------------------------------------------------- md
def start_configuration(model, dataset: str | None, index: int, data_dir):
    """(label, configuration ``index`` of ``dataset`` or of the run's own dataset)."""
    from mlffbench.data.user import card_of_run
    from mlffbench.tasks.conformance.configurations import dataset_configurations

    name: Any = dataset or getattr(model, "dataset_name", "")
    if not name:
        raise ConfigError("the run names no dataset: pass --dataset")
    run = getattr(model, "run", None)
    if not dataset and run is not None:  # the run's own card (a file's card too)
        name = card_of_run(run.config)
    folder = data_dir or (run.data_dir if run is not None else None)
    ((label, config),) = dataset_configurations(name, (int(index),), folder)
    return label, config


def md_result(result, label: str = "") -> TaskResult:
    s = result.summary()
    out = TaskResult("md", ok=result.stable, note=f"{s['ensemble'].upper()} from {label}".strip())
    out.figure("stable", bool(result.stable), "", s["reason"])
    out.figure("drift", s["drift_mev_per_atom_ps"], "meV/atom/ps", "NVE drift of the total energy")
    out.figure("steps_per_s", s["steps_per_s"], "1/s", "MD steps per second")
    out.figure("temperature_mean", s["temperature_mean_K"], "K")
    out.figure("max_bond_deviation", s["max_bond_deviation_A"], "Å")
    out.figure("steps_done", s["steps_done"], "")
    out.data = {"summary": s}
    out.raw = result
    return out


def _run_md(model, options: dict[str, Any]) -> TaskResult:
    from mlffbench.tasks.conformance.defects import DEFECTS
    from mlffbench.tasks.md import MDOptions, run_md

    md_options = MDOptions(
        steps=int(options["steps"]),
        ensemble=str(options["ensemble"]),
        temperature_K=float(options["temperature"]),
        timestep_fs=float(options["timestep"]),
        thermostat=str(options["thermostat"]),
        friction_per_fs=float(options["friction"]),
        taut_fs=float(options["taut"]),
        seed=int(options["seed"]),
        trajectory_interval=int(options["traj_interval"]),
    )
    label, config = start_configuration(model, options["dataset"], options["config_index"], options["data_dir"])
    predictor = model.predictor()
    if options.get("plant"):
        if options["plant"] not in DEFECTS:
            raise ConfigError(f"md: unknown defect '{options['plant']}' (known: {', '.join(DEFECTS)})")
        predictor = DEFECTS[options["plant"]](predictor)
    out = Path(options["out"] or options["out_dir"])
    result = run_md(predictor, config, md_options, out)
    task_result = md_result(result, label)
    task_result.data["files"] = result.files
    task_result.data["n_atoms"] = config.n_atoms
    task_result.data["label"] = label
    for key in ("energy_plot", "temperature_plot"):
        if key in result.files:
            task_result.plots[key.replace("_plot", "")] = result.files[key]
    return task_result


MD = TaskSpec(
    name="md",
    run=_run_md,
    description="Molecular dynamics (ASE NVE/NVT): NVE drift, steps/s, stability verdict, trajectory",
    options=(
        TaskOption("steps", "int", 1000, "MD steps."),
        TaskOption("ensemble", "str", "nve", "nve or nvt."),
        TaskOption("temperature", "float", 300.0, "Initial (NVE) or target (NVT) temperature, K."),
        TaskOption("timestep", "float", 0.5, "Time step, fs."),
        TaskOption("thermostat", "str", "langevin", "NVT thermostat: langevin or bussi."),
        TaskOption("friction", "float", 0.01, "Langevin friction, 1/fs."),
        TaskOption("taut", "float", 100.0, "Bussi time constant, fs."),
        TaskOption("dataset", "str", None, "Dataset of the starting configuration (default: the run's)."),
        TaskOption("config_index", "int", 0, "Starting configuration."),
        TaskOption("seed", "int", 0, "Seed of the velocities and the thermostat."),
        TaskOption("traj_interval", "int", 10, "Write every N-th step to the trajectory."),
        TaskOption("plant", "str", None, "Plant a defect (force-sign) in the model."),
        TaskOption("out", "path", None, "Folder of the trajectory and plots (default: the task's folder)."),
    ),
)


# ------------------------------------------------------------------- scan
def scan_result(result) -> TaskResult:
    s = result.summary()
    out = TaskResult("scan", note=result.title)
    out.figure("energy_mae", _mev(s["mean_energy_mae_eV"]), "meV", "mean ΔE MAE over curves")
    out.figure("force_mae", _mev(s["mean_force_mae_eV_per_A"]), "meV/Å", "mean projected-force MAE")
    out.figure("curves", s["evaluated"], "", "curves evaluated")
    out.figure("skipped", s["skipped"], "", "curves skipped (unknown elements)")
    out.data = {"summary": s, "curves": [c.to_dict() for c in result.curves]}
    out.raw = result
    return out


def _mev(value) -> float | None:
    return None if value is None else 1000.0 * float(value)


def _run_scan(model, options: dict[str, Any]) -> TaskResult:
    from mlffbench.data.loading import load_dataset
    from mlffbench.data.user import resolve_card
    from mlffbench.runs.directory import write_json
    from mlffbench.tasks.scan import plot, scan_bond, scan_curves

    predictor = model.predictor()
    out = Path(options["out"] or options["out_dir"])
    bond = options.get("bond")
    if bond:
        if len(bond) != 2:
            raise ConfigError(f"scan: bond must be two atom indices I,J, got {bond}")
        if len(options["range"]) != 3:
            raise ConfigError(f"scan: range must be start,stop,points, got {options['range']}")
        start, stop, points = options["range"]
        if not (0 < start < stop and points >= 2):
            raise ConfigError("scan: range needs 0 < start < stop and at least 2 points")
        label, config = start_configuration(model, options["dataset"], options["config_index"], options["data_dir"])
        result = scan_bond(predictor, config, int(bond[0]), int(bond[1]), np.linspace(start, stop, int(points)))
        result.title += f" in {label}"
    else:
        run = getattr(model, "run", None)
        card = resolve_card(options["dataset"] or "comp6-s66x8")
        folder = options["data_dir"] or (run.data_dir if run is not None else None)
        ds = load_dataset(card, data_dir=folder, download=False)
        curves = [c for c in str(options["curves"] or "").split(",") if c.strip()] or None
        result = scan_curves(predictor, ds, groups=curves)
    result.files["plot"] = plot(result, out / "scan.png")
    result.files["json"] = str(out / "scan.json")
    write_json(out / "scan.json", {"summary": result.summary(), "curves": [c.to_dict() for c in result.curves]})
    task_result = scan_result(result)
    task_result.plots["scan"] = result.files["plot"]
    return task_result


SCAN = TaskSpec(
    name="scan",
    run=_run_scan,
    description="Energy along dissociation curves (COMP6 S66x8) vs the reference, or along a stretched bond",
    options=(
        TaskOption("dataset", "str", None, "Dataset with curves (default comp6-s66x8; with bond: the run's)."),
        TaskOption("curves", "str", "", "Only these curves (comma-separated group names)."),
        TaskOption("bond", "ints", None, "Stretch the bond I,J of a configuration instead."),
        TaskOption("config_index", "int", 0, "Configuration for bond."),
        TaskOption("range", "floats", (0.9, 2.5, 17.0), "bond distances start,stop,points (Å)."),
        TaskOption("out", "path", None, "Folder of the plot and scan.json (default: the task's folder)."),
    ),
)


# -------------------------------------------------------------- inference
def _run_inference(model, options: dict[str, Any]) -> TaskResult:
    """Energy + forces of one configuration of the model's dataset (batch 1), timed by the
    protocol of ``bench`` (:mod:`mlffbench.speed.timing`)."""
    from mlffbench.backends.predictor import graph_batch
    from mlffbench.speed import timing

    label, config = start_configuration(model, options["dataset"], options["config_index"], options["data_dir"])
    batch = graph_batch([config], model.species, model.cutoff)
    work = timing.inference_workload(model.backend, model.state, batch, f"{model.spec.name} inference b1")
    (t,) = timing.measure_interleaved([work], repeats=int(options["repeats"]), warmup_min_s=1.0)
    d = t.to_dict()
    result = TaskResult("inference", note=f"{label}, {config.n_atoms} atoms, batch 1")
    result.figure("us_per_atom_step", d["us_per_atom_step"], "µs", "inference time per atom and energy+forces step")
    result.figure("median_ms", 1000 * d["median_s"], "ms", "median time of one call")
    result.figure("recompilations", d.get("recompilations", 0), "")
    result.data = {"timing": d, "configuration": label}
    return result


INFERENCE = TaskSpec(
    name="inference",
    run=_run_inference,
    description="Inference speed (energy + forces, batch 1) by the bench protocol: µs/atom/step",
    options=(
        TaskOption("dataset", "str", None, "Dataset of the configuration (default: the run's)."),
        TaskOption("config_index", "int", 0, "Configuration timed."),
        TaskOption("repeats", "int", 7, "Timed calls."),
    ),
)

BUILTIN = (CHECK, MD, SCAN, INFERENCE, eos.SPEC, elastic.SPEC, phonons.SPEC)


@hookimpl
def mlffbench_tasks(register) -> None:
    for spec in BUILTIN:
        register(spec)


def finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(float(value))
