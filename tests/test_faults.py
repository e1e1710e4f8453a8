"""Fault injection: `run`, `tune` and `compare` killed with SIGKILL at seeded random moments,
ten times each in a chain (start, kill -9, resume, kill -9, ..., then a last resume to the end),
give the results of an uninterrupted run to float tolerance, with records that agree: unique
MLflow metric steps, statuses that match the run records, every Optuna trial once, and
`mlffbench runs --check` clean. SIGTERM ends a tune trial and a compare consistently.

Every command runs in a process forked from a server that imported everything once
(tests/_forkserver.py: the imports alone cost seconds per process on a 2-core CI machine);
the kill -9 is a real one. A tiny SchNet (PyTorch: nothing to compile) on the first 12
configurations of each rMD17 ethanol file. The moments are drawn from a seeded generator as
a number of steps of progress to wait for (0: none, a kill during start-up; 1 or more:
epochs of `run`, a trial of `tune` training, a run of `compare` training or its timing), then
a random delay. An epoch takes 20 ms on a fast machine and 1.5 s on a loaded 2-core one, so a
delay in seconds alone would kill nothing on one or everything on the other: `run` and `compare`
draw theirs as a fraction of the epoch cycle that their uninterrupted reference measured, and
`run` never waits for its last epoch, so that each kill lands in a command still at work.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import sys
import time
import zipfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _forkserver import ForkServer

pytestmark = pytest.mark.slow

KILLS = 10
DATA = ["--dataset", "rmd17-ethanol", "--max-configs", "12"]
TINY = ["-p", "hidden_channels=16", "-p", "num_filters=16", "-p", "num_interactions=1", "-p", "num_gaussians=10"]
RUN = ["run", "schnet", *DATA, "--batch-size", "2", "--seed", "3", *TINY, "-t", "eval_batch_size=4", "--no-progress"]
TUNE = [
    "tune",
    "schnet",
    *DATA,
    "--pruner",
    "none",
    "--sampler",
    "random",
    "--seed",
    "1",
    "-p",
    "width=16",
    "-p",
    "num_interactions=1",
    "-p",
    "num_gaussians=10",
    "-p",
    "cutoff=4.0",
    "-p",
    "lr_max=0.003",
    "-t",
    "batch_size=2",
    "-t",
    "eval_batch_size=4",
]
COMPARE = [
    "compare",
    "schnet",
    *DATA,
    *TINY,
    "-t",
    "batch_size=2",
    "-t",
    "eval_batch_size=4",
    "--repeats",
    "1",
    "--train-steps",
    "1",
    "--no-progress",
]
EPOCHS = 12
COMPARE_EPOCHS = 6  # per seed, 2 seeds: more epochs than kills
STUDY_TRIALS = 4


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = ForkServer(tmp_path_factory.mktemp("forkserver"))
    yield server
    server.close()


def timed(server, args, cwd, name):
    start = time.monotonic()
    rc, out, err = server.run(args, cwd, name)
    assert rc == 0, err
    return out, time.monotonic() - start


def ended(pid: int) -> bool:
    """Whether the (unreaped) child ``pid`` of the server has exited: a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def kill_when(server, args, cwd, name, ready, delay: float) -> int:
    """Start ``mlffbench ARGS``; once ``ready()`` (polled) and ``delay`` seconds more, kill -9 it
    (unless it ended first); reap it. Its exit status (-9: killed)."""
    pid = server.start(args, cwd, name)
    deadline = time.monotonic() + 120
    while not ready() and not ended(pid):
        assert time.monotonic() < deadline, f"{name}: never ready"
        time.sleep(0.01)
    time.sleep(delay)
    os.kill(pid, signal.SIGKILL)  # one that already ended is a zombie until reaped: no error
    return server.wait(pid)


def checkpoint_epoch(run_dir: Path | None) -> int:
    try:
        with zipfile.ZipFile(Path(run_dir) / "checkpoints" / "last.ckpt") as z:
            return json.loads(z.read("loop.json"))["epoch"]
    except (OSError, TypeError, KeyError, ValueError, zipfile.BadZipFile):  # none yet (or just replaced)
        return 0


def checkpoints(folder: Path) -> dict[Path, float]:
    """Every last.ckpt under ``folder``'s run directories and its modification time."""
    found = {}
    for path in Path(folder).glob("*/checkpoints/last.ckpt"):
        try:
            found[path] = path.stat().st_mtime
        except OSError:
            pass
    return found


def run_dir_of(out: str) -> Path:
    return Path(next(line for line in out.splitlines() if line.startswith("run directory:")).split(":", 1)[1].strip())


def run_dirs(folder: Path) -> list[Path]:
    """The run directories (with a config.json: a process killed earlier leaves none)."""
    return sorted(d for d in Path(folder).iterdir() if (d / "config.json").is_file()) if Path(folder).is_dir() else []


def read(path: Path):
    return json.loads(Path(path).read_text())


def epoch_cycle(run_dir: Path) -> float:
    """Seconds from one epoch's end to the next's (training, validation, checkpoint, MLflow) in
    the finished run ``run_dir``: the median over its history."""
    wall = [r["wall_s"] for r in read(Path(run_dir) / "history.json")]
    gaps = sorted(b - a for a, b in itertools.pairwise(wall))
    return gaps[len(gaps) // 2]


def client(uri: str):
    import mlflow

    return mlflow.MlflowClient(uri)


def all_runs(uri: str):
    c = client(uri)
    experiment = c.get_experiment_by_name("mlffbench")
    return c.search_runs([experiment.experiment_id], max_results=1000) if experiment else []


def assert_steps_once(uri: str, run_id: str, epochs: int) -> None:
    """Every per-epoch metric of the MLflow run has steps 1..epochs, each once."""
    c = client(uri)
    keys = [
        k
        for k in c.get_run(run_id).data.metrics
        if k in ("train_loss", "lr_last") or k.startswith("val_") and not k.endswith("_within_epoch")
    ]
    assert "train_loss" in keys
    for key in keys:
        assert sorted(m.step for m in c.get_metric_history(run_id, key)) == list(range(1, epochs + 1)), key


def assert_same_training(run_dir: Path, reference: Path) -> None:
    """Epoch by epoch the same losses and validation errors, and the same final errors."""
    history, expected = read(run_dir / "history.json"), read(reference / "history.json")
    assert [r["epoch"] for r in history] == [r["epoch"] for r in expected]
    for got, want in zip(history, expected, strict=True):
        assert got["train_loss"] == pytest.approx(want["train_loss"], rel=1e-5)
        assert got["val"] == pytest.approx(want["val"], rel=1e-5)
    metrics, want = read(run_dir / "metrics.json"), read(reference / "metrics.json")
    assert metrics["best_epoch"] == want["best_epoch"] and metrics["epochs"] == want["epochs"]
    for part in ("val", "test"):
        assert metrics[part] == pytest.approx(want[part], rel=1e-5)


def assert_runs_check(server, folder: Path, cwd: Path) -> None:
    rc, out, err = server.run(["runs", str(folder), "--check"], cwd, "runs-check")
    assert rc == 0, out + err
    assert "agree" in out


# ------------------------------------------------------------------- run
def test_run_killed_ten_times_resumes_to_the_uninterrupted_result(server, tmp_path):
    server.store(tmp_path / "reference")
    out, _ = timed(
        server, [*RUN, "--epochs", str(EPOCHS), "--runs-dir", str(tmp_path / "reference")], tmp_path, "reference"
    )
    reference = run_dir_of(out)
    cycle = epoch_cycle(reference)
    runs = tmp_path / "runs"
    uri = server.store(runs)
    rng, codes = random.Random(2601), []
    for k in range(KILLS):
        found = run_dirs(runs)
        assert len(found) <= 1, found
        args = ["run", "--resume", str(found[0])] if found else [*RUN, "--epochs", str(EPOCHS), "--runs-dir", str(runs)]
        # never the last epoch: the kill lands before the run ends
        target = min(checkpoint_epoch(found[0] if found else None) + rng.choice((0, 1, 1, 2)), EPOCHS - 1)

        def ready(target=target):  # the run's last checkpoint is `target` epochs
            found = run_dirs(runs)
            return bool(found) and checkpoint_epoch(found[0]) >= target

        codes.append(kill_when(server, args, tmp_path, f"attempt{k}", ready, rng.uniform(0.0, 0.8) * cycle))
    assert codes.count(-signal.SIGKILL) >= KILLS // 2, (codes, cycle)  # most kills hit a running command
    (run_dir,) = run_dirs(runs)
    timed(server, ["run", "--resume", str(run_dir)], tmp_path, "final")

    assert_same_training(run_dir, reference)
    assert read(run_dir / "status.json")["state"] == "finished"
    config = read(run_dir / "config.json")
    (mlflow_run,) = all_runs(uri)  # one MLflow run however often it was resumed
    assert mlflow_run.info.run_id == config["mlflow_run_id"] and mlflow_run.info.status == "FINISHED"
    assert_steps_once(uri, mlflow_run.info.run_id, EPOCHS)
    assert_runs_check(server, runs, tmp_path)


# ------------------------------------------------------------------ tune
def test_tune_killed_ten_times_keeps_every_trial_once(server, tmp_path):
    import optuna

    def tune(where: str, trials: int):
        storage = f"sqlite:///{tmp_path / where}.db"
        return storage, [
            *TUNE,
            "--epochs",
            "3",
            "--study",
            "s",
            "--storage",
            storage,
            "--trials",
            str(trials),
            "--study-trials",
            str(trials),
            "--heartbeat",
            "1",
            "--runs-dir",
            str(tmp_path / where),
        ]

    server.store(tmp_path / "reference")
    storage, args = tune("reference", 1)
    timed(server, args, tmp_path, "reference")
    (expected,) = optuna.load_study(study_name="s", storage=storage).trials
    runs = tmp_path / "chain"
    uri = server.store(runs)
    storage, args = tune("chain", STUDY_TRIALS)
    rng, codes = random.Random(2602), []
    for k in range(KILLS):
        before, wait = set(checkpoints(runs / "tune-s")), rng.choice((0, 1, 1))

        def ready(before=before, wait=wait):  # `wait` more trials (0 or 1) have begun training
            return len(set(checkpoints(runs / "tune-s")) - before) >= wait

        codes.append(kill_when(server, args, tmp_path, f"attempt{k}", ready, rng.uniform(0.0, 2.0 if wait else 1.5)))
    assert codes.count(-signal.SIGKILL) >= KILLS // 2, codes
    # past the grace period (2 heartbeats) of a trial killed before it was named (milliseconds
    # after its creation); a named one is failed at once, its worker's process being gone
    time.sleep(2.5)
    timed(server, args, tmp_path, "final")

    trials = optuna.load_study(study_name="s", storage=storage).trials
    assert [t.number for t in trials] == list(range(len(trials)))
    states = [t.state.name for t in trials]
    assert states.count("COMPLETE") == STUDY_TRIALS and set(states) <= {"COMPLETE", "FAIL"}, states
    for t in trials:
        if t.state.name == "COMPLETE":  # every trial trains the same fixed configuration
            assert t.values[0] == pytest.approx(expected.values[0], rel=1e-5)
        else:
            assert "killed" in t.user_attrs["fail_reason"], t.user_attrs
    by_trial = {}
    for run in all_runs(uri):
        if run.data.tags.get("mlffbench.role") == "study":
            assert run.info.status == "FINISHED", run.data.tags
            continue
        number = int(run.data.tags["mlffbench.trial"])
        assert number not in by_trial, f"trial {number} has two MLflow runs"
        by_trial[number] = run
    for number, run in by_trial.items():
        trial, tags = trials[number], run.data.tags
        assert tags.get("optuna.state") == trial.state.name, (number, trial.state, tags)
        assert run.info.status != "RUNNING", number
        if trial.state.name == "COMPLETE":
            assert run.info.status == "FINISHED"
            assert_steps_once(uri, run.info.run_id, 3)
    assert {n for n, t in enumerate(trials) if t.state.name == "COMPLETE"} <= set(by_trial)
    for run_dir in run_dirs(runs / "tune-s"):
        assert read(run_dir / "status.json")["state"] in ("finished", "failed"), run_dir
    assert_runs_check(server, runs / "tune-s", tmp_path)


def test_sigterm_ends_a_tune_trial_failed_and_the_study_continues(server, tmp_path):
    import optuna

    storage = f"sqlite:///{tmp_path / 'study.db'}"
    runs = tmp_path / "runs"
    uri = server.store(runs)
    common = ["--study", "t", "--storage", storage, "--runs-dir", str(runs)]
    pid = server.start([*TUNE, "--epochs", "4", "--trials", "3", *common], tmp_path, "worker")
    deadline = time.monotonic() + 120
    while not list((runs / "tune-t").glob("*/checkpoints/last.ckpt")):  # the first trial is training
        assert time.monotonic() < deadline, (tmp_path / "worker.err").read_text()
        time.sleep(0.02)
    os.kill(pid, signal.SIGTERM)
    assert server.wait(pid) == 143
    err = [line for line in (tmp_path / "worker.err").read_text().splitlines() if line.strip()]
    assert err[-1] == "terminated (SIGTERM)" and "Traceback" not in "\n".join(err)

    (trial,) = optuna.load_study(study_name="t", storage=storage).trials
    assert trial.state.name == "FAIL" and trial.user_attrs["fail_reason"] == "terminated (SIGTERM)"
    (run_dir,) = run_dirs(runs / "tune-t")
    status = read(run_dir / "status.json")
    assert status["state"] == "interrupted" and "SIGTERM" in status["reason"]
    runs_by_role = {r.data.tags.get("mlffbench.role", "trial"): r for r in all_runs(uri)}
    assert runs_by_role["trial"].info.status == "KILLED" and runs_by_role["trial"].data.tags["optuna.state"] == "FAIL"
    assert runs_by_role["study"].info.status == "KILLED"
    assert runs_by_role["study"].data.tags["mlffbench.reason"] == "terminated (SIGTERM)"

    timed(server, ["tune", "--trials", "1", *common], tmp_path, "again")  # --study SAME continues
    trials = optuna.load_study(study_name="t", storage=storage).trials
    assert [(t.number, t.state.name) for t in trials] == [(0, "FAIL"), (1, "COMPLETE")]
    study_run = next(r for r in all_runs(uri) if r.data.tags.get("mlffbench.role") == "study")
    assert study_run.info.status == "FINISHED"
    assert_runs_check(server, runs / "tune-t", tmp_path)


# --------------------------------------------------------------- compare
def test_compare_killed_ten_times_reuses_and_resumes_its_runs(server, tmp_path):
    args = [*COMPARE, "--epochs", str(COMPARE_EPOCHS), "--seeds", "2"]
    server.store(tmp_path / "reference")
    timed(server, [*args, "--runs-dir", str(tmp_path / "reference"), "--json", "reference.json"], tmp_path, "reference")
    expected = read(tmp_path / "reference.json")
    cycle = min(epoch_cycle(r["run_dir"]) for r in expected["runs"])
    runs = tmp_path / "runs"
    uri = server.store(runs)
    rng, codes, reported = random.Random(2603), [], False
    for k in range(KILLS):
        start, wait, err = time.time(), rng.random() > 0.2, tmp_path / f"attempt{k}.err"

        def ready(start=start, wait=wait, err=err):  # a run wrote a checkpoint, or the timing began
            if not wait:
                return True
            return any(t > start for t in checkpoints(runs).values()) or err.is_file() and "timing" in err.read_text()

        codes.append(
            kill_when(
                server,
                [*args, "--runs-dir", str(runs)],
                tmp_path,
                f"attempt{k}",
                ready,
                rng.uniform(0.0, 0.8 if wait else 1.0) * cycle,
            )
        )
        if not reported and any(
            r.info.status == "RUNNING" and r.data.tags.get("mlffbench.kind") == "compare" for r in all_runs(uri)
        ):
            rc, out, _ = server.run(["runs", str(runs), "--check"], tmp_path, "check-stale")
            assert rc == 1 and "compare run" in out and "is gone" in out, out
            reported = True
    assert codes.count(-signal.SIGKILL) >= KILLS // 2, (codes, cycle)
    assert reported, "no kill left a compare's parent run behind"
    timed(server, [*args, "--runs-dir", str(runs), "--json", "final.json"], tmp_path, "final")

    result = read(tmp_path / "final.json")
    assert len(run_dirs(runs)) == 2  # one run per seed: the unfinished ones were resumed, not trained again
    assert sorted(r["run_dir"] for r in result["runs"]) == sorted(str(d) for d in run_dirs(runs))
    for got, want in zip(
        sorted(result["runs"], key=lambda r: r["seed"]), sorted(expected["runs"], key=lambda r: r["seed"]), strict=True
    ):
        assert got["test"] == pytest.approx(want["test"], rel=1e-5)
        assert_same_training(Path(got["run_dir"]), Path(want["run_dir"]))
    parents = [r for r in all_runs(uri) if r.data.tags.get("mlffbench.kind") == "compare"]
    assert {r.info.status for r in parents} <= {"FINISHED", "KILLED"} and len(parents) >= 2
    final = next(r for r in parents if r.info.run_id == result["mlflow_run_id"])
    assert final.info.status == "FINISHED"
    for run in all_runs(uri):
        assert run.info.status != "RUNNING", run.data.tags
        if run.data.tags.get("mlffbench.kind") != "compare":
            assert run.data.tags["mlflow.parentRunId"] == final.info.run_id
            assert_steps_once(uri, run.info.run_id, COMPARE_EPOCHS)
    assert_runs_check(server, runs, tmp_path)


def test_compare_parent_run_ends_failed_on_an_error_and_killed_on_sigterm(server, tmp_path):
    runs = tmp_path / "runs"
    uri = server.store(runs)
    rc, _, err = server.run(
        [*COMPARE, "--epochs", "1", "-t", "batch_size=64", "--runs-dir", str(runs)], tmp_path, "error"
    )
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("[")]
    assert rc == 2 and len(lines) == 1 and "fewer than one batch" in lines[0], err
    (failed,) = [r for r in all_runs(uri) if r.data.tags.get("mlffbench.kind") == "compare"]
    assert failed.info.status == "FAILED" and "fewer than one batch of 64" in failed.data.tags["mlffbench.reason"]

    pid = server.start([*COMPARE, "--epochs", "300", "--runs-dir", str(runs)], tmp_path, "sigterm")
    deadline = time.monotonic() + 120
    while not list(runs.glob("*/checkpoints/last.ckpt")):
        assert time.monotonic() < deadline, (tmp_path / "sigterm.err").read_text()
        time.sleep(0.02)
    os.kill(pid, signal.SIGTERM)
    assert server.wait(pid) == 143
    assert (tmp_path / "sigterm.err").read_text().strip().splitlines()[-1] == "terminated (SIGTERM)"
    killed = next(
        r
        for r in all_runs(uri)
        if r.data.tags.get("mlffbench.kind") == "compare" and r.info.run_id != failed.info.run_id
    )
    assert killed.info.status == "KILLED" and killed.data.tags["mlffbench.reason"] == "terminated (SIGTERM)"
    interrupted = next(d for d in run_dirs(runs) if (d / "checkpoints" / "last.ckpt").is_file())
    assert read(interrupted / "status.json")["state"] == "interrupted"
    assert_runs_check(server, runs, tmp_path)
