"""Run (part of) a study: one ``mlffbench tune`` worker.

Each worker runs ``trials`` trials (fewer when ``study_trials`` caps the whole study), so N
workers started with ``--trials T`` add N·T trials to the study. A worker that starts first
marks as FAIL the trials of killed workers (their heartbeat stopped, or their process on this
host is gone), settles their run records (run directory failed, MLflow run FAILED), then
carries on; every finished trial stays in the database.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlffbench import settings
from mlffbench.data.loading import load_dataset
from mlffbench.data.user import resolve_card
from mlffbench.errors import ConfigError
from mlffbench.plugin.manager import get_registry
from mlffbench.runs import record as run_records
from mlffbench.runs.experiment import resolve_configs, stress_use
from mlffbench.runs.record import ending
from mlffbench.runs.tracking import default_tracking_uri, end_run, flatten, open_experiment
from mlffbench.training.callbacks import StopKind, stop_kind
from mlffbench.training.config import TrainConfig
from mlffbench.tuning import report
from mlffbench.tuning.objective import FAIL_REASON, TrialDiverged, TrialRunner, tag_trial_runs
from mlffbench.tuning.settings import (
    DEFAULT_TRIAL_BUDGET_S,
    TRIAL_OVERHEAD_S,
    TuneSettings,
    default_reports_per_epoch,
    merge,
)
from mlffbench.tuning.storage import (
    CREATOR_ATTR,
    default_storage,
    fail_killed_workers,
    make_sampler,
    naming_worker,
    open_storage,
    open_study,
    quiet_optuna,
    worker_gone,
)
from mlffbench.tuning.storage import _redact as redact

PARENT_ATTR = "mlflow_parent_run_id"
DATA_DIR_ATTR = "data_dir"
MAX_CONSECUTIVE_ERRORS = 5


@dataclass
class TuneOptions:
    """One worker's command line (``None``: take it from the stored study / the defaults)."""

    model: str | None
    dataset: str | None
    study: str | None = None
    storage: str | None = None
    trials: int = 20
    study_trials: int = 0
    objectives: tuple[str, ...] | None = None
    epochs: int | None = None
    trial_timeout: float | None = None
    max_configs: int | None = None
    reports_per_epoch: int | None = None
    pruner: str | None = None
    sampler: str = "tpe"
    seed: int | None = None
    params: dict[str, Any] = field(default_factory=dict)  # --param: search-space values or model options
    train_params: dict[str, Any] = field(default_factory=dict)  # --train
    heartbeat: int = 60
    data_dir: Path | None = None
    runs_dir: Path = Path("runs")
    out_dir: Path | None = None
    tracking_uri: str | None = None
    tracking: bool = True
    download: bool = True
    top: int = 10


def _split_params(spec, params: dict[str, Any], train_params: dict[str, Any]):
    """``--param`` values → fixed search-space values or fixed model options; ``--train`` → training."""
    import dataclasses

    space = spec.search_space
    model_fields = {f.name for f in dataclasses.fields(spec.config_class)}
    dims, model = {}, {}
    for key, value in params.items():
        if key in space.dimensions:
            dims[key] = value
        elif key in model_fields:
            model[key] = value
        else:
            raise ConfigError(
                f"--param '{key}' is neither a search-space parameter of '{spec.name}' "
                f"({', '.join(space.dimensions)}) nor a model option ({', '.join(sorted(model_fields))})"
            )
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(train_params) - train_fields)
    if unknown:
        raise ConfigError(f"unknown training option(s) {', '.join(unknown)} (known: {', '.join(sorted(train_fields))})")
    return dims, model, dict(train_params)


def _settings_from(options: TuneOptions, spec) -> tuple[TuneSettings | None, dict[str, Any]]:
    """The settings a new study would get, and the values the user gave explicitly."""
    dims, model, train = _split_params(spec, options.params, options.train_params) if spec else ({}, {}, {})
    given: dict[str, Any] = {
        "model": options.model,
        "dataset": options.dataset,
        "objectives": options.objectives,
        "epochs": options.epochs,
        "trial_timeout": options.trial_timeout,
        "max_configs": options.max_configs,
        "reports_per_epoch": options.reports_per_epoch,
        "pruner": options.pruner,
        "fixed_dims": dims or None,
        "fixed_model": model or None,
        "fixed_train": train or None,
    }
    if not options.model or not options.dataset:
        return None, given
    settings = TuneSettings(
        model=options.model,
        dataset=options.dataset,
        objectives=options.objectives or ("accuracy",),
        epochs=options.epochs,
        trial_timeout=_trial_budget(options),
        max_configs=options.max_configs or 0,
        reports_per_epoch=options.reports_per_epoch or default_reports_per_epoch(options.epochs),
        pruner=options.pruner or "median",
        fixed_dims=dims,
        fixed_model=model,
        fixed_train=train,
    )
    return settings, given


def _budget_text(settings: TuneSettings, options: TuneOptions, n_trials: int) -> str:
    """The per-trial budget and what it means for this worker's trials, said when it starts."""
    if settings.trial_timeout and settings.epochs is None:
        default = options.trial_timeout is None and options.epochs is None and options.study is None
        return (
            f"budget per trial: {settings.trial_timeout:g} s of training (compilation and validation excluded"
            + ("; the default, --epochs or --trial-timeout to change" if default else "")
            + f"); {n_trials} trials "
            f"take at most about {n_trials * (settings.trial_timeout + TRIAL_OVERHEAD_S) / 60:.0f} min with "
            f"compilation and evaluation, less with the {settings.pruner} pruner"
        )
    limit = f", at most {settings.trial_timeout:g} s" if settings.trial_timeout else ""
    epochs = f"{settings.epochs} epochs" if settings.epochs is not None else "the model's default epochs"
    return f"budget per trial: {epochs}{limit}; {n_trials} trials"


def _progress_text(progress: dict[str, Any]) -> str:
    """``k/N trials, elapsed, about T left`` from the mean duration of this worker's trials so far."""
    done, planned = progress["done"], progress["planned"]
    elapsed = time.monotonic() - progress["start"]
    text = f"{done}/{planned} trials, {elapsed / 60:.1f} min"
    if 0 < done < planned:
        text += f", about {(planned - done) * elapsed / done / 60:.0f} min left"
    return text


def _trial_budget(options: TuneOptions) -> float:
    """--trial-timeout; without it and without --epochs, the default time budget per trial."""
    if options.trial_timeout is not None:
        return options.trial_timeout
    return DEFAULT_TRIAL_BUDGET_S if options.epochs is None else 0.0


def _validate(runner, card) -> None:
    """The data must load and the fixed values must give valid configs: checked once, before
    any trial runs (configs on the lower end of every free dimension)."""

    ds = load_dataset(card, data_dir=runner.data_dir, download=runner.download)

    def typical(dim):
        return dim.choices[0] if hasattr(dim, "choices") else dim.low

    space = runner.spec.search_space
    values = {n: runner.settings.fixed_dims.get(n, typical(d)) for n, d in space.dimensions.items()}
    try:
        model, train = runner.configs(values)
    except (TypeError, ValueError, KeyError) as exc:
        raise ConfigError(f"the fixed search-space values do not fit '{runner.spec.name}': {exc}") from None
    _, train_config = resolve_configs(runner.spec, card, model, train)
    stress_use(ds, card, train_config)  # -t stress_weight=... needs stress in a declared unit


@dataclass
class _Worker:
    """This worker's study (created or joined), its settings and trial runner, and its MLflow
    parent run once tracking started."""

    name: str
    storage_url: str
    study: Any
    settings: TuneSettings
    spec: Any
    runner: Any
    created: bool
    stale: list[int]  # trials of stopped workers this worker marked failed
    tracking_uri: str | None = None
    parent: str | None = None


def tune(options: TuneOptions, log=None) -> dict[str, Any]:
    """Run this worker's trials and return the study summary (see :mod:`mlffbench.tuning.report`).

    Steps: check the values and open the study (:func:`_open_worker`, failing the trials of
    killed workers), start tracking (:func:`_start_tracking`), run the trials
    (:func:`_run_trials`), summarise (:func:`_summarize`). An interruption (SIGINT/SIGTERM)
    or an error ends the study's MLflow run KILLED or FAILED with the reason; the next
    worker sets it running again."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # our own line per trial says what happened
    say = log or (lambda text: None)
    worker = _open_worker(options)
    say(
        f"study '{worker.name}' ({'created' if worker.created else 'joined'}) in {_redact(worker.storage_url)}: "
        f"{worker.spec.name} on {worker.settings.dataset}, objective {','.join(worker.settings.objectives)}, "
        f"{len(worker.study.trials)} trials so far"
        + (f"; trials {worker.stale} of stopped workers marked failed" if worker.stale else "")
    )
    _start_tracking(worker, options)
    try:
        _run_trials(worker, options, say)
        summary = _summarize(worker, options)
    except BaseException as exc:
        _end_parent(worker, exc)
        raise
    if worker.parent and worker.tracking_uri:
        _finish_parent(worker.parent, worker.tracking_uri, summary)
    return summary


def _plan(options: TuneOptions) -> tuple[Any, TuneSettings | None, dict[str, Any], str]:
    """(the model's spec or None, the settings a new study would get, the values given, the
    study's name), checked before the study exists: a bad value must not leave a study behind."""

    if options.trials < 0 or options.study_trials < 0:
        raise ConfigError("--trials and --study-trials must be >= 0")
    spec = get_registry().model(options.model) if options.model else None
    if spec is not None and spec.search_space is None:
        raise ConfigError(f"model '{spec.name}' has no search space (its plugin registers none)")
    dataset_name = resolve_card(options.dataset).name if options.dataset else options.dataset
    new_settings, given = _settings_from(options, spec)
    if options.study is None and new_settings is None:
        raise ConfigError("give MODEL and --dataset to start a study, or --study NAME to resume one")
    name = options.study or f"{options.model}-{dataset_name}-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
    if new_settings is not None:
        probe = TrialRunner(
            spec=spec,
            settings=new_settings,
            study_name=name,
            runs_dir=Path(options.runs_dir),
            data_dir=options.data_dir,
            download=options.download,
        )
        _validate(probe, resolve_card(new_settings.dataset))
    return spec, new_settings, given, name


def _open_worker(options: TuneOptions) -> _Worker:
    """Create or join the study and make this worker's trial runner; the trials of stopped
    workers (heartbeat expired, or process gone on this host) are marked failed first."""
    import optuna

    spec, new_settings, given, name = _plan(options)
    runs_dir = Path(options.runs_dir)
    storage_url = options.storage or default_storage(runs_dir)
    storage = open_storage(storage_url, options.heartbeat)
    sampler = naming_worker(make_sampler(options.sampler, options.seed))
    with quiet_optuna():
        study, settings, created = open_study(storage, name, new_settings, given, sampler)
        spec = spec or get_registry().model(settings.model)
        if spec.search_space is None:
            raise ConfigError(f"model '{spec.name}' has no search space")
        before = {t.number for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.RUNNING}
        if options.model is None and (options.params or options.train_params):
            dims, model, train = _split_params(spec, options.params, options.train_params)
            merge(
                settings, {"fixed_dims": dims or None, "fixed_model": model or None, "fixed_train": train or None}, name
            )
        runner = TrialRunner(
            spec=spec,
            settings=settings,
            study_name=name,
            runs_dir=runs_dir / f"tune-{name}",
            data_dir=_data_dir(study, options.data_dir, created),
            download=options.download,
        )
        if new_settings is None:
            _validate(runner, resolve_card(settings.dataset))
        fail_killed_workers(study, grace_s=2 * options.heartbeat)  # first: at once, and with the reason
        optuna.storages.fail_stale_trials(study)
        stale = [
            t.number
            for t in study.get_trials(deepcopy=False)
            if t.number in before and t.state == optuna.trial.TrialState.FAIL
        ]
    return _Worker(
        name=name,
        storage_url=storage_url,
        study=study,
        settings=settings,
        spec=spec,
        runner=runner,
        created=created,
        stale=stale,
    )


def _start_tracking(worker: _Worker, options: TuneOptions) -> None:
    """The study's MLflow run (trials nest under it), and the records of the stopped workers'
    trials settled: their MLflow runs tagged FAIL, their run directories (stale: the process
    is gone) marked failed with their MLflow runs FAILED."""

    if options.tracking:
        runs_dir = Path(options.runs_dir)
        worker.tracking_uri = options.tracking_uri or default_tracking_uri(runs_dir)
        worker.parent = _parent_run(
            worker.study, worker.name, worker.settings, worker.tracking_uri, runs_dir, worker.created
        )
        worker.runner.tracking_uri, worker.runner.parent_run_id = worker.tracking_uri, worker.parent
    for number in worker.stale:
        reason = worker.study.trials[number].user_attrs.get(FAIL_REASON) or "its worker stopped (heartbeat expired)"
        tag_trial_runs(worker.tracking_uri, worker.name, number, {"optuna.state": "FAIL", "optuna.reason": reason})
    trial_runs = Path(worker.runner.runs_dir)
    for run_dir in sorted(trial_runs.iterdir()) if trial_runs.is_dir() else []:
        if run_records.is_run_dir(run_dir):
            run_records.settle_stale(
                run_dir, "its tune worker was killed; the trial ended FAIL", tags={"optuna.state": "FAIL"}
            )


def _run_trials(worker: _Worker, options: TuneOptions, say) -> None:
    """This worker's share of the trials (``--trials``, capped by ``--study-trials``), one line each."""
    import optuna

    study = worker.study
    progress = {"done": 0, "start": time.monotonic(), "planned": 0}
    callbacks = [_after_trial(say, progress)]
    n_trials = options.trials
    if options.study_trials:
        states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
        done = sum(1 for t in study.get_trials(deepcopy=False, states=states))
        n_trials = (
            max(0, min(n_trials, options.study_trials - done))
            if options.trials
            else max(0, options.study_trials - done)
        )
        callbacks.append(optuna.study.MaxTrialsCallback(options.study_trials, states=states))
    progress["planned"] = n_trials
    say(_budget_text(worker.settings, options, n_trials))
    _silence_libraries()
    if n_trials:
        with quiet_optuna():
            study.optimize(worker.runner, n_trials=n_trials, catch=(Exception, TrialDiverged), callbacks=callbacks)


def _after_trial(say, progress: dict[str, Any]):
    """The callback after each trial: its line (state, values, reason, progress); the study
    stops after MAX_CONSECUTIVE_ERRORS trials in a row failed with errors (not divergence)."""

    errors = {"consecutive": 0}

    def after_trial(study_, trial) -> None:
        _release_memory()
        state = trial.state.name
        value = trial.values
        reason = trial.user_attrs.get(FAIL_REASON) or trial.user_attrs.get("pruned_reason", "")
        shown = ", ".join(f"{v:.5g}" for v in value) if value else ""
        progress["done"] += 1
        say(
            f"trial {trial.number}: {state}"
            + (f" {shown}" if shown else "")
            + (f" — {reason}" if reason else "")
            + f" [{_progress_text(progress)}]"
        )
        if state == "FAIL" and stop_kind(str(reason)) is not StopKind.DIVERGED:  # an error, not a diverged trial
            errors["consecutive"] += 1
            if errors["consecutive"] >= MAX_CONSECUTIVE_ERRORS:
                say(f"stopping: {MAX_CONSECUTIVE_ERRORS} trials in a row failed with errors (last: {reason})")
                study_.stop()
        else:
            errors["consecutive"] = 0

    return after_trial


def _summarize(worker: _Worker, options: TuneOptions) -> dict[str, Any]:
    """The study summary (:func:`mlffbench.tuning.report.summarize`: best trials, best config
    and plots under ``--out``, default RUNS_DIR/tune-STUDY)."""

    out_dir = Path(options.out_dir) if options.out_dir else Path(options.runs_dir) / f"tune-{worker.name}"
    with quiet_optuna():
        summary = report.summarize(worker.study, worker.spec, worker.settings, worker.runner, out_dir, top=options.top)
    summary.update({"study": worker.name, "storage": _redact(worker.storage_url), "stale_marked_failed": worker.stale})
    return summary


def _end_parent(worker: _Worker, exc: BaseException) -> None:
    """The study's MLflow run after an interruption (KILLED) or an error (FAILED, the reason as a tag)."""
    if not (worker.parent and worker.tracking_uri):
        return
    import mlflow

    _, status, reason = ending(exc)
    with contextlib.suppress(Exception):  # the store's own failure must not hide the first error
        end_run(mlflow.MlflowClient(worker.tracking_uri), worker.parent, status, reason)


def _data_dir(study, given: Path | None, created: bool) -> Path | None:
    """``--data-dir``; when left out on resuming, the creator's one if it exists here (and no
    data folder is configured: $MLFFBENCH_DATA_DIR or a settings file)."""

    if given is not None:
        if created:
            study.set_user_attr(DATA_DIR_ATTR, str(Path(given).resolve()))
        return given
    stored = study.user_attrs.get(DATA_DIR_ATTR)
    if stored and settings.effective()["data_dir"].source == "built-in" and Path(stored).is_dir():
        return Path(stored)
    return None


def _release_memory() -> None:
    """Drop the compiled programs of the finished trial: every trial builds a new model, and a
    long study in one process would otherwise keep all of them (JAX's jit caches)."""
    import gc
    import sys

    jax = sys.modules.get("jax")  # never imports jax: only when a backend already did
    if jax is not None and hasattr(jax, "clear_caches"):
        jax.clear_caches()
    gc.collect()


def _redact(url: str) -> str:

    return redact(url)


def _silence_libraries() -> None:
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _parent_run(study, name: str, settings: TuneSettings, tracking_uri: str, runs_dir: Path, created: bool) -> str:
    """The study's MLflow run (created by the worker that created the study, or by a joining
    one when the creator is gone without making it); trials nest under it. Another RUNNING
    run of the study (its maker killed before recording it in the study) ends KILLED."""
    import mlflow  # noqa: F401 - first: it configures its loggers on import

    _silence_libraries()
    client, experiment_id = open_experiment(tracking_uri, runs_dir)
    deadline = time.monotonic() + 60
    creator = study.user_attrs.get(CREATOR_ATTR)
    while not created:
        run_id = study.user_attrs.get(PARENT_ATTR) or _reload_attr(study, PARENT_ATTR)
        if run_id:
            client.update_run(run_id, status="RUNNING")
            _end_orphans(client, experiment_id, name, run_id)
            return run_id
        if time.monotonic() > deadline or (creator and worker_gone(creator)):
            break  # the creator died before making it: make it here
        time.sleep(0.5)
    run_id = client.create_run(
        experiment_id, run_name=f"tune-{name}", tags={"mlffbench.study": name, "mlffbench.role": "study"}
    ).info.run_id
    study.set_user_attr(PARENT_ATTR, run_id)
    params = flatten("", {"study": name, **settings.to_dict()}, {})
    for key, value in params.items():
        client.log_param(run_id, key, str(value)[:6000])
    _end_orphans(client, experiment_id, name, run_id)
    return run_id


def _end_orphans(client, experiment_id: str, name: str, run_id: str) -> None:

    query = f"tags.`mlffbench.study` = '{name}' and tags.`mlffbench.role` = 'study' and attributes.status = 'RUNNING'"
    for run in client.search_runs([experiment_id], filter_string=query, max_results=100):
        if run.info.run_id != run_id:
            end_run(client, run.info.run_id, "KILLED", f"its worker was killed before recording it in study '{name}'")


def _reload_attr(study, key: str):
    import optuna

    return optuna.load_study(study_name=study.study_name, storage=study._storage).user_attrs.get(key)


def _finish_parent(run_id: str, tracking_uri: str, summary: dict[str, Any]) -> None:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    for key in ("n_complete", "n_pruned", "n_fail", "n_trials"):
        client.log_metric(run_id, key, float(summary[key]))
    best = summary.get("best")
    if best and best.get("values") and all(math.isfinite(v) for v in best["values"]):
        client.log_metric(run_id, "best_val_force_mae", float(best["values"][0]))
    if summary.get("best_config"):
        client.set_tag(run_id, "best_config", str(summary["best_config"]))
    client.set_terminated(run_id, "FINISHED")  # a worker that joins later sets it RUNNING again
