"""Two `mlffbench tune` workers on one study in a real PostgreSQL server on loopback, logging
to an MLflow tracking server backed by the same PostgreSQL server.

The server binaries come from the system (`scripts/setup.sh` installs Debian's `postgresql`
when they are missing). PostgreSQL refuses to run as root; as root the server runs as the
`postgres` user that the package creates.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import optuna
import pytest

CLI = [sys.executable, "-m", "mlffbench.cli.app"]
TINY = [
    "--dataset",
    "ean",
    "--max-configs",
    "12",
    "--epochs",
    "1",
    "-p",
    "width=16",
    "-p",
    "num_interactions=1",
    "-p",
    "num_gaussians=10",
    "-t",
    "batch_size=2",
    "-t",
    "eval_batch_size=4",
]

pytestmark = pytest.mark.slow


def _pg_bin(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if not found:
        pytest.fail(
            f"PostgreSQL server program '{name}' not found: run scripts/setup.sh (installs Debian's postgresql)"
        )
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_server_user(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    return ["runuser", "-u", "postgres", "--", *cmd]


@pytest.fixture(scope="module")
def postgres():
    """A fresh PostgreSQL cluster on 127.0.0.1:PORT (trust auth); yields a URL base, e.g.
    postgresql://postgres@127.0.0.1:PORT; stopped and deleted afterwards."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    root = Path(tempfile.mkdtemp(prefix="mlffbench-pg-"))  # not under pytest's 0700 tmp dirs
    data = root / "data"
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.fail("running as root but there is no 'postgres' user to run the server: run scripts/setup.sh")
        os.chown(root, user.pw_uid, user.pw_gid)
    port = _free_port()
    try:
        subprocess.run(
            _as_server_user([initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]),
            check=True,
            capture_output=True,
            timeout=120,
        )
        options = f"-p {port} -c listen_addresses=127.0.0.1 -k {root} -c fsync=off"
        subprocess.run(
            _as_server_user(
                [pg_ctl, "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "-t", "60", "start"]
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres", autocommit=True) as conn:
            conn.execute("CREATE DATABASE optuna")  # Optuna and MLflow both keep an alembic_version table
            conn.execute("CREATE DATABASE mlflow")
        yield f"postgresql://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run(
            _as_server_user([pg_ctl, "-D", str(data), "-m", "immediate", "stop"]), capture_output=True, timeout=60
        )
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def mlflow_server(postgres, tmp_path_factory):
    """``mlflow server`` with its backend store in the PostgreSQL server; yields its URL."""
    port = _free_port()
    cwd = tmp_path_factory.mktemp("mlflow-server")
    mlflow = str(Path(sys.executable).with_name("mlflow"))
    with open(cwd / "server.log", "w") as log:
        server = subprocess.Popen(
            [
                mlflow,
                "server",
                "--backend-store-uri",
                f"{postgres}/mlflow",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--artifacts-destination",
                str(cwd / "artifacts"),
                "--workers",
                "1",
            ],
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail("mlflow server did not start:\n" + (cwd / "server.log").read_text()[-3000:])
            time.sleep(0.5)
        yield url
    finally:
        _stop_group(server)


def _stop_group(proc) -> None:
    """Stop the server and the workers it started (its own process group)."""
    for sig, wait in ((9, 30),):  # a throw-away server: no graceful shutdown needed
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue


def test_two_workers_share_one_study_in_postgres_and_log_to_one_mlflow_server(postgres, mlflow_server, tmp_path):
    storage = f"{postgres}/optuna"
    env = {**os.environ, "COLUMNS": "200"}
    per_worker = 2
    workers = []
    for i in range(2):
        args = [
            "tune",
            "schnet",
            *TINY,
            "--study",
            "shared",
            "--storage",
            storage,
            "--trials",
            str(per_worker),
            "--tracking-uri",
            mlflow_server,
            "--runs-dir",
            str(tmp_path / f"worker{i}"),
        ]
        out = open(tmp_path / f"worker{i}.log", "w")
        workers.append((subprocess.Popen(CLI + args, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT), out))
    for proc, out in workers:
        proc.wait(timeout=600)
        out.close()
    logs = [(tmp_path / f"worker{i}.log").read_text() for i in range(2)]
    assert all(proc.returncode == 0 for proc, _ in workers), logs
    assert sum("(created)" in log for log in logs) == 1 and sum("(joined)" in log for log in logs) == 1, logs

    rdb = optuna.storages.RDBStorage(storage)
    study = optuna.load_study(study_name="shared", storage=rdb)
    trials = study.trials
    parent_attr = study.user_attrs["mlflow_parent_run_id"]
    rdb.engine.dispose()
    assert len(trials) == 2 * per_worker  # the sum: none lost, none duplicated
    assert sorted(t.number for t in trials) == list(range(2 * per_worker))
    assert len({t._trial_id for t in trials}) == 2 * per_worker
    assert all(t.state.name in ("COMPLETE", "PRUNED") for t in trials), [(t.state, t.user_attrs) for t in trials]
    by_worker: dict[str, int] = {}
    for t in trials:
        by_worker[t.user_attrs["worker"]] = by_worker.get(t.user_attrs["worker"], 0) + 1
    assert sorted(by_worker.values()) == [per_worker, per_worker]  # both workers ran their share

    import mlflow

    client = mlflow.MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name("mlffbench")
    runs = client.search_runs([experiment.experiment_id], filter_string="tags.`mlffbench.study` = 'shared'")
    parents = [r for r in runs if r.data.tags.get("mlffbench.role") == "study"]
    children = [r for r in runs if r.data.tags.get("mlffbench.role") != "study"]
    assert len(parents) == 1 and len(children) == 2 * per_worker
    parent = parents[0].info.run_id
    assert parent_attr == parent
    assert all(r.data.tags.get("mlflow.parentRunId") == parent for r in children)
    assert sorted(int(r.data.tags["mlffbench.trial"]) for r in children) == list(range(2 * per_worker))
    for r in children:
        assert r.data.params["model_config.hidden_channels"] == "16"
        curve = client.get_metric_history(r.info.run_id, "val_force_mae")
        assert len(curve) == 1 and curve[0].step == 1  # one epoch per trial
        within = client.get_metric_history(r.info.run_id, "val_force_mae_within_epoch")
        assert len(within) == 3  # 4 reports to the pruner per trial: 3 within the epoch, 1 at its end
