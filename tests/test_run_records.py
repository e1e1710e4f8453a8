"""Run records: a copied run gets its own MLflow run, SIGTERM ends cleanly, `mlffbench runs --check`
finds planted disagreements, and a failing checkpoint write keeps the previous checkpoint."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

CLI = [sys.executable, "-m", "mlffbench.cli.app"]
SMALL = [  # a tiny SchNet (PyTorch: nothing to compile) on 12 EAN configurations
    "--dataset",
    "ean",
    "--max-configs",
    "12",
    "--batch-size",
    "2",
    "--seed",
    "3",
    "-p",
    "hidden_channels=16",
    "-p",
    "num_filters=16",
    "-p",
    "num_interactions=1",
    "-p",
    "num_gaussians=10",
    "-t",
    "eval_batch_size=4",
    "--no-progress",
]

pytestmark = pytest.mark.slow


def cli(args, cwd, **kw):
    return subprocess.run(
        CLI + args, capture_output=True, text=True, cwd=cwd, env={**os.environ, "COLUMNS": "200"}, timeout=600, **kw
    )


def run_dir_of(out) -> Path:
    line = next(line for line in out.stdout.splitlines() if line.startswith("run directory:"))
    return Path(line.split(":", 1)[1].strip())


def mlflow_record(run_dir: Path):
    import mlflow

    config = json.loads((run_dir / "config.json").read_text())
    client = mlflow.MlflowClient(config["tracking_uri"])
    run = client.get_run(config["mlflow_run_id"])
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "train_loss")]
    return run, steps


def checkpoint_epoch(path: Path) -> int:
    with zipfile.ZipFile(path) as z:
        return json.loads(z.read("loop.json"))["epoch"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("records")
    out = cli(["run", "schnet", *SMALL, "--epochs", "2"], cwd)
    assert out.returncode == 0, out.stderr
    return cwd, cwd / run_dir_of(out)


def test_resumed_copy_continues_in_its_own_mlflow_run(finished):
    cwd, original = finished
    before, before_steps = mlflow_record(original)
    assert before.info.status == "FINISHED" and before_steps == [1, 2]
    copy = original.parent / "backup-copy"
    shutil.copytree(original, copy)
    out = cli(["run", "--resume", str(copy), "--epochs", "3"], cwd)
    assert out.returncode == 0, out.stderr
    after, after_steps = mlflow_record(original)
    assert (after.info.run_name, after.info.status, after_steps) == (before.info.run_name, "FINISHED", [1, 2])
    mine, mine_steps = mlflow_record(copy)
    assert mine.info.run_id != before.info.run_id and mine.info.run_name == "backup-copy"
    assert mine.data.tags["mlffbench.resumed_from"] == before.info.run_id and mine_steps == [1, 2, 3]
    config = json.loads((copy / "config.json").read_text())
    original_config = json.loads((original / "config.json").read_text())
    assert config["run_uuid"] != original_config["run_uuid"]
    assert config["copied_from"]["run_uuid"] == original_config["run_uuid"]
    check = cli(["runs", str(original.parent), "--check", "--json", str(cwd / "runs.json")], cwd)
    assert check.returncode == 0, check.stdout
    rows = {Path(r["run_dir"]).name: r for r in json.loads((cwd / "runs.json").read_text())}
    assert rows["backup-copy"]["epochs"] == 3 and rows[original.name]["epochs"] == 2
    assert {r["status"] for r in rows.values()} == {"finished"} and all(r["problems"] == [] for r in rows.values())


def test_no_tracking_is_honoured_on_resume(finished):
    cwd, original = finished
    copy = original.parent / "untracked-copy"
    shutil.copytree(original, copy)
    _, before_steps = mlflow_record(original)
    out = cli(["run", "--resume", str(copy), "--epochs", "3", "--no-tracking"], cwd)
    assert out.returncode == 0, out.stderr
    assert json.loads((copy / "config.json").read_text())["mlflow_run_id"] is None
    assert mlflow_record(original)[1] == before_steps


def test_check_names_planted_disagreements(finished):
    cwd, original = finished
    planted = original.parent.parent / "planted"
    shutil.copytree(original, planted / original.name)
    run_dir = planted / original.name
    (run_dir / "checkpoints" / "best.ckpt").unlink()
    history = json.loads((run_dir / "history.json").read_text())
    history[-1]["train_loss"] *= 2
    (run_dir / "history.json").write_text(json.dumps(history))
    out = cli(["runs", str(planted), "--check"], cwd)
    assert out.returncode == 1
    text = " ".join(out.stdout.split())
    assert "best.ckpt is missing" in text
    assert "history.json disagrees with checkpoint" in text
    # the copy still points at the original's MLflow run, whose tags name another directory
    assert "records directory" in text


def test_sigterm_ends_with_one_line_killed_and_resumes(tmp_path):
    proc = subprocess.Popen(
        CLI + ["run", "schnet", *SMALL, "--epochs", "300", "--runs-dir", "runs"],
        cwd=tmp_path,
        env={**os.environ, "COLUMNS": "200"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline, run_dir = time.time() + 300, None
    while time.time() < deadline and proc.poll() is None and run_dir is None:
        for last in (tmp_path / "runs").glob("*/checkpoints/last.ckpt"):
            try:
                if checkpoint_epoch(last) >= 1:
                    run_dir = last.parents[1]
            except Exception:
                pass
        time.sleep(0.05)
    assert run_dir is not None, "no checkpoint before the run ended"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert [line for line in err.splitlines() if line.strip()] == ["terminated (SIGTERM)"]
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "interrupted" and "SIGTERM" in status["reason"]
    run, steps = mlflow_record(run_dir)
    assert run.info.status == "KILLED"
    done = checkpoint_epoch(run_dir / "checkpoints" / "last.ckpt")
    assert steps == list(range(1, done + 1))
    out = cli(["run", "--resume", str(run_dir), "--epochs", str(done + 1)], tmp_path)
    assert out.returncode == 0, out.stderr
    run, steps = mlflow_record(run_dir)
    assert run.info.status == "FINISHED" and steps == list(range(1, done + 2))
    assert cli(["runs", "runs", "--check"], tmp_path).returncode == 0


# the file-size limit is set in the child between fork and exec (preexec_fn); when an earlier test
# imported JAX into this process, JAX warns at every fork, harmless here since the child only execs
@pytest.mark.filterwarnings("ignore:os.fork\\(\\) was called:RuntimeWarning")
def test_failing_checkpoint_write_keeps_the_previous_one(tmp_path):
    out = cli(["run", "schnet", *SMALL, "--epochs", "1", "--no-tracking", "--runs-dir", "runs"], tmp_path)
    assert out.returncode == 0, out.stderr
    run_dir = tmp_path / run_dir_of(out)
    last = run_dir / "checkpoints" / "last.ckpt"
    before = last.read_bytes()
    limit = len(before) // 2

    def small_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of death by signal
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    out = cli(["run", "--resume", str(run_dir), "--epochs", "2"], tmp_path, preexec_fn=small_files)
    assert out.returncode == 2, out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "could not write checkpoint" in lines[0], out.stderr
    assert last.read_bytes() == before
    assert not list((run_dir / "checkpoints").glob(".*.tmp"))
    assert json.loads((run_dir / "status.json").read_text())["state"] == "failed"


def test_four_runs_started_at_once_in_a_fresh_runs_dir_all_finish_recorded(tmp_path):
    """MLflow creates a new SQLite store's schema when it first opens it; four processes doing it
    at once used to fail ("table experiments already exists") and leave half a run directory."""
    env = {**os.environ, "COLUMNS": "200"}
    procs = [
        subprocess.Popen(
            CLI + ["run", "schnet", *SMALL, "--epochs", "1", "--seed", str(seed), "--runs-dir", "runs"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in range(4)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [err[-2000:] for _, err in outs]
    run_dirs = sorted(p for p in (tmp_path / "runs").iterdir() if (p / "config.json").is_file())
    assert len(run_dirs) == 4
    for run_dir in run_dirs:
        run, steps = mlflow_record(run_dir)
        assert run.info.status == "FINISHED" and steps == [1]
    # nothing else: no directory of a run that never started
    assert {p.name for p in (tmp_path / "runs").iterdir() if p.is_dir()} == {d.name for d in run_dirs} | {"mlartifacts"}
