"""The study database, samplers and pruners.

Any Optuna RDB URL works (``sqlite:///...``, ``postgresql://user@host:port/db``); the default
is ``<runs-dir>/optuna.db``. Workers send a heartbeat every ``heartbeat`` seconds while a
trial runs; a trial whose heartbeat is older than twice that (its worker was killed, or its
machine lost) is marked FAIL by the next worker that starts or asks for a trial, so a study
never waits for a trial that nobody runs.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from mlffbench import settings
from mlffbench.errors import ConfigError
from mlffbench.runs.record import host, pid_alive
from mlffbench.tuning.objective import FAIL_REASON
from mlffbench.tuning.settings import ATTR, TuneSettings, merge

DEFAULT_DB = "optuna.db"


def default_storage(runs_dir: Path) -> str:
    """The configured Optuna storage (:mod:`mlffbench.settings`), else an SQLite file in ``runs_dir``."""
    return settings.get("storage") or f"sqlite:///{Path(runs_dir).resolve() / DEFAULT_DB}"


@contextmanager
def quiet_optuna() -> Iterator[None]:
    """Optuna's experimental-API warnings (heartbeat, matplotlib plots) are not the user's business."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


def open_storage(url: str, heartbeat: int):
    """An ``RDBStorage`` with heartbeats; a bad URL or an unreachable server is a one-line error."""
    import optuna

    if heartbeat < 1:
        raise ConfigError(f"--heartbeat must be >= 1 second, got {heartbeat}")
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
        engine_kwargs: dict[str, Any] = {"connect_args": {"timeout": 120}}
    else:
        engine_kwargs = {"pool_pre_ping": True}
    from sqlalchemy.exc import ArgumentError

    error: Exception | None = None
    for attempt in range(4):
        try:
            with quiet_optuna():
                return optuna.storages.RDBStorage(
                    url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat, grace_period=2 * heartbeat
                )
        except (ImportError, ArgumentError) as exc:  # a bad URL, an unknown dialect, a missing driver
            error = exc
            break
        except Exception as exc:  # noqa: BLE001
            # workers that start together on an empty database race to create its tables
            # (the loser gets a unique-constraint violation); the tables exist on the next try
            error = exc
            time.sleep(0.5 + attempt)
    text = str(error).strip()
    first = text.splitlines()[0] if text else type(error).__name__
    raise ConfigError(f"cannot open study storage '{_redact(url)}': {first}") from None


def _redact(url: str) -> str:
    """The URL without a password."""
    if "://" in url and "@" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}" if ":" in creds else url
    return url


def make_sampler(name: str, seed: int | None):
    import optuna

    with quiet_optuna():
        if name == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if name == "tpe":
            # constant_liar: parallel workers do not all sample around the same running trial
            return optuna.samplers.TPESampler(seed=seed, constant_liar=True, n_startup_trials=10)
    raise ConfigError(f"unknown sampler '{name}' (known: tpe, random)")


WORKER_ATTR = "worker"  # a trial's "HOST:PID"
CREATOR_ATTR = "creator"  # the study's: "HOST:PID" of the worker that created it
ADOPT_AFTER_S = 5.0


def worker_name() -> str:

    return f"{host()}:{os.getpid()}"


def worker_gone(name: str) -> bool:
    """Whether the worker ``HOST:PID`` is a process of this host that no longer exists."""

    worker_host, _, pid = str(name).rpartition(":")
    return worker_host == host() and pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid))


def naming_worker(sampler):
    """``sampler``, also naming this worker (the trial's ``worker`` attribute, ``HOST:PID``) on
    every trial the moment it is created, before the objective runs: a worker killed at any
    later moment leaves a trial :func:`fail_killed_workers` can tell is nobody's."""
    import optuna

    class Naming(optuna.samplers.BaseSampler):
        def __init__(self, inner) -> None:
            self.inner = inner

        def __getattr__(self, name: str):  # the wrapped sampler's other attributes
            if name == "inner":
                raise AttributeError(name)
            return getattr(self.inner, name)

        def infer_relative_search_space(self, study, trial):
            return self.inner.infer_relative_search_space(study, trial)

        def sample_relative(self, study, trial, search_space):
            return self.inner.sample_relative(study, trial, search_space)

        def sample_independent(self, study, trial, param_name, param_distribution):
            return self.inner.sample_independent(study, trial, param_name, param_distribution)

        def before_trial(self, study, trial) -> None:
            study._storage.set_trial_user_attr(trial._trial_id, WORKER_ATTR, worker_name())
            self.inner.before_trial(study, trial)

        def after_trial(self, study, trial, state, values) -> None:
            self.inner.after_trial(study, trial, state, values)

        def reseed_rng(self) -> None:
            self.inner.reseed_rng()

    return Naming(sampler)


def fail_killed_workers(study, grace_s: float) -> list[int]:
    """Mark FAIL (with the reason) the RUNNING trials whose worker is gone: its process on this
    host is dead (kill -9, a crash: at once, not a heartbeat's grace period later), or the
    trial has no worker name after ``grace_s`` (killed between creating and naming it, which
    Optuna's heartbeat never catches: such a trial has no heartbeat). Returns their numbers."""
    import datetime as _dt

    import optuna

    now, failed = _dt.datetime.now(), []
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        worker = str(trial.user_attrs.get(WORKER_ATTR, ""))
        if worker and worker_gone(worker):
            reason = "worker process {1} on {0} was killed".format(*worker.rsplit(":", 1))
        elif not worker and trial.datetime_start and (now - trial.datetime_start).total_seconds() > grace_s:
            reason = "its worker was killed before it started"
        else:
            continue
        try:
            study._storage.set_trial_user_attr(trial._trial_id, FAIL_REASON, reason)
            study._storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
        except (RuntimeError, optuna.exceptions.OptunaError):
            continue  # another worker marked it first
        failed.append(trial.number)
    return failed


def make_pruner(settings: TuneSettings):
    """Median or Hyperband over the validation reports (``reports_per_epoch`` per epoch)."""
    import optuna

    if settings.multi or settings.pruner == "none":
        return optuna.pruners.NopPruner()  # Optuna cannot prune multi-objective trials
    total = settings.epochs * settings.reports_per_epoch if settings.epochs else None
    if settings.pruner == "median":
        # the first report (an untrained model) says little: never prune on it when there are more
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1 if (total or 3) > 2 else 0)
    return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=total or "auto", reduction_factor=3)


def open_study(
    storage, name: str, given: TuneSettings | None, given_values: dict[str, Any], sampler, wait_s: float = 60.0
):
    """Create study ``name`` or join it; returns ``(study, settings, created)``.

    Creation is decided by the database (one worker wins ``create_study``); a worker that
    joins waits up to ``wait_s`` for the creator to store the settings. A joining worker with
    settings of its own stores them instead (and counts as the creator) when the creator was
    killed before storing its own: its process on this host is gone, or it never named itself
    within ``ADOPT_AFTER_S``.
    """
    import optuna

    try:
        existing = storage.get_study_id_from_name(name)
    except KeyError:
        existing = None
    if existing is None:
        if given is None:
            raise ConfigError(f"no study '{name}' in the storage; give MODEL and --dataset to start it")
        directions: list[Literal["minimize", "maximize"]] = ["minimize"] * len(given.objectives)
        try:
            study = optuna.create_study(
                storage=storage, study_name=name, directions=directions, sampler=sampler, pruner=make_pruner(given)
            )
            study.set_user_attr(CREATOR_ATTR, worker_name())
            study.set_user_attr(ATTR, given.to_dict())
            return study, given, True
        except optuna.exceptions.DuplicatedStudyError:
            pass  # another worker created it first: join
    start = time.monotonic()
    while True:
        study = optuna.load_study(study_name=name, storage=storage, sampler=sampler)
        stored = study.user_attrs.get(ATTR)
        if stored is not None:
            break
        creator = study.user_attrs.get(CREATOR_ATTR)
        if given is not None and (
            worker_gone(creator) if creator else time.monotonic() - start > min(wait_s, ADOPT_AFTER_S)
        ):
            study.set_user_attr(CREATOR_ATTR, worker_name())
            study.set_user_attr(ATTR, given.to_dict())
            study.pruner = make_pruner(given)
            return study, given, True
        if time.monotonic() > start + wait_s:
            raise ConfigError(f"study '{name}' exists but holds no mlffbench settings (not made by `mlffbench tune`?)")
        time.sleep(0.5)
    settings = merge(TuneSettings.from_dict(stored), given_values, name)
    study.pruner = make_pruner(settings)
    return study, settings, False
