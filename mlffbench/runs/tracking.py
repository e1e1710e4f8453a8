"""MLflow logging: params, per-epoch metrics, and the run directory's files as artifacts.

Default store: an embedded SQLite database beside the runs (``<runs-dir>/mlflow.db``,
artifacts in ``<runs-dir>/mlartifacts``). ``--tracking-uri`` (or MLFLOW_TRACKING_URI)
points at a tracking server shared by a team instead.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mlffbench import settings
from mlffbench.training import checkpoint
from mlffbench.training.callbacks import Callback

EXPERIMENT = "mlffbench"


def default_tracking_uri(runs_dir: Path) -> str:
    """The configured tracking URI (:mod:`mlffbench.settings`), else an SQLite store in ``runs_dir``."""
    return settings.get("tracking_uri") or f"sqlite:///{Path(runs_dir).resolve() / 'mlflow.db'}"


def flatten(prefix: str, value: Any, out: dict[str, Any]) -> dict[str, Any]:
    if isinstance(value, dict):
        for k, v in value.items():
            flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = value
    return out


PARENT_TAG = "mlflow.parentRunId"


@contextlib.contextmanager
def store_lock(tracking_uri: str) -> Iterator[None]:
    """For an SQLite store: an exclusive lock (``<db>.lock``, ``flock``) held while the store is
    opened for the first time and the experiment is made. MLflow creates the schema of a new
    database when it first opens it, and two processes doing so at once fail ("table experiments
    already exists"); once it exists, concurrent runs share the store safely. Other stores: no lock."""
    if not tracking_uri.startswith("sqlite:///"):
        yield
        return
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    database = Path(tracking_uri[len("sqlite:///") :])
    database.parent.mkdir(parents=True, exist_ok=True)
    with open(database.with_name(database.name + ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def open_experiment(tracking_uri: str, runs_dir: Path):
    """(an MLflow client of ``tracking_uri``, the id of the ``mlffbench`` experiment), the
    experiment created when missing (artifacts beside an SQLite store go to
    ``<runs-dir>/mlartifacts``). Opening the client opens the store: under :func:`store_lock`,
    so processes started at once never create its schema twice."""
    import mlflow

    with store_lock(tracking_uri):
        client = mlflow.MlflowClient(tracking_uri)
        return client, _experiment_id(client, tracking_uri, runs_dir)


def _experiment_id(client, tracking_uri: str, runs_dir: Path) -> str:
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is not None:
        return experiment.experiment_id
    artifacts = None
    if tracking_uri.startswith("sqlite:"):
        artifacts = (Path(runs_dir).resolve() / "mlartifacts").as_uri()
    try:
        return client.create_experiment(EXPERIMENT, artifact_location=artifacts)
    except Exception:  # another process (a second tune worker) created it first
        experiment = client.get_experiment_by_name(EXPERIMENT)
        if experiment is None:
            raise
        return experiment.experiment_id


class MlflowTracker(Callback):
    """Opens one MLflow run per mlffbench run; re-opens the same MLflow run on resume."""

    def __init__(
        self,
        tracking_uri: str,
        runs_dir: Path,
        run_name: str,
        run_id: str | None = None,
        parent_run_id: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> None:
        import mlflow

        for name in ("mlflow", "alembic"):  # after the import: mlflow configures its loggers on import
            logging.getLogger(name).setLevel(logging.WARNING)

        self.mlflow = mlflow
        _, experiment_id = open_experiment(tracking_uri, runs_dir)
        mlflow.set_tracking_uri(tracking_uri)
        tags = dict(tags or {})
        if parent_run_id and not run_id:
            # nesting is this tag in MLflow; set directly because the parent (a tune study's
            # run) may belong to another process or machine
            tags[PARENT_TAG] = parent_run_id
        self.run = mlflow.start_run(
            run_id=run_id, experiment_id=None if run_id else experiment_id, run_name=run_name, tags=tags or None
        )
        self.run_id = self.run.info.run_id

    @staticmethod
    def owned(tracking_uri: str, run_id: str, identity: dict[str, str]) -> bool:
        """Whether the MLflow run ``run_id`` carries this run directory's identity tags."""
        import mlflow

        from mlffbench.runs.record import owns

        return owns(mlflow.MlflowClient(tracking_uri), run_id, identity)

    def backfill(self, checkpoint_dir: Path) -> None:
        """On resume: log the checkpoint's epochs this MLflow run lacks (a run killed between
        its checkpoint and its metrics, or a new MLflow run continuing a copy), each step once."""
        backfill_run(self.mlflow.MlflowClient(), self.run_id, checkpoint_dir)

    def log_params(self, params: dict[str, Any]) -> None:
        flat = flatten("", params, {})
        existing = self.run.data.params if self.run.data else {}
        fresh = {k: str(v)[:6000] for k, v in flat.items() if k not in existing}
        if fresh:
            self.mlflow.log_params(fresh)

    def on_epoch_end(self, epoch: int, record: dict[str, Any]) -> None:
        self.mlflow.log_metrics(epoch_metrics(record), step=record["epoch"])

    def on_evaluation(self, epoch: int, step: int, steps: int, val: dict[str, Any]) -> None:
        """Validation within an epoch (asked for by e.g. tune's pruning): step = optimizer steps so far."""
        self.mlflow.log_metrics({f"val_{k}_within_epoch": v for k, v in val.items()}, step=epoch * steps + step)

    def finish(self, run_dir: Path, metrics: dict[str, Any]) -> None:
        flat = flatten("", {k: metrics[k] for k in ("val", "test") if k in metrics}, {})
        for k in ("train_configs_per_s", "compile_s", "wall_s", "n_params"):
            if isinstance(metrics.get(k), (int, float)):
                flat[k] = metrics[k]
        self.mlflow.log_metrics({k: float(v) for k, v in flat.items() if isinstance(v, (int, float))})
        self.mlflow.set_tags(
            {
                "split_fingerprint": metrics.get("split_fingerprint", ""),
                "run_dir": str(run_dir),
                "mlffbench.status": "finished",
            }
        )
        for path in sorted(Path(run_dir).rglob("*")):
            # status.json is the live state of the process (written after this), not the run's content
            if path.is_file() and not path.name.startswith(".") and path.name != "status.json":
                rel = path.parent.relative_to(run_dir)
                self.mlflow.log_artifact(str(path), artifact_path=None if str(rel) == "." else str(rel))
        self.mlflow.end_run()

    def abort(self, status: str = "KILLED", reason: str = "", checkpoint_dir: Path | None = None) -> None:
        """End the MLflow run as KILLED (interrupted) or FAILED, with the reason as a tag, and
        with every epoch of the last checkpoint (``checkpoint_dir``: one the run stopped before
        logging); by its id, so that an interruption after :meth:`finish` never starts another run."""
        active = self.mlflow.active_run()
        try:
            client = self.mlflow.MlflowClient()
            if checkpoint_dir is not None:
                with contextlib.suppress(Exception):  # e.g. an unreadable checkpoint: the run's own error says why
                    backfill_run(client, self.run_id, checkpoint_dir)
            end_run(client, self.run_id, status, reason)
        finally:
            if active is not None and active.info.run_id == self.run_id:
                self.mlflow.end_run(status=status)


def epoch_metrics(record: dict[str, Any]) -> dict[str, float]:
    """The MLflow metrics of one epoch of the history (logged at step = the epoch)."""
    metrics = {
        "train_loss": record["train_loss"],
        "lr_last": record["lr_last"],
        "train_configs_per_s": record["train_configs_per_s"],
    }
    for k, v in record["val"].items():
        metrics[f"val_{k}"] = v
    return metrics


def backfill_run(client, run_id: str, checkpoint_dir: Path) -> None:
    """Log the epochs of the last checkpoint that MLflow run ``run_id`` lacks, each step once
    (a run stopped between its checkpoint and its metrics, or a new MLflow run continuing a copy)."""
    import time

    from mlflow.entities import Metric

    last = Path(checkpoint_dir) / "last.ckpt"
    if not last.is_file():
        return
    loop, _ = checkpoint.load(last)
    logged = {m.step for m in client.get_metric_history(run_id, "train_loss")}
    now = int(time.time() * 1000)
    for record in loop.get("history", []):
        if record["epoch"] not in logged:
            client.log_batch(
                run_id, metrics=[Metric(k, float(v), now, record["epoch"]) for k, v in epoch_metrics(record).items()]
            )


def end_run(client, run_id: str, status: str, reason: str = "") -> None:
    """End MLflow run ``run_id`` as KILLED (``mlffbench.status`` interrupted) or FAILED
    (failed), with the one-line ``reason`` as the ``mlffbench.reason`` tag."""
    client.set_tag(run_id, "mlffbench.status", "interrupted" if status == "KILLED" else "failed")
    if reason:
        client.set_tag(run_id, "mlffbench.reason", reason[:5000])
    client.set_terminated(run_id, status)
