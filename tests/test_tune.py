"""`mlffbench tune` on SQLite: typed search spaces, pruning inside the training loop, a
diverging trial, a killed worker resumed with `--study`, the best config rerun by `run`.

Trials use a tiny SchNet (PyTorch: no compilation) on the first 12 EAN configurations.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from mlffbench.plugin.search_space import Categorical, Float, Int, SearchSpace

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


def cli(args, cwd, timeout=300):
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(CLI + args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def cli_background(args, cwd):
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.Popen(CLI + args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def load(storage: str, name: str):
    return optuna.load_study(study_name=name, storage=storage)


# ------------------------------------------------------------ search spaces
@pytest.mark.parametrize("model", ["jat", "neuralil", "schnet"])
def test_plugin_search_spaces_are_typed_and_give_valid_configs(model):
    from mlffbench.plugin.manager import get_registry
    from mlffbench.runs.experiment import resolve_configs

    registry = get_registry()
    spec, card = registry.model(model), registry.dataset("ean")
    space = spec.search_space
    assert isinstance(space, SearchSpace) and len(space.dimensions) >= 4
    assert all(isinstance(d, (Float, Int, Categorical)) for d in space.dimensions.values())
    assert any(isinstance(d, Float) and d.log for d in space.dimensions.values())  # the LR, on a log scale
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    first = next(iter(space.dimensions))
    fixed_value = space.sample(optuna.create_study().ask())[first]
    seen = set()
    for _ in range(12):
        trial = study.ask()
        values = space.sample(trial, fixed={first: fixed_value})
        assert values[first] == fixed_value and first not in trial.params  # fixed: not sampled
        model_over, train_over = space.overrides(values)
        _model_config, train_config = resolve_configs(spec, card, model_over, train_over)
        assert math.isfinite(train_config.lr[1]) and train_config.lr[1] > 0
        seen.add(json.dumps(model_over, sort_keys=True, default=str))
        study.tell(trial, 0.0)
    assert len(seen) > 6  # the space really varies the model


def test_search_space_rejects_bad_dimensions():
    with pytest.raises(ValueError):
        Float(1.0, 1.0)
    with pytest.raises(ValueError):
        Float(0.0, 1.0, log=True)
    with pytest.raises(ValueError):
        Categorical(([1, 2],))
    with pytest.raises(TypeError):
        SearchSpace({"x": (0, 1)})


# --------------------------------------------------- pruning inside the loop
def test_pruning_callback_stops_the_loop_cleanly_within_an_epoch(tmp_path, data_dir):
    """A trial far worse than its predecessors is pruned at its second report, within the
    first epoch; the run record is still complete and says why it stopped."""
    from mlffbench.runs.experiment import RunOptions, train_and_evaluate
    from mlffbench.tuning.objective import PruningCallback

    study = optuna.create_study(pruner=optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=1))
    for value in (1e-4, 2e-4):
        study.add_trial(optuna.trial.create_trial(value=value, intermediate_values={0: value, 1: value, 2: value}))
    trial = study.ask()
    callback = PruningCallback(trial, reports_per_epoch=3, prune=True)
    options = RunOptions(
        model="schnet",
        dataset="ean",
        data_dir=data_dir,
        runs_dir=tmp_path,
        tracking=False,
        progress=False,
        model_params={"hidden_channels": 16, "num_filters": 16, "num_interactions": 1, "num_gaussians": 10},
        train_params={"max_configs": 12, "epochs": 3, "batch_size": 2, "eval_batch_size": 4},
        callbacks=[callback],
    )
    run_dir, metrics = train_and_evaluate(options)
    # 10 training configurations, batch 2: 5 steps; reports after steps 2 and 3 (of 5), then stopped
    assert metrics["stopped"].startswith("pruned at epoch 1 step 3/5"), metrics["stopped"]
    assert metrics["epochs"] == 1 and len(json.loads((run_dir / "history.json").read_text())) == 1
    assert sorted(study.trials[-1].intermediate_values) == [0, 1]  # reported twice, then stopped
    assert math.isfinite(metrics["test"]["force_mae"])  # evaluated and recorded as usual


# ------------------------------------------------------------ diverging trial
@pytest.mark.slow
def test_diverging_trial_is_recorded_with_its_reason_and_the_study_finishes(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    # a peak LR of 1e6 makes the weights, and so the loss, non-finite within the first steps
    out = cli(
        [
            "tune",
            "schnet",
            *TINY,
            "--trials",
            "2",
            "--study",
            "nan",
            "--storage",
            storage,
            "-p",
            "lr_max=1e6",
            "--no-tracking",
            "--runs-dir",
            str(tmp_path / "runs"),
        ],
        tmp_path,
    )
    assert out.returncode == 0, out.stderr
    trials = load(storage, "nan").trials
    assert [t.state.name for t in trials] == ["FAIL", "FAIL"]
    for t in trials:
        assert t.user_attrs["fail_reason"].startswith("diverged: non-finite"), t.user_attrs
        assert "lr_max" not in t.params  # fixed by --param, not sampled
    assert "2 failed" in out.stdout and "diverged" in out.stdout


# ------------------------------------------------ kill, resume, best config
@pytest.mark.slow
def test_killed_worker_resumes_and_the_best_config_reruns(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    runs = tmp_path / "runs"
    args = ["--storage", storage, "--heartbeat", "1", "--no-tracking", "--runs-dir", str(runs)]
    # 6 epochs: a trial lasts long enough (seconds) to be killed in its middle
    worker = cli_background(
        ["tune", "schnet", *TINY, "--epochs", "6", "--trials", "4", "--study", "k", *args], tmp_path
    )
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:  # kill it as soon as its second (or a later) trial runs
            time.sleep(0.1)
            try:
                trials = load(storage, "k").trials
            except KeyError:
                continue
            states = [t.state.name for t in trials]
            if "COMPLETE" in states and states[-1] == "RUNNING":
                break
            assert worker.poll() is None, "the worker ended before it could be killed"
        else:
            pytest.fail("the worker never reached a second trial")
        worker.send_signal(signal.SIGKILL)
    finally:
        if worker.poll() is None:
            worker.kill()
        worker.communicate(timeout=60)
    before = load(storage, "k").trials
    finished = {t.number: t.values for t in before if t.state.name == "COMPLETE"}
    interrupted = [t.number for t in before if t.state.name == "RUNNING"]
    assert finished and len(interrupted) == 1
    time.sleep(2.5)  # past the grace period (2 heartbeats)
    out = cli(["tune", "--study", "k", "--trials", "1", *args], tmp_path)
    assert out.returncode == 0, out.stderr
    assert f"trials {interrupted} of stopped workers marked failed" in out.stderr.replace("\n", " ")
    after = load(storage, "k").trials
    assert len(after) == len(before) + 1 and [t.number for t in after] == list(range(len(after)))
    assert {t.number: t.values for t in after if t.number in finished} == finished  # kept as they were
    assert after[interrupted[0]].state.name == "FAIL"
    assert after[-1].state.name == "COMPLETE"  # a new trial ran
    # the best config reruns with `mlffbench run` and reproduces the best trial
    best = min((t for t in after if t.state.name == "COMPLETE"), key=lambda t: t.values[0])
    config = runs / "tune-k" / "best-config.json"
    saved = json.loads(config.read_text())
    assert saved["dataset"] == "ean" and saved["model"]["hidden_channels"] == 16
    rerun = cli(
        [
            "run",
            "schnet",
            "--config",
            str(config),
            "--max-configs",
            "12",
            "--no-tracking",
            "--no-progress",
            "--runs-dir",
            str(tmp_path / "rerun"),
        ],
        tmp_path,
    )
    assert rerun.returncode == 0, rerun.stderr
    run_dir = Path(
        next(line for line in rerun.stdout.splitlines() if line.startswith("run directory:")).split(":", 1)[1].strip()
    )
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["val"]["force_mae"] == pytest.approx(best.values[0], rel=1e-4)
    assert (runs / "tune-k" / "optimization-history.png").stat().st_size > 1000


def test_tune_errors_are_one_line(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    for args, message in [
        (["tune", "schnet", "--dataset", "ean", "-p", "no_such=1"], "neither a search-space parameter"),
        (["tune", "--study", "missing", "--storage", storage], "no study 'missing'"),
        (["tune", "schnet", "--dataset", "ean", "--objective", "speed"], "first objective must be accuracy"),
        (["tune", "schnet", "--dataset", "ean", "--storage", "nosuchdb://x"], "cannot open study storage"),
        (["tune", "schnet", "--dataset", "ean", "--study", "bad", "--storage", storage, "-p", "cutoff=-1"], "cutoff"),
    ]:
        out = cli([*args, "--no-tracking", "--runs-dir", str(tmp_path / "runs")], tmp_path)
        assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr, (args, out.stderr)
    assert optuna.get_all_study_names(storage) == []  # a rejected value leaves no study behind


@pytest.mark.slow
def test_multi_objective_study_reports_the_pareto_front(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    out = cli(
        [
            "tune",
            "schnet",
            *TINY,
            "--trials",
            "2",
            "--study",
            "mo",
            "--storage",
            storage,
            "--objective",
            "accuracy,speed",
            "--no-tracking",
            "--runs-dir",
            str(tmp_path / "runs"),
        ],
        tmp_path,
    )
    assert out.returncode == 0, out.stderr
    study = load(storage, "mo")
    assert len(study.directions) == 2
    trials = study.trials
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    for t in trials:
        assert t.values[1] == t.user_attrs["inference_us_per_atom_step"] > 0
    front = {t.number for t in study.best_trials}
    assert front and all((tmp_path / "runs" / "tune-mo" / "pareto" / f"trial-{n}.json").is_file() for n in front)
    assert "Pareto front" in out.stdout and (tmp_path / "runs" / "tune-mo" / "pareto-front.png").is_file()


def test_pruners_follow_the_reports():
    from mlffbench.tuning.settings import TuneSettings, default_reports_per_epoch
    from mlffbench.tuning.storage import make_pruner

    assert (
        default_reports_per_epoch(1) == 4 and default_reports_per_epoch(2) == 2 and default_reports_per_epoch(10) == 1
    )
    hyperband = make_pruner(TuneSettings("jat", "ean", epochs=3, reports_per_epoch=2, pruner="hyperband"))
    assert isinstance(hyperband, optuna.pruners.HyperbandPruner) and hyperband._max_resource == 6
    assert isinstance(
        make_pruner(TuneSettings("jat", "ean", epochs=1, reports_per_epoch=4)), optuna.pruners.MedianPruner
    )
    # Optuna cannot prune multi-objective trials
    multi = TuneSettings("jat", "ean", objectives=("accuracy", "speed"), pruner="median")
    assert isinstance(make_pruner(multi), optuna.pruners.NopPruner)
