"""`mlffbench run ace-linear` end to end on real data (rMD17 ethanol, a tiny basis): the fitted
run writes the usual record (one epoch, train_s = the fit's time, the fit's own record),
restores from its directory with the fitted coefficients, and a resume fits nothing again."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from mlffbench.runs.trained import TrainedModel
from mlffbench.training import checkpoint

CLI = [sys.executable, "-m", "mlffbench.cli.app"]
TINY = ["-p", "n_radial=3", "-p", "l_max=2", "-p", "body_order=3", "-p", "cutoff=4.0"]
ARGS = ["--dataset", "rmd17-ethanol", "--max-configs", "40", "--no-progress", "--no-tracking", *TINY]


def cli(args, cwd):
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(CLI + args, capture_output=True, text=True, cwd=cwd, env=env, timeout=600)


@pytest.fixture(scope="module")
def fitted_run(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("ace-run")
    out = cli(["run", "ace-linear", *ARGS, "--epochs", "7"], cwd)
    assert out.returncode == 0, out.stderr
    line = next(line for line in out.stdout.splitlines() if line.startswith("run directory:"))
    return cwd, cwd / line.split(":", 1)[1].strip(), out


@pytest.mark.slow
def test_fitted_run_record(fitted_run):
    _, run_dir, out = fitted_run
    assert "fitted in closed form" in out.stdout + out.stderr and "ignored" in out.stdout + out.stderr
    metrics = json.loads((run_dir / "metrics.json").read_text())
    fit = metrics["fit"]
    assert metrics["epochs"] == 1 and metrics["best_epoch"] == 1  # --epochs 7 is ignored
    assert metrics["train_s"] == pytest.approx(fit["fit_s"]) and fit["fit_s"] > 0
    assert fit["solver"] == "cholesky" and fit["jacobian"] == "positions" and fit["affine_error"] < 1e-10
    assert fit["accumulator_bytes"] == 8 * (fit["n_params"] ** 2 + fit["n_params"])
    assert fit["configs"] == len(json.loads((run_dir / "split.json").read_text())["train"])
    # the fit beats predicting zero forces by far on held-out configurations
    assert metrics["test"]["force_mae"] < 0.5 * metrics["zero_force_mae"]
    history = json.loads((run_dir / "history.json").read_text())
    assert len(history) == 1 and history[0]["fit"]["n_params"] == fit["n_params"]
    best, last = (checkpoint.load(run_dir / "checkpoints" / f"{n}.ckpt") for n in ("best", "last"))
    assert best[1] == last[1]


@pytest.mark.slow
def test_fitted_run_restores_and_resumes(fitted_run):
    cwd, run_dir, _ = fitted_run
    metrics = json.loads((run_dir / "metrics.json").read_text())
    model = TrainedModel.from_run(run_dir, with_data=True)
    test = np.asarray(model.require_data().split.test)
    pred = model.predictions(test)
    mae = float(np.mean(np.abs(pred["force_pred"] - pred["force_ref"])))
    assert mae == pytest.approx(metrics["test"]["force_mae"], rel=1e-9)
    out = cli(["run", "--resume", str(run_dir), "--no-progress", "--no-tracking"], cwd)
    assert out.returncode == 0, out.stderr
    again = json.loads((run_dir / "metrics.json").read_text())
    assert again["test"] == metrics["test"] and again["fit"] == metrics["fit"]


def test_fit_without_targets_is_one_line_error(tmp_path):
    out = cli(["run", "ace-linear", *ARGS, "-t", "energy_weight=0", "-t", "force_weight=0"], tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "weight" in out.stderr, out.stderr
