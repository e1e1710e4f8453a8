"""``mlffbench compare``: accuracy and speed of several models side by side, on one split.

1. Runs. Each model is trained ``seeds`` times (training/initialisation seeds 0..N-1, see
   below) on the same split with the same budget (``epochs``) through
   :func:`mlffbench.runs.experiment.train_and_evaluate`, unless a finished run with the same
   model, dataset, resolved model and training configuration, split fingerprint and a
   completed budget is found in the runs directory (the directory whose ``mlflow.db`` is the
   default MLflow store) or among the runs of the MLflow store tagged with the split's
   fingerprint, which is reused; an unfinished one in the runs directory (stale: its process was
   killed; or interrupted) is resumed. ``runs=`` compares given run directories instead.
2. One split. Every run must carry the same split fingerprint; otherwise :class:`RunError`.
   ``--seeds N`` varies the seed of initialisation and batch order (``TrainConfig.seed``);
   the split seed (``split_seed``) is the same for all, so the spread over seeds is that of
   training on ONE split, not of the split.
3. Accuracy: each run's best checkpoint is evaluated on the test part (force and energy MAE
   and RMSE, per group where the data have groups); mean ± standard deviation over seeds.
   Time to a target force MAE: the wall time (history.json, compilation and validation
   included) at which the validation force MAE first reached the target (default: 1.1 × the
   worst final validation force MAE among all runs, so that every run reaches it).
   Paired statistics (:mod:`mlffbench.speed.statistics`): for every pair of models, the
   per-configuration differences of their errors on the same test configurations, a two-level
   bootstrap interval (seeds, then configurations), a Wilcoxon signed-rank test, a verdict
   ("A better", "B better", "tied within the noise") and the smallest difference the test set
   could detect; a warning for each model compared with a single seed.
4. Speed, measured now in this process on this device, the models alternating call by call
   (:func:`mlffbench.speed.timing.measure_interleaved`): inference (energy + forces) at batch 1,
   µs/atom/step; training configurations/s (blocks of optimizer steps at each model's
   batch size). The runs' own training speeds (metrics.json, measured at different times)
   are reported beside them.
5. Output: a rich table, PNG plots, a Markdown report, a self-contained ``report.html``
   (:mod:`mlffbench.speed.html`), a JSON file, and an MLflow parent run
   (the runs' own MLflow runs are tagged as its children) holding all of it: opened before any
   run trains, KILLED on SIGINT/SIGTERM, FAILED with the reason on an error (:class:`ParentRun`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlffbench.data.user import resolve_card
from mlffbench.errors import ConfigError, RunError
from mlffbench.plugin.manager import get_registry
from mlffbench.runs import directory as runs
from mlffbench.runs import record as run_records
from mlffbench.runs.experiment import RunOptions, resolve_configs, run_split, stress_use, train_and_evaluate
from mlffbench.runs.record import ending, is_run_dir, read_status
from mlffbench.runs.tracking import default_tracking_uri, end_run, open_experiment
from mlffbench.runs.trained import TrainedModel, load_data
from mlffbench.speed import html as compare_html
from mlffbench.speed import report as compare_report
from mlffbench.speed import statistics, timing
from mlffbench.speed.bench import training_batches
from mlffbench.training.callbacks import StopKind, stop_kind
from mlffbench.training.metrics import ErrorAccumulator

WARMUP_MIN_S = 1.0  # warm-up calls go on until they took this long (see mlffbench.speed.timing)
# Without --epochs every model and seed trains for this many seconds of training steps
# (compilation and validation excluded, as every run's recorded train_s): `compare jat
# neuralil` on EAN then takes about 7-8 minutes on a 2-core CPU.
DEFAULT_BUDGET_S = 180.0
METRIC_KEYS = ("force_mae", "force_rmse", "energy_mae_per_atom", "energy_rmse_per_atom", "stress_mae", "stress_rmse")


@dataclass
class CompareOptions:
    models: tuple[str, ...] = ()
    dataset: str = ""
    epochs: int | None = None  # None: every model trains for ``budget_s`` seconds instead
    budget_s: float = DEFAULT_BUDGET_S
    seeds: int = 1
    split_seed: int = 0
    model_params: dict[str, dict[str, Any]] = field(default_factory=dict)  # model name ("*": all) -> options
    train_params: dict[str, Any] = field(default_factory=dict)  # shared training options
    run_dirs: tuple[Path, ...] = ()
    reuse: bool = True
    runs_dir: Path = Path("runs")
    data_dir: Path | None = None
    out_dir: Path | None = None
    target_force_mae: float | None = None  # eV/Å
    repeats: int = 5
    train_steps: int = 2
    tracking: bool = True
    tracking_uri: str | None = None
    progress: bool = True
    tasks: tuple[str, ...] = ()  # tasks run on each model (its first run) before the comparison
    task_options: dict[str, dict[str, Any]] = field(default_factory=dict)  # task name -> options


def _log(log, text: str) -> None:
    if log is not None:
        log(text)


# ------------------------------------------------------------------ runs
def run_fingerprint(run_dir: Path) -> tuple[str, str]:
    """(dataset name, split fingerprint) recorded in a run directory."""
    run_dir = runs.existing_run_dir(Path(run_dir))
    config = runs.read_json(run_dir / runs.CONFIG)
    if (run_dir / runs.METRICS).is_file():
        fp = runs.read_json(run_dir / runs.METRICS).get("split_fingerprint")
    else:
        fp = None
    if not fp:
        fp = runs.read_json(run_dir / runs.SPLIT).get("fingerprint", "")
    return str(config.get("dataset", "")), str(fp)


def check_same_split(run_dirs: list[Path]) -> str:
    """The common split fingerprint of the runs; RunError naming two that differ."""
    seen: dict[str, Path] = {}
    datasets: dict[str, Path] = {}
    for d in run_dirs:
        dataset, fp = run_fingerprint(d)
        datasets.setdefault(dataset, d)
        seen.setdefault(fp, d)
    if len(datasets) > 1:
        (a, da), (b, db) = list(datasets.items())[:2]
        raise RunError(f"runs on different datasets cannot be compared: '{da}' is on '{a}', '{db}' on '{b}'")
    if len(seen) > 1:
        (a, da), (b, db) = list(seen.items())[:2]
        raise RunError(
            f"runs on different splits cannot be compared: '{da}' has split {a[:12]}, '{db}' has split {b[:12]} "
            "(same dataset, split policy, fractions and split seed give the same split)"
        )
    return next(iter(seen)) if seen else ""


def _norm(value: Any) -> Any:
    return json.loads(json.dumps(value))


def _resolved(model: str, options: CompareOptions, seed: int):

    registry = get_registry()

    spec, card = registry.model(model), resolve_card(options.dataset)
    model_params = {**options.model_params.get("*", {}), **options.model_params.get(model, {})}
    train_params = {**options.train_params, **budget_params(options), "seed": seed, "split_seed": options.split_seed}
    model_config, train_config = resolve_configs(spec, card, model_params, train_params)
    return spec, card, model_params, train_params, model_config, train_config


def budget_params(options: CompareOptions) -> dict[str, Any]:
    """The training options of the common budget: ``epochs``, or a wall-clock time (epochs 0:
    train until ``max_time_s`` is spent, see :func:`mlffbench.training.loop.fit`)."""
    if options.epochs is not None:
        return {"epochs": options.epochs}
    return {"epochs": 0, "max_time_s": float(options.budget_s)}


def budget_of(train: dict[str, Any]) -> str:
    """A run's budget in words, from its training options (config.json's ``train``)."""
    if not train.get("epochs") and train.get("max_time_s"):
        return f"{train['max_time_s']:g} s"
    return f"{train.get('epochs')} epochs"


def completed_budget(train_config, metrics: dict[str, Any]) -> bool:
    """Whether a run spent its whole budget: all epochs, or (time budget) stopped by the time."""
    if train_config.epochs == 0 and train_config.max_time_s > 0:
        return stop_kind(str(metrics.get("stopped") or "")) is StopKind.TIME_BUDGET
    return metrics.get("epochs") == train_config.epochs


def expected_split(model: str, options: CompareOptions):

    _, card, _, _, _, train_config = _resolved(model, options, 0)
    ds = load_data(card, options.data_dir, train_config.max_configs)
    return run_split(ds, card, train_config)


def mlflow_run_dirs(tracking_uri: str, split_fingerprint: str) -> list[Path]:
    """Run directories (that exist here) of the MLflow runs tagged with this split fingerprint."""
    try:
        import mlflow

        from mlffbench.runs.tracking import EXPERIMENT

        client = mlflow.MlflowClient(tracking_uri=tracking_uri)
        experiment = client.get_experiment_by_name(EXPERIMENT)
        if experiment is None:
            return []
        found = client.search_runs(
            [experiment.experiment_id],
            filter_string=f"tags.split_fingerprint = '{split_fingerprint}'",
            max_results=1000,
        )
    except Exception:  # noqa: BLE001 - an unreachable store only means nothing to reuse from it
        return []
    dirs = {Path(r.data.tags["run_dir"]) for r in found if r.data.tags.get("run_dir")}
    return sorted((d for d in dirs if d.is_dir()), key=lambda d: d.name, reverse=True)


def _matches(config: dict[str, Any], model: str, dataset: str, want_model: Any, want_train: Any) -> bool:
    """Whether a run's config.json is of this model, dataset and resolved configuration (not from weights)."""
    return (
        config.get("model") == model
        and config.get("dataset") == dataset
        and not config.get("init_from")
        and config.get("model_config") == want_model
        and config.get("train") == want_train
    )


def find_reusable(
    runs_dir: Path,
    model: str,
    dataset: str,
    model_config,
    train_config,
    split_fingerprint: str,
    extra: Sequence[Path] = (),
) -> Path | None:
    """The newest finished run (status finished) in ``runs_dir`` (or among ``extra`` run
    directories, e.g. from the MLflow store) with this model, dataset, configuration, split and
    a completed budget; None if there is none."""

    runs_dir = Path(runs_dir)
    candidates = sorted((p for p in runs_dir.iterdir() if p.is_dir()), reverse=True) if runs_dir.is_dir() else []
    candidates += [Path(p) for p in extra]
    want_model = _norm(dataclasses.asdict(model_config))
    want_train = _norm(train_config.to_dict())
    for d in candidates:
        if (
            not (d / runs.CONFIG).is_file()
            or not (d / runs.METRICS).is_file()
            or not (d / runs.CHECKPOINTS / "best.ckpt").is_file()
        ):
            continue
        try:
            config, metrics = json.loads((d / runs.CONFIG).read_text()), json.loads((d / runs.METRICS).read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if (
            _matches(config, model, dataset, want_model, want_train)
            and metrics.get("split_fingerprint") == split_fingerprint
            and completed_budget(train_config, metrics)
            and read_status(d).get("state") == "finished"
        ):
            return d
    return None


def find_resumable(
    runs_dir: Path, model: str, dataset: str, model_config, train_config, split_fingerprint: str
) -> Path | None:
    """The newest unfinished run in ``runs_dir`` (stale: its process is gone, e.g. a killed
    compare's; or interrupted) with this model, dataset, configuration and split: continued
    with ``--resume`` rather than trained anew. None if there is none."""

    runs_dir = Path(runs_dir)
    want_model = _norm(dataclasses.asdict(model_config))
    want_train = _norm(train_config.to_dict())
    for d in sorted((p for p in runs_dir.iterdir() if p.is_dir()), reverse=True) if runs_dir.is_dir() else []:
        if not is_run_dir(d) or not (d / runs.SPLIT).is_file():
            continue
        try:
            config, split = json.loads((d / runs.CONFIG).read_text()), json.loads((d / runs.SPLIT).read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if (
            _matches(config, model, dataset, want_model, want_train)
            and split.get("fingerprint") == split_fingerprint
            and read_status(d).get("state") in ("stale", "interrupted")
        ):
            return d
    return None


def obtain_runs(options: CompareOptions, console=None, log=None, parent_run_id: str | None = None) -> list[Path]:
    """Run directories to compare: given ones, reused ones, resumed or freshly trained ones
    (those nested under the MLflow run ``parent_run_id``)."""
    given, fps, _ = _plan_runs(options)
    return (
        given
        if given is not None
        else _collect_runs(options, fps or {}, console=console, log=log, parent_run_id=parent_run_id)
    )


def _plan_runs(options: CompareOptions) -> tuple[list[Path] | None, dict[str, str] | None, str]:
    """(the given run directories, or None; else the split fingerprint of each model; the
    dataset's name), every option checked: nothing has started yet."""
    if options.run_dirs:
        dirs = [runs.existing_run_dir(Path(d)) for d in options.run_dirs]
        check_same_split(dirs)
        return dirs, None, run_fingerprint(dirs[0])[0]
    if not options.models:
        raise ConfigError("compare needs at least one MODEL (or --runs DIR ...)")
    if not options.dataset:
        raise ConfigError("compare needs --dataset (or --runs DIR ...)")
    if options.epochs is not None and options.epochs < 1:
        raise ConfigError(f"--epochs must be >= 1 (or left out for the time budget), got {options.epochs}")
    if options.epochs is None and not options.budget_s > 0:
        raise ConfigError(f"--budget must be a positive number of seconds, got {options.budget_s:g}")
    if options.seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {options.seeds}")
    if len(set(options.models)) != len(options.models):
        raise ConfigError("each model can be named once")
    unknown = sorted(set(options.model_params) - set(options.models) - {"*"})
    if unknown:
        raise ConfigError(
            f"--param for '{unknown[0]}', which is not among the models compared ({', '.join(options.models)})"
        )
    splits = {m: expected_split(m, options) for m in options.models}
    fps = {m: s.fingerprint for m, s in splits.items()}
    if len(set(fps.values())) > 1:
        a, b = list(fps)[:2]
        raise RunError(
            f"models '{a}' and '{b}' would train on different splits ({fps[a][:12]} vs {fps[b][:12]}): their split settings differ"
        )

    return None, fps, resolve_card(options.dataset).name


def _collect_runs(
    options: CompareOptions, fps: dict[str, str], console=None, log=None, parent_run_id: str | None = None
) -> list[Path]:
    """One run per seed and model: a matching finished one reused, an unfinished one resumed, else a new one."""
    extra: list[Path] = []
    if options.reuse and options.tracking:
        extra = mlflow_run_dirs(
            options.tracking_uri or default_tracking_uri(options.runs_dir), next(iter(fps.values()))
        )
    dirs = []
    jobs = [(s, m) for s in range(options.seeds) for m in options.models]
    for k, (seed, model) in enumerate(jobs):
        dirs.append(_one_run(options, model, seed, fps[model], extra, (k, len(jobs)), console, log, parent_run_id))
    check_same_split(dirs)
    return dirs


def _one_run(
    options: CompareOptions,
    model: str,
    seed: int,
    split_fp: str,
    extra: list[Path],
    position: tuple[int, int],
    console,
    log,
    parent_run_id: str | None,
) -> Path:
    """The run of ``model`` with ``seed``: reused, resumed or trained (the ``position``-th of all)."""

    spec, card, model_params, train_params, model_config, train_config = _resolved(model, options, seed)
    unfinished = None
    if options.reuse:
        found = find_reusable(options.runs_dir, spec.name, card.name, model_config, train_config, split_fp, extra)
        if found is not None:
            _log(log, f"reusing {found} ({model}, seed {seed})")
            return found
        unfinished = find_resumable(options.runs_dir, spec.name, card.name, model_config, train_config, split_fp)
    k, total = position
    left = f"; about {(total - k) * options.budget_s / 60:.0f} min of training left" if options.epochs is None else ""
    what = f"resuming {unfinished} (unfinished):" if unfinished is not None else "training"
    _log(
        log,
        f"[{k + 1}/{total}] {what} {model} on {card.name}, seed {seed}, budget {budget_of(budget_params(options))}{left}",
    )
    run_options = RunOptions(
        model=model,
        dataset=options.dataset,
        model_params=model_params,
        train_params=train_params,
        data_dir=options.data_dir,
        runs_dir=options.runs_dir,
        resume=unfinished,
        tracking_uri=options.tracking_uri,
        tracking=options.tracking,
        progress=options.progress,
        mlflow_parent_run_id=parent_run_id,
    )
    run_dir, _ = train_and_evaluate(run_options, console=console)
    return run_dir


# ------------------------------------------------------------- accuracy
def errors_of(
    pred: dict[str, np.ndarray], configs: np.ndarray | None = None, has_energy: bool = True, has_forces: bool = True
) -> dict[str, float]:
    """Force/energy MAE and RMSE (eV/Å, eV/atom) and stress MAE/RMSE (eV/Å³, where ``pred``
    holds stress) of predictions (:meth:`mlffbench.runs.trained.TrainedModel.predictions`),
    optionally for some configs only (``has_energy``/``has_forces``: whether the data have
    references for them). Computed by the training loop's
    :class:`mlffbench.training.metrics.ErrorAccumulator`."""

    if configs is None:
        keep_c = np.ones(pred["config"].shape[0], bool)
    else:
        keep_c = np.isin(pred["config"], configs)
    keep_a = keep_c[pred["atom_config"]]
    acc = ErrorAccumulator()
    if has_energy and keep_c.any():
        acc.add_values(
            energy=pred["energy_pred"][keep_c], energy_ref=pred["energy_ref"][keep_c], n_atoms=pred["n_atoms"][keep_c]
        )
    if has_forces and keep_a.any():
        acc.add_values(forces=pred["force_pred"][keep_a], forces_ref=pred["force_ref"][keep_a])
    if "stress_pred" in pred:  # over the 9 components of periodic configurations with stress
        keep_s = keep_c & pred["stress_mask"].astype(bool)
        acc.add_values(stress=pred["stress_pred"][keep_s], stress_ref=pred["stress_ref"][keep_s])
    return {"configs": int(keep_c.sum()), **acc.result()}


def groups_of(ds, indices) -> tuple[str, dict[str, np.ndarray]]:
    """How to break the test errors down: (kind, label -> configuration indices), or ("", {}).

    Dataset groups (molecules) where there are 2..30 of them among ``indices``; else heavy-atom
    counts of free molecules; else chemical formulas (2..30 of them).
    """
    idx = np.asarray(indices, dtype=np.int64)
    if idx.size == 0:
        return "", {}
    if ds.group is not None:
        ids = np.asarray(ds.group)[idx]
        if 2 <= np.unique(ids).size <= 30:
            return "group", {
                ds.group_names[g] if g < len(ds.group_names) else str(g): idx[ids == g] for g in np.unique(ids)
            }
    if not ds.periodic:
        heavy = np.array([int((ds.numbers[ds.atoms_of(int(i))] > 1).sum()) for i in idx])
        if 2 <= np.unique(heavy).size <= 30:
            return "heavy atoms", {str(h): idx[heavy == h] for h in np.unique(heavy)}
    formulas = np.array([ds.formula(int(i)) for i in idx])
    if 2 <= np.unique(formulas).size <= 30:
        return "formula", {str(f): idx[formulas == f] for f in np.unique(formulas)}
    return "", {}


def time_to_target(history: list[dict[str, Any]] | None, target: float, score: str = "force_mae") -> float | None:
    """Wall time (s) at which the validation ``score`` (force MAE) first was <= target; None if never."""
    for record in history or []:
        value = (record.get("val") or {}).get(score)
        if value is not None and value <= target:
            return float(record["wall_s"])
    return None


def _final_val(history, score: str = "force_mae") -> float | None:
    values = [(r.get("val") or {}).get(score) for r in history or []]
    values = [v for v in values if v is not None and np.isfinite(v)]
    return values[-1] if values else None


# ------------------------------------------------------------------ main
def compare(options: CompareOptions, console=None, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Everything of ``mlffbench compare``; writes the report folder and returns the numbers.

    Steps: the options checked and the runs planned (:func:`_plan_runs`); the parent MLflow
    run opened (:class:`ParentRun`); the runs given, reused, resumed or trained under it
    (:func:`_collect_runs`); each run's test errors (:func:`_accuracy`); each model's speed,
    measured here (:func:`_speed`); the numbers (:func:`_result`) and the report folder
    (:func:`_write_report`). An interruption (SIGINT/SIGTERM) ends the parent run KILLED, an
    error FAILED with the one-line reason as a tag."""

    given, fps, dataset = _plan_runs(options)
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out_dir = Path(options.out_dir) if options.out_dir else Path(options.runs_dir) / f"compare-{dataset}-{stamp}"
    parent = ParentRun.open(options, out_dir.name, log) if options.tracking else None
    try:
        run_dirs = (
            given
            if given is not None
            else _collect_runs(
                options, fps or {}, console=console, log=log, parent_run_id=parent.run_id if parent else None
            )
        )
        split_fp = check_same_split(run_dirs)
        _log(log, f"{len(run_dirs)} runs on split {split_fp[:12]}; evaluating on the test part")
        handles = [TrainedModel.from_run(d, with_data=True, data_dir=options.data_dir) for d in run_dirs]
        accuracy = _accuracy(handles, options, log)
        speed = _speed(handles, accuracy, options, log)
        result = _result(handles, accuracy, speed, split_fp, options, out_dir)
        result["tasks"] = task_figures(handles, options, log)
        _write_report(result, accuracy.parity, out_dir, options, run_dirs, parent)
    except BaseException as exc:
        if parent is not None:
            parent.end(exc)
        raise
    return result


def task_figures(handles, options: CompareOptions, log=None) -> dict[str, dict[str, dict[str, Any]]]:
    """The task results of each model's first run (``RUN_DIR/tasks/*/result.json``; the tasks
    of ``options.tasks`` run first): model -> task -> figure -> {value, unit}."""
    from mlffbench.tasks.base import read_results, run_task

    registry = get_registry()
    specs = [registry.task(name) for name in options.tasks]
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for h in handles:
        if h.spec.name in out or h.run_dir is None:
            continue
        for spec in specs:
            _log(log, f"task {spec.name} on {h.spec.name} ({h.run_dir})")
            run_task(
                spec, h, options.task_options.get(spec.name, {}), data_dir=options.data_dir, tracking=options.tracking
            )
        kept = read_results(h.run_dir)
        out[h.spec.name] = {
            task: {name: f.to_dict() for name, f in r.figures.items()} for task, r in sorted(kept.items())
        }
    return out


@dataclass
class ParentRun:
    """compare's parent MLflow run, opened before any run trains (they nest under it) and
    tagged with this process (host, pid): KILLED or FAILED when the compare stops early; one
    left RUNNING by a process that is gone (kill -9) is marked KILLED by the next compare in
    the store, and named by ``mlffbench runs --check``."""

    client: Any
    run_id: str

    @classmethod
    def open(cls, options: CompareOptions, name: str, log=None) -> ParentRun:
        import logging

        import mlflow  # noqa: F401 - first: it configures its loggers on import

        for logger in ("mlflow", "alembic"):
            logging.getLogger(logger).setLevel(logging.WARNING)
        uri = options.tracking_uri or default_tracking_uri(options.runs_dir)
        client, experiment_id = open_experiment(uri, options.runs_dir)
        for stale in run_records.dead_process_runs(client, experiment_id, "compare"):
            reason = f"{run_records.stale_reason(stale)} (found by a later compare)"
            end_run(client, stale.info.run_id, "KILLED", reason)
            _log(log, f"compare run '{stale.info.run_name}' was left RUNNING: {reason}; marked KILLED")
        tags = {run_records.KIND_TAG: "compare", "mlffbench.status": "running", **run_records.process_tags()}
        return cls(client, client.create_run(experiment_id, run_name=name, tags=tags).info.run_id)

    def end(self, exc: BaseException) -> None:

        _, status, reason = ending(exc)
        with contextlib.suppress(Exception):  # the store's own failure must not hide the first error
            end_run(self.client, self.run_id, status, reason)


@dataclass
class _Accuracy:
    """The test errors of every run (``per_run``), on the test part (``part``: the validation
    part where there is no test part), and what they were measured on."""

    part: str
    test: np.ndarray
    score: str  # force_mae, or energy_mae_per_atom for data without forces
    kind: str  # how the errors are broken down (groups_of)
    groups: dict[str, np.ndarray]
    order: list[str]  # the models, in the order of the runs
    per_run: list[dict[str, Any]]
    parity: dict[str, dict[str, np.ndarray]]  # the first run of each model: predicted vs reference
    target: float | None
    per_config: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # model -> per-seed per-config errors


def _accuracy(handles, options: CompareOptions, log) -> _Accuracy:
    """Each run's best state evaluated on the held-out configurations, and its time to the target."""

    data = handles[0].require_data()
    ds, split = data.dataset, data.split
    test = np.asarray(split.test) if len(split.test) else np.asarray(split.val)
    part = "test" if len(split.test) else "val"
    kind, groups = groups_of(ds, test)
    has_energy, has_forces = ds.energy is not None, ds.forces is not None
    if not (has_energy or has_forces):
        raise RunError(f"dataset '{data.card.name}' has neither energies nor forces to compare against")
    score = "force_mae" if has_forces else "energy_mae_per_atom"
    has_stress, stress_warning = stress_use(ds, data.card, handles[0].train_config)
    if stress_warning:
        _log(log, f"warning: {stress_warning}")
    per_run, parity = [], {}
    per_config: dict[str, list[dict[str, Any]]] = {}
    for h in handles:
        pred = h.predictions(test, stress=has_stress)
        per_run.append(_run_record(h, pred, part, groups, score, has_energy, has_forces))
        per_config.setdefault(h.spec.name, []).append(statistics.per_config_errors(pred, has_energy, has_forces))
        if h.spec.name not in parity:
            if has_forces:
                parity[h.spec.name] = {"pred": pred["force_pred"].reshape(-1), "ref": pred["force_ref"].reshape(-1)}
            else:
                parity[h.spec.name] = {
                    "pred": pred["energy_pred"] / pred["n_atoms"],
                    "ref": pred["energy_ref"] / pred["n_atoms"],
                }
    finals = [r["final_val_score"] for r in per_run if r["final_val_score"] is not None]
    target = (
        options.target_force_mae if options.target_force_mae and has_forces else (1.1 * max(finals) if finals else None)
    )
    for r, h in zip(per_run, handles, strict=True):
        r["time_to_target_s"] = time_to_target(h.history, target, score) if target else None
    order = list(dict.fromkeys(h.spec.name for h in handles))
    return _Accuracy(part, test, score, kind, groups, order, per_run, parity, target, per_config)


def _run_record(
    h,
    pred: dict[str, np.ndarray],
    part: str,
    groups: dict[str, np.ndarray],
    score: str,
    has_energy: bool,
    has_forces: bool,
) -> dict[str, Any]:
    """One run's row of ``compare.json``: its test errors (also per group), budget and history."""
    metrics = h.metrics or {}
    return {
        "model": h.spec.name,
        "seed": h.train_config.seed,
        "run_dir": str(h.run_dir),
        "split_fingerprint": h.require_data().split.fingerprint,
        "epochs": metrics.get("epochs"),
        "budget": budget_of(h.train_config.to_dict()),
        "n_params": h.backend.n_params(h.state),
        part: errors_of(pred, None, has_energy, has_forces),
        "groups": {g: errors_of(pred, c, has_energy, has_forces) for g, c in groups.items()},
        "train_configs_per_s_run": metrics.get("train_configs_per_s"),
        "wall_s_run": metrics.get("wall_s"),
        "final_val_score": _final_val(h.history, score),
        "history": [
            {"epoch": r["epoch"], "wall_s": r["wall_s"], "val_score": (r.get("val") or {}).get(score)}
            for r in h.history or []
        ],
        "device_run": metrics.get("device"),
    }


@dataclass
class _Speed:
    """Inference and training timings of each model (its first run), measured interleaved here."""

    first: dict[str, Any]  # model -> its first run's trained model
    inference: list[Any]  # in the order of _Accuracy.order
    training: list[Any]
    envs: dict[str, dict[str, str]]


def _speed(handles, accuracy: _Accuracy, options: CompareOptions, log) -> _Speed:
    """Inference at batch 1 and blocks of training steps, the models alternating call by call."""

    _log(log, "timing inference (batch 1) and training steps, models interleaved")
    first: dict[str, Any] = {}
    for h in handles:
        first.setdefault(h.spec.name, h)
    infer_w, train_w = [], []
    for name in accuracy.order:
        h = first[name]
        one = h.require_data().batcher.make_batch(accuracy.test[:1], batch_size=1)
        infer_w.append(timing.inference_workload(h.backend, h.state, one, f"{name} inference b1"))
        train_w.append(
            timing.training_workload(
                h.backend, h.state, training_batches(h, options.train_steps), h.train_config.lr[1], f"{name} training"
            )
        )
    infer_t = timing.measure_interleaved(infer_w, repeats=options.repeats, warmup_min_s=WARMUP_MIN_S)
    train_t = timing.measure_interleaved(train_w, repeats=options.repeats, warmup_min_s=WARMUP_MIN_S)
    return _Speed(first, infer_t, train_t, {name: first[name].backend.environment() for name in accuracy.order})


def _per_model(accuracy: _Accuracy, speed: _Speed) -> dict[str, Any]:
    """Mean ± standard deviation over seeds of each model's errors, its speed, and the speed
    ratios to the first model."""
    part, models = accuracy.part, {}
    for k, name in enumerate(accuracy.order):
        rs = [r for r in accuracy.per_run if r["model"] == name]
        models[name] = {
            "seeds": [r["seed"] for r in rs],
            "runs": [r["run_dir"] for r in rs],
            "n_params": rs[0]["n_params"],
            "batch_size": speed.first[name].train_config.batch_size,
            part: {key: timing.summary([r[part].get(key) for r in rs]) for key in METRIC_KEYS},
            "groups": {
                g: {key: timing.summary([r["groups"][g].get(key) for r in rs]) for key in METRIC_KEYS}
                for g in accuracy.groups
            },
            "time_to_target_s": timing.summary([r["time_to_target_s"] for r in rs]),
            "reached_target": sum(r["time_to_target_s"] is not None for r in rs),
            "train_configs_per_s_runs": timing.summary([r["train_configs_per_s_run"] for r in rs]),
            "inference": speed.inference[k].to_dict(),
            "training": speed.training[k].to_dict(),
            "device": speed.envs[name].get("device", ""),
        }
    base = models[accuracy.order[0]]
    for m in models.values():
        m["train_speed_ratio"] = m["training"]["configs_per_s"] / base["training"]["configs_per_s"]
        m["inference_speed_ratio"] = base["inference"]["us_per_atom_step"] / m["inference"]["us_per_atom_step"]
    return models


def _result(
    handles, accuracy: _Accuracy, speed: _Speed, split_fp: str, options: CompareOptions, out_dir: Path
) -> dict[str, Any]:
    """The numbers of the comparison (``compare.json``)."""
    data = handles[0].require_data()
    per_run = accuracy.per_run
    models = _per_model(accuracy, speed)
    warnings = [
        f"'{name}' was compared with a single seed: its seed-to-seed spread is unknown and the paired "
        "intervals cover the test configurations only (use --seeds 3)"
        for name in accuracy.order
        if len(models[name]["seeds"]) < 2
    ]
    return {
        "dataset": data.card.name,
        "split_fingerprint": split_fp,
        "dataset_fingerprint": data.split.dataset_fingerprint,
        "part": accuracy.part,
        "split_sizes": dict(data.split.sizes),
        "models": models,
        "order": accuracy.order,
        "paired": statistics.pairwise(accuracy.per_config, accuracy.order),
        "paired_method": statistics.METHOD,
        "warnings": warnings,
        "runs": per_run,
        "score": accuracy.score,
        "target": accuracy.target,
        "group_kind": accuracy.kind,
        "budget": {
            "given": sorted({r["budget"] for r in per_run}),  # e.g. ["180 s"] or ["20 epochs"]
            "epochs": sorted({r["epochs"] for r in per_run if r["epochs"] is not None}),  # epochs trained
            "wall_s": {r["run_dir"]: r["wall_s_run"] for r in per_run},
        },
        "seeds_meaning": "initialisation and batch-order seed (TrainConfig.seed); one split (split seed fixed)",
        "machine": timing.machine_fingerprint([e.get("device", "") for e in speed.envs.values()]),
        "protocol": {
            "repeats": options.repeats,
            "warmup_calls": 1,
            "warmup_min_s": WARMUP_MIN_S,
            "train_steps_per_call": options.train_steps,
            "interleaved": True,
        },
        "memory": {"peak_host_bytes": timing.peak_host_memory_bytes()},
        "out_dir": str(out_dir),
    }


def _write_report(
    result: dict[str, Any],
    parity,
    out_dir: Path,
    options: CompareOptions,
    run_dirs: list[Path],
    parent: ParentRun | None,
) -> None:
    """Plots, ``report.md`` and ``compare.json`` in ``out_dir``; all of it into the parent run,
    which ends FINISHED with the compared runs as its children."""

    out_dir.mkdir(parents=True, exist_ok=True)
    result["plots"] = compare_report.plots(result, parity, out_dir)
    result["report"] = str(compare_report.markdown(result, out_dir / "report.md"))
    result["report_html"] = str(compare_html.write(result, out_dir / "report.html"))
    runs.write_json(out_dir / "compare.json", result)
    if parent is not None:
        result["mlflow_run_id"] = compare_report.log_mlflow(result, out_dir, options, run_dirs, run_id=parent.run_id)
        runs.write_json(out_dir / "compare.json", result)
