"""`mlffbench run` end to end on real data with a small JAT: records, MLflow, compilation, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

CLI = [sys.executable, "-m", "mlffbench.cli.app"]
SMALL = [
    "--dataset",
    "ean",
    "--max-configs",
    "30",
    "--batch-size",
    "4",
    "--seed",
    "3",
    "-p",
    "layer_dims=[16,16]",
    "-p",
    "embed_d=16",
    "-p",
    "cutoff=3.5",
    "-p",
    "species_energy_shift=true",
    "-t",
    "eval_batch_size=8",
    "--no-progress",
]
REQUIRED = ("energy_mae_per_atom", "energy_rmse_per_atom", "force_mae", "force_rmse")


def run(args, cwd, timeout=600, **environ):
    env = {**os.environ, "COLUMNS": "200", **environ}
    return subprocess.run(CLI + args, capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)


def run_dir_of(out) -> Path:
    line = next(line for line in out.stdout.splitlines() if line.startswith("run directory:"))
    return Path(line.split(":", 1)[1].strip())


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("e2e")
    # its own, empty compilation cache: this run compiles every program it runs
    compiled = str(tmp_path_factory.mktemp("compiled"))
    out = run(["run", "jat", *SMALL, "--epochs", "3"], cwd, JAX_COMPILATION_CACHE_DIR=compiled)
    assert out.returncode == 0, out.stderr
    return cwd, cwd / run_dir_of(out), out, compiled


def test_run_record(finished_run):
    _cwd, run_dir, out, _ = finished_run
    for name in (
        "config.json",
        "split.json",
        "stats.json",
        "metrics.json",
        "history.json",
        "checkpoints/best.ckpt",
        "checkpoints/last.ckpt",
    ):
        assert (run_dir / name).is_file(), name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for part in ("val", "test"):
        assert set(REQUIRED) <= set(metrics[part])
        assert all(np.isfinite(metrics[part][k]) for k in REQUIRED)
    for key in (
        "train_configs_per_s",
        "compile_s",
        "wall_s",
        "n_params",
        "split_fingerprint",
        "dataset_fingerprint",
        "model",
        "dataset",
        "versions",
        "device",
    ):
        assert metrics[key] not in (None, ""), key
    assert metrics["model"] == "jat" and metrics["dataset"] == "ean" and metrics["epochs"] == 3
    assert {"python", "jax", "numpy"} <= set(metrics["versions"])
    split = json.loads((run_dir / "split.json").read_text())
    assert split["fingerprint"] == metrics["split_fingerprint"]
    assert len(split["train"]) + len(split["val"]) + len(split["test"]) == 30
    assert "F MAE meV/Å" in out.stdout and "configurations/s" in out.stdout


def test_compiles_once_per_bucket_shape(finished_run):
    _cwd, run_dir, *_ = finished_run
    from mlffbench.data.loading import load_dataset
    from mlffbench.data.splits import Split
    from mlffbench.graph.batching import GraphBatcher
    from mlffbench.graph.neighbors import compute_neighbors

    metrics = json.loads((run_dir / "metrics.json").read_text())
    split = Split.load(run_dir / "split.json")
    ds = load_dataset("ean").select(np.arange(30))
    batcher = GraphBatcher(ds, compute_neighbors(ds, 3.5), (1, 6, 7, 8), 4)
    train_shapes = set()
    for epoch in range(3):
        rng = np.random.default_rng([3, epoch])
        train_shapes |= set(batcher.bucket_shapes(split.train, rng=rng, drop_remainder=True, batch_size=4))
    val_shapes = set(batcher.bucket_shapes(split.val, batch_size=8))
    # the energy offsets after force-only training predict the training part at the evaluation
    # batch size; they change the potential's reference energies (constants of the compiled
    # prediction), so the final evaluation of val and test compiles its shapes once more
    fit_shapes = set(batcher.bucket_shapes(split.train, batch_size=8))
    final_shapes = val_shapes | set(batcher.bucket_shapes(split.test, batch_size=8))
    assert metrics["energies"] == "offset-fitted"
    # one compilation per distinct (shape, function): never once per batch or per epoch
    assert metrics["compile_count"] == len(train_shapes) + len(val_shapes | fit_shapes) + len(final_shapes)
    assert metrics["compile_count"] < 3 * len(split.train) // 4


def test_a_second_identical_run_loads_its_programs_from_the_compilation_cache(finished_run):
    cwd, run_dir, _, compiled = finished_run
    first = json.loads((run_dir / "metrics.json").read_text())
    out = run(["run", "jat", *SMALL, "--epochs", "3"], cwd, JAX_COMPILATION_CACHE_DIR=compiled)
    assert out.returncode == 0, out.stderr
    second = json.loads((cwd / run_dir_of(out) / "metrics.json").read_text())
    assert first["compile_cache"]["loads"] == 0  # an empty cache: everything compiled
    # the same shapes and functions: every program loaded, none compiled
    assert second["compile_count"] == first["compile_count"] == second["compile_cache"]["loads"]
    assert second["compile_cache"]["load_s"] == second["compile_s"]
    # what is left is tracing and loading (measured: 7.7 s of 68 s for JAT on 24 ethanol configurations)
    assert second["compile_s"] < 0.35 * first["compile_s"], (first["compile_s"], second["compile_s"])
    assert second["test"]["force_mae"] == pytest.approx(first["test"]["force_mae"], rel=1e-6)


def test_mlflow_lists_the_run(finished_run):
    _cwd, run_dir, *_ = finished_run
    import mlflow

    config = json.loads((run_dir / "config.json").read_text())
    client = mlflow.MlflowClient(tracking_uri=config["tracking_uri"])
    found = client.get_run(config["mlflow_run_id"])
    assert found.data.params["model"] == "jat" and found.data.params["train.batch_size"] == "4"
    history = client.get_metric_history(found.info.run_id, "val_force_mae")
    assert [m.step for m in history] == [1, 2, 3]
    artifacts = {a.path for a in client.list_artifacts(found.info.run_id)}
    assert {"metrics.json", "split.json", "checkpoints"} <= artifacts
    experiment = client.get_experiment_by_name("mlffbench")
    assert found.info.run_id in [r.info.run_id for r in client.search_runs([experiment.experiment_id])]


def test_killed_run_resumes_to_the_same_result(tmp_path):
    (tmp_path / "a").mkdir()
    reference = run(["run", "jat", *SMALL, "--epochs", "4", "--no-tracking"], tmp_path / "a")
    assert reference.returncode == 0, reference.stderr
    expected = json.loads((tmp_path / "a" / run_dir_of(reference) / "metrics.json").read_text())

    (tmp_path / "b").mkdir()
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.Popen(
        CLI + ["run", "jat", *SMALL, "--epochs", "4", "--no-tracking"],
        cwd=tmp_path / "b",
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 300
    killed_at = None
    while time.time() < deadline and proc.poll() is None:
        for last in (tmp_path / "b" / "runs").glob("*/checkpoints/last.ckpt"):
            try:
                with zipfile.ZipFile(last) as z:
                    epochs = json.loads(z.read("loop.json"))["epoch"]
            except Exception:
                continue
            if epochs >= 2:
                os.killpg(proc.pid, signal.SIGKILL)
                killed_at = (last.parents[1], epochs)
        if killed_at:
            break
        time.sleep(0.05)
    proc.wait(timeout=60)
    assert killed_at is not None, "the run finished before it could be killed"
    run_dir, epochs = killed_at
    assert epochs < 4 and not (run_dir / "metrics.json").exists()
    resumed = run(["run", "--resume", str(run_dir)], tmp_path / "b")
    assert resumed.returncode == 0, resumed.stderr
    got = json.loads((run_dir / "metrics.json").read_text())
    assert got["epochs"] == 4 and got["split_fingerprint"] == expected["split_fingerprint"]
    for part in ("val", "test"):
        for key in REQUIRED:
            assert got[part][key] == pytest.approx(expected[part][key], rel=1e-5), (part, key)
