"""Run records: a run directory's identity, its status, and the MLflow run it owns.

Identity: ``config.json`` holds ``run_uuid`` (written once, when the directory is created)
and ``run_path`` (the resolved directory it was created or last resumed in). A directory
found at another path (a copy or a move) or on another host is a new identity: it gets a
fresh ``run_uuid``, records ``copied_from`` and continues in a new MLflow run tagged
``mlffbench.resumed_from`` = the old run's id; the old MLflow run is never touched.

Status: ``status.json`` (written atomically) holds ``state`` (running, finished,
interrupted, failed), ``pid``, ``host`` and ``reason``. A "running" record whose process
is gone (kill -9, power loss) is reported as stale and fixed up when resumed.
"""

from __future__ import annotations

import datetime as _dt
import os
import socket
import uuid
from pathlib import Path
from typing import Any

from mlffbench.errors import RunError
from mlffbench.runs import directory as runs
from mlffbench.runs.tracking import EXPERIMENT, backfill_run, default_tracking_uri, end_run
from mlffbench.training import checkpoint

STATUS = "status.json"
UUID_TAG = "mlffbench.run_uuid"
PATH_TAG = "mlffbench.run_path"
HOST_TAG = "mlffbench.host"
RESUMED_FROM_TAG = "mlffbench.resumed_from"
PID_TAG = "mlffbench.pid"  # the process that runs a compare's parent MLflow run
KIND_TAG = "mlffbench.kind"


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so every layer stops at the same consistent point."""


def host() -> str:
    return socket.gethostname()


def new_identity(run_dir: Path) -> dict[str, str]:
    return {"run_uuid": uuid.uuid4().hex, "run_path": str(Path(run_dir).resolve()), "run_host": host()}


def identity_tags(identity: dict[str, str]) -> dict[str, str]:
    return {UUID_TAG: identity["run_uuid"], PATH_TAG: identity["run_path"], HOST_TAG: identity["run_host"]}


def resumed_identity(run_dir: Path, saved: dict[str, Any]) -> tuple[dict[str, str], dict[str, Any] | None]:
    """(identity, copied_from): the saved identity when the directory is where (and on the host)
    it was last run; else a new identity and what it was copied from."""
    here = str(Path(run_dir).resolve())
    if saved.get("run_uuid") and saved.get("run_path") == here and saved.get("run_host") == host():
        return {"run_uuid": saved["run_uuid"], "run_path": here, "run_host": host()}, saved.get("copied_from")
    copied = {
        "run_uuid": saved.get("run_uuid"),
        "run_path": saved.get("run_path"),
        "run_host": saved.get("run_host"),
        "mlflow_run_id": saved.get("mlflow_run_id"),
        "tracking_uri": saved.get("tracking_uri"),
    }
    return new_identity(run_dir), copied


def owns(client, run_id: str, identity: dict[str, str]) -> bool:
    """Whether MLflow run ``run_id`` belongs to the directory of ``identity`` (its tags agree)."""
    try:
        tags = client.get_run(run_id).data.tags
    except Exception:  # noqa: BLE001 - a run missing from this store is not ours
        return False
    return (
        tags.get(UUID_TAG) == identity["run_uuid"] and tags.get(PATH_TAG, identity["run_path"]) == identity["run_path"]
    )


def write_status(run_dir: Path, state: str, reason: str = "") -> None:
    runs.write_json(
        Path(run_dir) / STATUS,
        {
            "state": state,
            "reason": reason,
            "pid": os.getpid(),
            "host": host(),
            "updated": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        },
    )


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def process_tags() -> dict[str, str]:
    """The MLflow tags that name this process (host and pid), so that a run it leaves RUNNING
    when killed can be told stale (:func:`dead_process_runs`)."""
    return {HOST_TAG: host(), PID_TAG: str(os.getpid())}


def dead_process_runs(client, experiment_id: str, kind: str) -> list[Any]:
    """The RUNNING MLflow runs of ``kind`` (``mlffbench.kind`` tag, e.g. compare's parent runs)
    whose process, on this host, is gone."""
    found = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{KIND_TAG}` = '{kind}' and attributes.status = 'RUNNING'",
        max_results=1000,
    )
    return [
        r
        for r in found
        if r.data.tags.get(HOST_TAG) == host()
        and str(r.data.tags.get(PID_TAG, "")).isdigit()
        and int(r.data.tags[PID_TAG]) != os.getpid()
        and not pid_alive(int(r.data.tags[PID_TAG]))
    ]


def stale_reason(run) -> str:
    return f"process {run.data.tags.get(PID_TAG)} on {run.data.tags.get(HOST_TAG)} is gone"


def ending(exc: BaseException) -> tuple[str, str, str]:
    """(status, MLflow status, one-line reason) of a command stopped by ``exc``: SIGINT/SIGTERM
    interrupted/KILLED, anything else failed/FAILED with the first line of its message."""
    if isinstance(exc, KeyboardInterrupt):
        return (
            "interrupted",
            "KILLED",
            "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted (SIGINT)",
        )
    return "failed", "FAILED", (str(exc).splitlines()[0] if str(exc) else type(exc).__name__)[:500]


def settle_stale(run_dir: Path, why: str, tags: dict[str, str] | None = None) -> bool:
    """Mark a stale run that nobody will resume (a killed tune trial's) ``failed`` with the
    reason, and its MLflow run FAILED (with ``tags`` and the last checkpoint's epochs); False
    (nothing done) when the run is not stale. The status is written last: a process killed
    while settling leaves the run stale, settled again by the next one."""
    status = read_status(run_dir)
    if status.get("state") != "stale":
        return False
    reason = f"{status['reason']}: {why}"
    config = runs.read_json(Path(run_dir) / runs.CONFIG)
    run_id, uri = config.get("mlflow_run_id"), config.get("tracking_uri")
    if run_id and uri:
        _settle_mlflow(Path(run_dir), uri, run_id, reason, tags or {})
    write_status(run_dir, "failed", reason)
    return True


def _settle_mlflow(run_dir: Path, uri: str, run_id: str, reason: str, tags: dict[str, str]) -> None:
    import mlflow

    client = mlflow.MlflowClient(uri)
    try:
        running = client.get_run(run_id).info.status == "RUNNING"
    except Exception:  # noqa: BLE001 - not in this store: nothing to settle there
        return
    backfill_run(client, run_id, run_dir / runs.CHECKPOINTS)  # killed between a checkpoint and its metrics
    for key, value in tags.items():
        client.set_tag(run_id, key, value)
    if running:
        end_run(client, run_id, "FAILED", reason)


def read_status(run_dir: Path) -> dict[str, Any]:
    """The run's status; ``state`` is "stale" for a running record whose process is gone."""
    path = Path(run_dir) / STATUS
    if not path.is_file():
        state = "finished" if (Path(run_dir) / runs.METRICS).is_file() else "unknown"
        return {"state": state, "reason": "no status record"}
    status = runs.read_json(path)
    if status.get("state") == "running" and status.get("host") == host() and not pid_alive(int(status.get("pid", 0))):
        status = {**status, "state": "stale", "reason": f"process {status.get('pid')} on {status.get('host')} is gone"}
    return status


def is_run_dir(path: Path) -> bool:
    return (Path(path) / runs.CONFIG).is_file()


def summary(run_dir: Path) -> dict[str, Any]:
    """One row of ``mlffbench runs``: what the directory holds and in what state."""
    run_dir = Path(run_dir)
    config = runs.read_json(run_dir / runs.CONFIG)
    metrics = runs.read_json(run_dir / runs.METRICS) if (run_dir / runs.METRICS).is_file() else {}
    history = _history(run_dir)
    best = min(
        (r["val"].get("force_mae") for r in history if r.get("val", {}).get("force_mae") is not None), default=None
    )
    split_fp = metrics.get("split_fingerprint")
    if split_fp is None and (run_dir / runs.SPLIT).is_file():
        split_fp = runs.read_json(run_dir / runs.SPLIT).get("fingerprint")
    status = read_status(run_dir)
    return {
        "run_dir": str(run_dir),
        "model": config.get("model"),
        "dataset": config.get("dataset"),
        "split_fingerprint": split_fp,
        "epochs": len(history),
        "status": status.get("state"),
        "reason": status.get("reason", ""),
        "best_val_force_mae": best,
        "mlflow_run_id": config.get("mlflow_run_id"),
        "tracking_uri": config.get("tracking_uri"),
    }


def _history(run_dir: Path) -> list[dict[str, Any]]:
    """The epochs on record: history.json of a finished run, else the last checkpoint's."""
    if (run_dir / runs.HISTORY).is_file():
        return runs.read_json(run_dir / runs.HISTORY)
    last = run_dir / runs.CHECKPOINTS / "last.ckpt"
    if last.is_file():
        try:
            return checkpoint.load(last)[0].get("history", [])
        except Exception:  # noqa: BLE001 - reported by check()
            return []
    return []


def list_runs(runs_dir: Path) -> list[dict[str, Any]]:
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise RunError(f"'{runs_dir}' is not a folder")
    return [summary(d) for d in sorted(runs_dir.iterdir()) if d.is_dir() and is_run_dir(d)]


_MLFLOW_STATE = {"finished": "FINISHED", "interrupted": "KILLED", "failed": "FAILED", "running": "RUNNING"}


def check(run_dir: Path) -> list[str]:
    """Every disagreement between a run directory, its checkpoints and its MLflow run."""

    run_dir = Path(run_dir)
    problems: list[str] = []
    row = summary(run_dir)
    config = runs.read_json(run_dir / runs.CONFIG)
    state = row["status"]
    if state == "stale":
        problems.append(f"status 'running' but {row['reason']} (resume it to continue)")
    ckpts = run_dir / runs.CHECKPOINTS
    loops = {}
    for name in ("last.ckpt", "best.ckpt"):
        path = ckpts / name
        if not path.is_file():
            if state == "finished" or (name == "last.ckpt" and row["epochs"]):
                problems.append(f"checkpoint {path} is missing")
            continue
        try:
            loops[name] = checkpoint.load(path)[0]
        except Exception as exc:  # noqa: BLE001
            problems.append(str(exc))
    history = runs.read_json(run_dir / runs.HISTORY) if (run_dir / runs.HISTORY).is_file() else None
    if (
        "last.ckpt" in loops
        and history is not None
        and _strip(loops["last.ckpt"].get("history", [])) != _strip(history)
    ):
        problems.append(f"{run_dir / runs.HISTORY} disagrees with checkpoint {ckpts / 'last.ckpt'}")
    metrics = runs.read_json(run_dir / runs.METRICS) if (run_dir / runs.METRICS).is_file() else None
    if metrics is not None and "last.ckpt" in loops and metrics.get("epochs") != loops["last.ckpt"].get("epoch"):
        problems.append(
            f"{run_dir / runs.METRICS} says {metrics.get('epochs')} epochs, the last checkpoint {loops['last.ckpt'].get('epoch')}"
        )
    if metrics is not None and history is not None and metrics.get("best_epoch", -1) > 0:
        best = metrics["best_epoch"]
        if best > len(history) or "best.ckpt" in loops and loops["best.ckpt"].get("epoch") != best:
            problems.append(f"{run_dir / runs.METRICS}: best epoch {best} disagrees with the history/best checkpoint")
    run_id, uri = config.get("mlflow_run_id"), config.get("tracking_uri")
    if run_id and uri:
        problems += _check_mlflow(run_dir, config, row, uri, run_id)
    return problems


def check_stores(runs_dir: Path, rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(store, disagreement) of the MLflow stores the runs of ``runs_dir`` use (and its default
    one): compare parent runs left RUNNING by a process that is gone."""
    import logging

    import mlflow

    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    uris = {row["tracking_uri"] for row in rows if row.get("tracking_uri")}
    default = default_tracking_uri(Path(runs_dir))
    if not default.startswith("sqlite:///") or Path(default[len("sqlite:///") :]).is_file():
        uris.add(default)
    problems = []
    for uri in sorted(uris):
        if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///") :]).is_file():
            continue  # never create a store by looking at it
        try:
            client = mlflow.MlflowClient(uri)
            experiment = client.get_experiment_by_name(EXPERIMENT)
            stale = dead_process_runs(client, experiment.experiment_id, "compare") if experiment is not None else []
        except Exception as exc:  # noqa: BLE001 - an unreachable store is itself a finding
            problems.append(
                (uri, f"MLflow store unreadable: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
            )
            continue
        problems += [
            (
                uri,
                (
                    f"MLflow compare run '{r.info.run_name}' ({r.info.run_id}) is RUNNING but {stale_reason(r)} "
                    "(the next compare in this store marks it KILLED)"
                ),
            )
            for r in stale
        ]
    return problems


def _strip(history: list[dict[str, Any]]) -> list[tuple]:
    return [(r.get("epoch"), r.get("train_loss"), tuple(sorted((r.get("val") or {}).items()))) for r in history]


def _check_mlflow(run_dir: Path, config: dict[str, Any], row: dict[str, Any], uri: str, run_id: str) -> list[str]:
    import logging

    import mlflow

    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    client = mlflow.MlflowClient(uri)
    try:
        run = client.get_run(run_id)
    except Exception:  # noqa: BLE001
        return [f"MLflow run {run_id} not found in {uri}"]
    problems = []
    tags = run.data.tags
    if tags.get(UUID_TAG) and config.get("run_uuid") and tags[UUID_TAG] != config["run_uuid"]:
        problems.append(
            f"MLflow run {run_id} belongs to run {tags[UUID_TAG]}, not this directory's {config['run_uuid']}"
        )
    if tags.get(PATH_TAG) and tags[PATH_TAG] != str(run_dir.resolve()):
        problems.append(f"MLflow run {run_id} records directory {tags[PATH_TAG]}, not {run_dir.resolve()}")
    if run.info.run_name != run_dir.name:
        problems.append(f"MLflow run {run_id} is named '{run.info.run_name}', the directory '{run_dir.name}'")
    state = "running" if row["status"] == "stale" else row["status"]
    want = _MLFLOW_STATE.get(state)
    if want and run.info.status != want:
        problems.append(f"MLflow run {run_id} is {run.info.status}, the run record says {row['status']}")
    steps = [m.step for m in client.get_metric_history(run_id, "train_loss")]
    if len(steps) != len(set(steps)):
        problems.append(
            f"MLflow run {run_id} has repeated metric steps {sorted(s for s in set(steps) if steps.count(s) > 1)}"
        )
    epochs = [r["epoch"] for r in _history(run_dir)]
    if sorted(set(steps)) != epochs:
        problems.append(f"MLflow run {run_id} has epochs {sorted(set(steps))}, the run directory {epochs}")
    else:
        logged = {m.step: m.value for m in client.get_metric_history(run_id, "train_loss")}
        for r in _history(run_dir):
            if abs(logged[r["epoch"]] - r["train_loss"]) > 1e-6 * max(1.0, abs(r["train_loss"])):
                problems.append(
                    f"MLflow run {run_id}: epoch {r['epoch']} train_loss {logged[r['epoch']]:.6g}, the run directory {r['train_loss']:.6g}"
                )
    return problems
