"""One trial: sample the plugin's search space, train with ``train_and_evaluate``, report.

The training loop reports the validation force MAE (energy MAE per atom for data without
forces) to the trial after every epoch, and ``reports_per_epoch - 1`` times within it; the
pruner may then stop the run (:class:`~mlffbench.training.callbacks.StopTraining`, so the
loop ends cleanly and the run record is still written). A non-finite validation error or
training loss ends the trial as FAIL with the reason in the trial's ``fail_reason``
attribute, and the study goes on.
"""

from __future__ import annotations

import math
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlffbench.errors import ConfigError
from mlffbench.runs import directory as runs
from mlffbench.runs.experiment import RunOptions, train_and_evaluate
from mlffbench.runs.trained import TrainedModel
from mlffbench.speed import timing
from mlffbench.training.callbacks import Callback, StopKind, StopReason, StopTraining
from mlffbench.tuning.settings import TuneSettings

FAIL_REASON = "fail_reason"


class TrialDiverged(Exception):
    """The trial's training diverged (non-finite loss or validation error)."""


class PruningCallback(Callback):
    """Reports validation errors to the Optuna trial, stops training when it should be pruned
    or when the errors stop being finite."""

    def __init__(self, trial, reports_per_epoch: int, prune: bool) -> None:
        self.trial = trial
        self.per_epoch = max(1, int(reports_per_epoch))
        self.prune = prune
        self.reports = 0
        self.stopped = ""

    def _boundaries(self, steps: int) -> set[int]:
        return {round(k * steps / self.per_epoch) for k in range(1, self.per_epoch)} - {0, steps}

    def evaluate_at(self, epoch: int, step: int, steps: int) -> bool:
        return not self.stopped and step in self._boundaries(steps)

    def on_evaluation(self, epoch: int, step: int, steps: int, val: dict[str, Any]) -> None:
        self._report(epoch, val, f"epoch {epoch + 1} step {step}/{steps}")

    def on_epoch_end(self, epoch: int, record: dict[str, Any]) -> None:
        if self.stopped:
            return
        if not math.isfinite(record["train_loss"]):
            self._stop(StopKind.DIVERGED, f"diverged: non-finite training loss in epoch {epoch + 1}")
        self._report(epoch, record["val"], f"epoch {epoch + 1}")

    def _report(self, epoch: int, val: dict[str, Any], where: str) -> None:
        score = "force_mae" if "force_mae" in val else "energy_mae_per_atom"
        value = val.get(score, math.nan)
        if not math.isfinite(value):
            self._stop(StopKind.DIVERGED, f"diverged: non-finite validation {score} at {where}")
        step = self.reports
        self.reports += 1
        if not self.prune:
            return
        self.trial.report(float(value), step)
        if self.trial.should_prune():
            self._stop(StopKind.PRUNED, f"pruned at {where}: validation {score} {value:.4g}")

    def _stop(self, kind: StopKind, reason: str) -> None:
        self.stopped = reason
        raise StopTraining(reason, kind=kind)


@dataclass
class TrialRunner:
    """Everything a trial needs besides the trial itself (one per worker)."""

    spec: Any  # the model's ModelSpec
    settings: TuneSettings
    study_name: str
    runs_dir: Path  # where the trials' run directories go
    data_dir: Path | None = None
    tracking_uri: str | None = None
    parent_run_id: str | None = None
    download: bool = True
    extra_train: dict[str, Any] = field(default_factory=dict)

    def configs(self, values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Model and training overrides of one trial (search-space values → configs, then the
        user's fixed values, then the study's budget)."""
        model, train = self.spec.search_space.overrides(values)
        model.update(self.settings.fixed_model)
        train.update(self.settings.fixed_train)
        if self.settings.epochs is not None:
            train["epochs"] = self.settings.epochs
        if self.settings.trial_timeout:
            train["max_time_s"] = self.settings.trial_timeout
            if self.settings.epochs is None:  # a time budget alone: train until it is spent
                train["epochs"] = 0
        if self.settings.max_configs:
            train["max_configs"] = self.settings.max_configs
        return model, train

    def __call__(self, trial) -> float | tuple[float, float]:
        import optuna

        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        try:
            values = self.spec.search_space.sample(trial, self.settings.fixed_dims)
            model, train = self.configs(values)
            pruning = PruningCallback(
                trial, self.settings.reports_per_epoch, prune=not self.settings.multi and self.settings.pruner != "none"
            )
            options = RunOptions(
                model=self.spec.name,
                dataset=self.settings.dataset,
                model_params=model,
                train_params=train,
                data_dir=self.data_dir,
                runs_dir=self.runs_dir,
                tracking_uri=self.tracking_uri,
                tracking=self.tracking_uri is not None,
                progress=False,
                download=self.download,
                callbacks=[pruning],
                mlflow_parent_run_id=self.parent_run_id,
                mlflow_tags={
                    "mlffbench.study": self.study_name,
                    "mlffbench.trial": str(trial.number),
                    **{f"optuna.param.{k}": str(v) for k, v in values.items()},
                },
            )
            run_dir, metrics = train_and_evaluate(options)
            trial.set_user_attr("run_dir", str(run_dir))
            val = metrics.get("val", {})
            score = "force_mae" if "force_mae" in val else "energy_mae_per_atom"
            value = val.get(score, math.nan)
            for key in ("force_mae", "energy_mae_per_atom", "stress_mae"):
                if key in val and math.isfinite(val[key]):
                    trial.set_user_attr(f"val_{key}", val[key])
            trial.set_user_attr("wall_s", metrics.get("wall_s"))
            trial.set_user_attr("n_params", metrics.get("n_params"))
            stop = StopReason.parse(metrics.get("stopped"))  # the recorded reason (metrics.json's text)
            if stop is not None and stop.kind is StopKind.DIVERGED:
                raise TrialDiverged(stop.message)
            if stop is not None and stop.kind is StopKind.PRUNED:
                trial.set_user_attr("pruned_reason", stop.message)
                _tag(run_dir, self.tracking_uri, {"optuna.state": "PRUNED", "optuna.reason": stop.message})
                raise optuna.TrialPruned(stop.message)
            if not math.isfinite(value):
                raise TrialDiverged(f"diverged: non-finite validation {score} after training")
            _tag(run_dir, self.tracking_uri, {"optuna.state": "COMPLETE"})
            if not self.settings.multi:
                return float(value)
            speed = inference_us_per_atom_step(run_dir, self.data_dir)
            trial.set_user_attr("inference_us_per_atom_step", speed)
            return float(value), float(speed)
        except optuna.TrialPruned:
            raise
        except TrialDiverged as exc:
            trial.set_user_attr(FAIL_REASON, str(exc))
            _tag_trial_run(trial, self.tracking_uri, {"optuna.state": "FAIL", "optuna.reason": str(exc)})
            raise
        except KeyboardInterrupt as exc:
            sigterm = type(exc).__name__ == "Terminated"  # mlffbench.runs.record.Terminated
            reason = "terminated (SIGTERM)" if sigterm else "interrupted (Ctrl-C)"
            trial.set_user_attr(FAIL_REASON, reason)
            tag_trial_runs(
                self.tracking_uri, self.study_name, trial.number, {"optuna.state": "FAIL", "optuna.reason": reason}
            )
            raise
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"[:2000]
            trial.set_user_attr(FAIL_REASON, reason)
            tag_trial_runs(
                self.tracking_uri, self.study_name, trial.number, {"optuna.state": "FAIL", "optuna.reason": reason}
            )
            raise


def inference_us_per_atom_step(run_dir: Path, data_dir: Path | None, repeats: int = 5) -> float:
    """The speed objective: µs per atom per energy+forces evaluation of the trained model on
    one evaluation batch of held-out configurations (the bench protocol of
    :mod:`mlffbench.speed.timing`: warm-up excluded, median of ``repeats``)."""
    import numpy as np

    handle = TrainedModel.from_run(run_dir, with_data=True, data_dir=data_dir)
    data = handle.require_data()
    s = data.split
    idx = np.concatenate([np.asarray(s.test), np.asarray(s.val), np.asarray(s.train)]).astype(np.int64)
    size = handle.train_config.eval_batch_size
    if idx.size == 0:
        raise ConfigError("no configurations to time the model on")
    batch = next(iter(data.batcher.batches(idx[:size], batch_size=size)))
    return float(timing.inference_us_per_atom_step(handle.backend, handle.state, batch, repeats=repeats))


def _tag(run_dir: Path, tracking_uri: str | None, tags: dict[str, str]) -> None:
    """Tags on the trial's MLflow run (its id is in the run's config.json)."""
    if not tracking_uri:
        return

    try:
        run_id = runs.read_json(Path(run_dir) / runs.CONFIG).get("mlflow_run_id")
    except Exception:  # noqa: BLE001 - no readable record: nothing to close
        return
    if run_id:
        import mlflow

        client = mlflow.MlflowClient(tracking_uri)
        for key, value in tags.items():
            client.set_tag(run_id, key, value)


def tag_trial_runs(tracking_uri: str | None, study_name: str, number: int, tags: dict[str, str]) -> None:
    """Tags on the MLflow run(s) of trial ``number`` of a study, found by their tags (a trial
    stopped before its run directory was known to it)."""
    if not tracking_uri:
        return
    try:
        import mlflow

        from mlffbench.runs.tracking import EXPERIMENT

        client = mlflow.MlflowClient(tracking_uri)
        experiment = client.get_experiment_by_name(EXPERIMENT)
        if experiment is None:
            return
        query = f"tags.`mlffbench.study` = '{study_name}' and tags.`mlffbench.trial` = '{number}'"
        for run in client.search_runs([experiment.experiment_id], filter_string=query, max_results=100):
            for key, value in tags.items():
                client.set_tag(run.info.run_id, key, str(value)[:5000])
    except Exception:  # noqa: BLE001 - an unreachable store must not hide the trial's own error
        return


def _tag_trial_run(trial, tracking_uri: str | None, tags: dict[str, str]) -> None:
    run_dir = trial.user_attrs.get("run_dir")
    if run_dir:
        _tag(Path(run_dir), tracking_uri, tags)
