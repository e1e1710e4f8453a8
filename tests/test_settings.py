"""Defaults when an option is left out (mlffbench.settings, `mlffbench config`), and the
mission's commands typed without --dataset / --epochs: the default dataset, compare's equal
wall-clock budget, tune's default per-trial budget."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlffbench import settings
from mlffbench.errors import ConfigError
from mlffbench.training.schedule import learning_rate

CLI = [sys.executable, "-m", "mlffbench.cli.app"]
TINY_SCHNET_RUN = [
    "-p",
    "hidden_channels=16",
    "-p",
    "num_filters=16",
    "-p",
    "num_interactions=1",
    "-p",
    "num_gaussians=10",
    "-t",
    "batch_size=2",
    "-t",
    "eval_batch_size=4",
]
TINY_SCHNET = [
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
ENV_KEYS = (
    "MLFFBENCH_DATASET",
    "MLFFBENCH_RUNS_DIR",
    "MLFFBENCH_TRACKING_URI",
    "MLFLOW_TRACKING_URI",
    "MLFFBENCH_STORAGE",
)


def cli(args, cwd, env=None, timeout=600):
    environ = {k: v for k, v in os.environ.items() if k not in ENV_KEYS}
    environ.update({"COLUMNS": "200", **(env or {})})
    return subprocess.run(CLI + list(args), capture_output=True, text=True, cwd=cwd, env=environ, timeout=timeout)


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for key in (*ENV_KEYS, "MLFFBENCH_DATA_DIR"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("MLFFBENCH_CONFIG", str(tmp_path / "user" / "config.toml"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return tmp_path


def test_resolution_order_file_then_environment_then_command_line(clean_env, monkeypatch):
    user = clean_env / "user" / "config.toml"
    user.parent.mkdir()
    user.write_text('[defaults]\ndataset = "water"\ndata_dir = "data"\nstorage = "sqlite:///user.db"\n')
    values = settings.effective()
    assert values["dataset"] == settings.Value("dataset", "water", str(user))
    assert values["data_dir"].value == str(user.parent / "data")  # relative to the file's folder
    assert values["runs_dir"] == settings.Value("runs_dir", "runs", "built-in")

    project = Path.cwd() / settings.PROJECT_FILE  # the project's file overrides the user's
    project.write_text('[defaults]\ndataset = "rmd17-ethanol"\nruns_dir = "/scratch/runs"\n')
    values = settings.effective()
    assert (values["dataset"].value, values["dataset"].source) == ("rmd17-ethanol", str(project))
    assert values["runs_dir"].value == "/scratch/runs"
    assert values["storage"].source == str(user)  # a key the project file leaves alone stays the user's

    monkeypatch.setenv("MLFFBENCH_DATASET", "ean")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    values = settings.effective()
    assert (values["dataset"].value, values["dataset"].source) == ("ean", "$MLFFBENCH_DATASET")
    assert (values["tracking_uri"].value, values["tracking_uri"].source) == (
        "http://127.0.0.1:5000",
        "$MLFLOW_TRACKING_URI",
    )
    monkeypatch.setenv("MLFFBENCH_TRACKING_URI", "sqlite:///mine.db")  # ours wins over MLflow's variable
    assert settings.get("tracking_uri") == "sqlite:///mine.db"

    values = settings.effective({"dataset": "hfo2-slabs", "runs_dir": None})
    assert (values["dataset"].value, values["dataset"].source) == ("hfo2-slabs", "command line")
    assert values["runs_dir"].source == str(project)  # None: not given on the command line
    assert settings.get("dataset", "comp6-s66x8") == "comp6-s66x8"


def test_defaults_feed_the_stores_and_the_data_folder(clean_env, monkeypatch):
    from mlffbench.data.loading import default_data_dir
    from mlffbench.runs.tracking import default_tracking_uri
    from mlffbench.tuning.storage import default_storage

    assert default_tracking_uri(Path("r")) == f"sqlite:///{Path('r').resolve() / 'mlflow.db'}"
    assert default_storage(Path("r")) == f"sqlite:///{Path('r').resolve() / 'optuna.db'}"
    assert default_data_dir() == Path("~/.cache/mlffbench/data").expanduser()
    (Path.cwd() / settings.PROJECT_FILE).write_text(
        '[defaults]\ndata_dir = "d"\ntracking_uri = "sqlite:///t.db"\nstorage = "postgresql://u@127.0.0.1/o"\n'
    )
    assert default_tracking_uri(Path("r")) == "sqlite:///t.db"
    assert default_storage(Path("r")) == "postgresql://u@127.0.0.1/o"
    assert default_data_dir() == Path.cwd() / "d"
    assert default_data_dir("given") == Path("given")  # the command line's folder wins
    monkeypatch.setenv("MLFFBENCH_DATA_DIR", "/from/env")
    assert default_data_dir() == Path("/from/env")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('[defaults]\ndatset = "ean"\n', "unknown setting 'datset'"),
        ("[defaults]\ndataset = 3\n", "setting 'dataset' must be a string"),
        ('[default]\ndataset = "ean"\n', "unknown table [default]"),
        ("[defaults\n", "not valid TOML"),
    ],
)
def test_bad_settings_file_is_one_line_naming_it(clean_env, text, fragment):
    project = Path.cwd() / settings.PROJECT_FILE
    project.write_text(text)
    with pytest.raises(ConfigError, match=fragment.replace("[", r"\[")) as info:
        settings.effective()
    assert str(project) in str(info.value)
    out = cli(["config"], Path.cwd(), env={"MLFFBENCH_CONFIG": os.environ["MLFFBENCH_CONFIG"]})
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and str(project.name) in lines[0] and "error:" in lines[0]


def test_config_command_shows_values_and_sources(tmp_path):
    (tmp_path / settings.PROJECT_FILE).write_text('[defaults]\nruns_dir = "elsewhere"\n')
    env = {"MLFFBENCH_CONFIG": str(tmp_path / "none.toml"), "MLFFBENCH_DATASET": "water"}
    out = cli(["config", "--json", "-"], tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout)["settings"]
    assert record["dataset"]["value"] == "water" and record["dataset"]["source"] == "$MLFFBENCH_DATASET"
    assert record["runs_dir"]["value"] == str(tmp_path / "elsewhere")
    assert record["runs_dir"]["source"] == str(tmp_path / settings.PROJECT_FILE)
    assert record["storage"] == {"value": "", "source": "built-in", "meaning": settings.BUILTIN["storage"][1]}
    table = cli(["config"], tmp_path, env={**env, "COLUMNS": "400"})
    assert table.returncode == 0 and "$MLFFBENCH_DATASET" in table.stdout and "elsewhere" in table.stdout


def test_time_budget_schedule_follows_the_spent_fraction():
    lr = (1e-4, 1e-2, 1e-6)
    assert learning_rate("one-cycle", lr, 0, 0, 10, 0, progress=0.0) == pytest.approx(1e-4)
    assert learning_rate("one-cycle", lr, 3, 1, 10, 0, progress=0.45) == pytest.approx(1e-2)
    assert learning_rate("one-cycle", lr, 9, 9, 10, 0, progress=0.9) == pytest.approx(1e-4)
    assert learning_rate("one-cycle", lr, 9, 9, 10, 0, progress=1.7) == pytest.approx(1e-4 * 1e-6 / 1e-2)
    # per-epoch cycles do not depend on the budget
    assert learning_rate("one-cycle-epoch", lr, 2, 4, 10, 0, progress=0.1) == learning_rate(
        "one-cycle-epoch", lr, 2, 4, 10, 5
    )


@pytest.mark.slow
def test_run_and_tune_take_the_default_dataset_and_runs_folder(tmp_path):
    """`run MODEL` and `tune MODEL` without --dataset: the configured default (here the project
    file's runs folder; the dataset is the built-in EAN)."""
    (tmp_path / settings.PROJECT_FILE).write_text('[defaults]\nruns_dir = "elsewhere"\n')
    env = {"MLFFBENCH_CONFIG": str(tmp_path / "none.toml")}
    out = cli(
        ["run", "schnet", "--max-configs", "12", "--epochs", "1", *TINY_SCHNET_RUN, "--no-tracking", "--no-progress"],
        tmp_path,
        env,
    )
    assert out.returncode == 0, out.stderr
    (run_dir,) = (tmp_path / "elsewhere").iterdir()
    assert run_dir.name.startswith("schnet-ean-")
    assert json.loads((run_dir / "metrics.json").read_text())["dataset"] == "ean"

    out = cli(
        ["tune", "schnet", "--trials", "1", "--max-configs", "12", "--epochs", "1", *TINY_SCHNET, "--no-tracking"],
        tmp_path,
        env,
    )
    assert out.returncode == 0, out.stderr
    assert "schnet on ean" in out.stderr and "budget per trial: 1 epochs" in out.stderr
    assert (tmp_path / "elsewhere" / "optuna.db").is_file()
    (study_dir,) = (tmp_path / "elsewhere").glob("tune-schnet-ean-*")
    assert (study_dir / "best-config.json").is_file()
    assert "1/1 trials" in out.stderr


@pytest.mark.slow
def test_tune_without_a_budget_trains_each_trial_for_the_default_time(tmp_path, monkeypatch):
    """No --epochs and no --trial-timeout: the per-trial time budget, said at the start; the
    trial trains until it is spent (epochs 0 = until the budget, see the loop)."""
    from mlffbench.tuning.study import TuneOptions, tune

    said: list[str] = []
    train = {"batch_size": 2, "eval_batch_size": 4}
    options = TuneOptions(
        model="schnet",
        dataset="ean",
        trials=1,
        max_configs=12,
        runs_dir=tmp_path / "runs",
        tracking=False,
        params={"width": 16, "num_interactions": 1, "num_gaussians": 10},
        train_params=train,
    )
    import mlffbench.tuning.study as study_module

    monkeypatch.setattr(study_module, "DEFAULT_TRIAL_BUDGET_S", 4.0)
    summary = tune(options, log=said.append)
    assert any("budget per trial: 4 s of training" in s and "the default" in s for s in said), said
    assert any("1/1 trials" in s for s in said), said
    assert summary["n_complete"] == 1
    (config,) = (tmp_path / "runs").glob("tune-*/*/config.json")
    record = json.loads(config.read_text())["train"]
    assert record["epochs"] == 0 and record["max_time_s"] == 4.0
    metrics = json.loads((config.parent / "metrics.json").read_text())
    assert metrics["stopped"].startswith("time budget") and 4.0 <= metrics["train_s"] < 4.0 * 1.5


@pytest.mark.slow
def test_compare_without_epochs_gives_every_model_the_same_wall_clock(tmp_path):
    budget = 5.0
    args = [
        "compare",
        "schnet",
        "neuralil",
        "--max-configs",
        "20",
        "--budget",
        str(budget),
        "-p",
        "schnet:hidden_channels=16",
        "-p",
        "schnet:num_filters=16",
        "-p",
        "schnet:num_interactions=1",
        "-p",
        "schnet:num_gaussians=10",
        "-p",
        "neuralil:core_widths=[16,16]",
        "-p",
        "neuralil:n_max=2",
        "-t",
        "batch_size=2",
        "-t",
        "eval_batch_size=4",
        "--repeats",
        "2",
        "--train-steps",
        "1",
        "--no-progress",
        "--no-tracking",
        "--out",
        "report",
        "--json",
        "c.json",
    ]
    env = {"MLFFBENCH_CONFIG": str(tmp_path / "none.toml")}
    out = cli(args, tmp_path, env)
    assert out.returncode == 0, out.stderr
    result = json.loads((tmp_path / "c.json").read_text())
    assert result["dataset"] == "ean" and result["budget"]["given"] == [f"{budget:g} s"]
    assert f"[1/2] training schnet on ean, seed 0, budget {budget:g} s" in out.stderr
    for record in result["runs"]:
        run_dir = tmp_path / record["run_dir"]  # relative to the working directory
        metrics = json.loads((run_dir / "metrics.json").read_text())
        history = json.loads((run_dir / "history.json").read_text())
        assert metrics["stopped"] == f"time budget of {budget:g} s reached"
        # the budget counts training steps (compilation and validation excluded) and is checked
        # before every step: the recorded training time passes it by about one step (the mean
        # step, from the run's rate; a few of them, or 20 %, for a step slowed by the load)
        step = 2 / metrics["train_configs_per_s"]  # batch size 2
        assert budget <= metrics["train_s"] <= budget + max(0.2 * budget, 5 * step), (record["model"], metrics, step)
        assert sum(r["epoch_seconds"] for r in history) == pytest.approx(metrics["train_s"])
        assert metrics["wall_s"] > metrics["train_s"]
        assert json.loads((run_dir / "config.json").read_text())["train"]["epochs"] == 0
    assert (tmp_path / "report" / "report.md").read_text().count(f"budget per run: {budget:g} s") == 1
    again = cli(args, tmp_path, env)  # the same budget again: the finished runs are reused
    assert again.returncode == 0, again.stderr
    assert again.stderr.count("reusing") == 2
