"""``mlffbench tasks`` / ``mlffbench task`` on trained models, ``compare`` showing task figures,
a third-party task registered only through its entry point, and the errors of bad input.

One module fixture trains SchNet (torch) and NeuralIL (jax) for one epoch on a small EMT copper file
with stress: a volume series of the cubic cell (7 volumes) and 5 strained, rattled cells.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from mlffbench.cli.app import main
from mlffbench.testing import emt_labelled

MODELS = {
    "schnet": {
        "hidden_channels": 8,
        "num_filters": 8,
        "num_interactions": 1,
        "num_gaussians": 8,
        "cutoff": 4.0,
        "readout_channels": 8,
    },
    "neuralil": {"core_widths": [8, 8], "cutoff": 4.0, "species_energy_shift": True},
}
TRAIN = {"batch_size": 2, "eval_batch_size": 4, "epochs": 1, "seed": 0, "stress_weight": 1.0, "energy_weight": 1.0}
PACKAGE = Path(__file__).resolve().parent / "third_party" / "mlffbench_example_task"


def _cli(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False, env={"COLUMNS": "200"})


def _ok(*args: str):
    result = _cli(*args)
    assert result.exit_code == 0, result.output
    return result


def copper_frames():
    from ase.build import bulk

    frames, rng = [], np.random.default_rng(0)
    cells = [np.eye(3) * s ** (1 / 3) for s in np.linspace(0.94, 1.06, 7)]
    for _ in range(5):
        eps = rng.uniform(-0.02, 0.02, (3, 3))
        cells.append(np.eye(3) + 0.5 * (eps + eps.T))
    for k, deformation in enumerate(cells):
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
        atoms.set_cell(atoms.cell.array @ deformation.T, scale_atoms=True)
        if k >= 7:
            atoms.positions += rng.normal(0, 0.05, atoms.positions.shape)
        frames.append(emt_labelled(atoms))
    return frames


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    import ase.io

    folder = tmp_path_factory.mktemp("tasks")
    data = folder / "cu.extxyz"
    ase.io.write(data, copper_frames(), format="extxyz")
    made = {}
    for model, options in MODELS.items():
        config = folder / f"{model}.json"
        config.write_text(json.dumps({"model": options, "train": TRAIN}))
        _ok("run", model, "--dataset", str(data), "--unit", "stress=eV/angstrom^3", "--config", str(config),
            "--fractions", "0.5,0.25,0.25", "--runs-dir", str(folder / model), "--no-progress")  # fmt: skip
        (made[model],) = [p for p in (folder / model).iterdir() if (p / "config.json").is_file()]
    return made


def test_tasks_lists_the_builtin_tasks():
    out = _ok("tasks", "--options").output
    for name in ("check", "md", "scan", "inference", "eos", "elastic", "phonons"):
        assert f"│ {name} " in out, out


@pytest.mark.slow
def test_eos_elastic_phonons_on_trained_models_and_compare(runs, third_party, tmp_path):
    """eos on a torch and a JAX model, elastic and phonons, a third-party task registered only
    through its entry point, and compare showing all their figures side by side."""
    from mlffbench.plugin.manager import get_registry

    assert get_registry().provider[("tasks", "pressure")] == "example_task"
    assert "│ pressure " in _ok("tasks").output
    schnet, neuralil = runs["schnet"], runs["neuralil"]
    out = _ok(
        "task", "eos", str(schnet), str(neuralil), "-o", "max_steps=20", "--json", str(tmp_path / "eos.json")
    ).output
    assert "B0" in out and "V0_ref" in out
    for run_dir in (schnet, neuralil):
        result = json.loads((run_dir / "tasks" / "eos" / "result.json").read_text())
        assert (run_dir / "tasks" / "eos" / "eos.png").is_file()
        assert result["figures"]["B0"]["unit"] == "GPa"
        # the file's volume series is fitted on its EMT reference energies beside the model's
        assert result["figures"]["B0_ref"]["value"] == pytest.approx(134.4, rel=0.03)
        assert result["figures"]["V0_ref"]["value"] == pytest.approx(11.57, rel=0.01)
    both = json.loads((tmp_path / "eos.json").read_text())
    assert [r["model"] for r in both] == ["schnet", "neuralil"]
    _ok("task", "elastic", str(schnet), "-o", "max_steps=20")
    _ok("task", "phonons", str(schnet), "-o", "relax=false", "-o", "mesh=4", "-o", "band_points=20")
    elastic = json.loads((schnet / "tasks" / "elastic" / "result.json").read_text())["figures"]
    phonons = json.loads((schnet / "tasks" / "phonons" / "result.json").read_text())["figures"]
    assert {"C11", "C12", "C44", "K_VRH", "G_VRH", "born_stable"} <= set(elastic)
    assert {"lowest_frequency", "imaginary_modes"} <= set(phonons) and phonons["lowest_frequency"]["unit"] == "THz"
    # the MLflow run of the model holds the figures
    import mlflow

    config = json.loads((schnet / "config.json").read_text())
    logged = mlflow.MlflowClient(config["tracking_uri"]).get_run(config["mlflow_run_id"]).data.metrics
    assert "task.elastic.C11" in logged and "task.phonons.lowest_frequency" in logged
    _ok("task", "pressure", str(schnet), str(neuralil), "-o", "scale=0.98")
    assert (neuralil / "tasks" / "pressure" / "result.json").is_file()
    # compare: a column per task figure, the same models and split
    report = tmp_path / "cmp"
    _ok("compare", "--runs", str(schnet), str(neuralil), "--repeats", "1", "--no-tracking", "--out", str(report),
        "--json", str(tmp_path / "compare.json"))  # fmt: skip
    numbers = json.loads((tmp_path / "compare.json").read_text())
    assert set(numbers["tasks"]) == {"schnet", "neuralil"}
    assert "B0" in numbers["tasks"]["neuralil"]["eos"] and "C44" in numbers["tasks"]["schnet"]["elastic"]
    text = (report / "report.md").read_text()
    assert "## Task results" in text and "eos.B0 GPa" in text and "elastic.C11 GPa" in text
    assert numbers["tasks"]["neuralil"]["pressure"]["pressure"]["unit"] == "GPa" and "pressure.pressure GPa" in text


@pytest.mark.slow
def test_md_command_keeps_its_files_and_writes_the_task_result(runs, tmp_path):
    schnet = runs["schnet"]
    _ok("md", str(schnet), "--steps", "5", "--out", str(tmp_path / "md"))
    assert (tmp_path / "md" / "md.json").is_file()
    result = json.loads((schnet / "tasks" / "md" / "result.json").read_text())
    assert result["task"] == "md" and "drift" in result["figures"]


def test_bad_input_exits_2_with_one_line(tmp_path):
    result = _cli("task", "nope", str(tmp_path))
    assert result.exit_code == 2 and "unknown task 'nope'" in result.output
    result = _cli("task", "eos", str(tmp_path))
    assert result.exit_code == 2 and f"'{tmp_path}' is not a run directory (no config.json)" in result.output
    result = _cli("task", "eos", str(tmp_path), "-o", "points")
    assert result.exit_code == 2 and "--option 'points' is not of the form name=value" in result.output
    result = _cli("task", "eos", str(tmp_path), "-o", "points=x")
    assert result.exit_code == 2 and "option points: expected int" in result.output


def test_jat_on_one_element_stops_with_one_line(tmp_path):
    """JAT's messages carry only the sender's element: on Cu alone its energy cannot depend on the
    positions (docs/models/jat.md §4), so the run stops before it makes a run directory."""
    import ase.io

    data = tmp_path / "cu.extxyz"
    ase.io.write(data, copper_frames()[:4], format="extxyz")
    result = _cli("run", "jat", "--dataset", str(data), "--runs-dir", str(tmp_path / "runs"), "--no-progress")
    assert result.exit_code == 2 and "jat: the data has one element (Z=29)" in result.output, result.output
    assert not any((tmp_path / "runs").glob("*/config.json"))


@pytest.mark.slow
def test_eos_on_a_non_periodic_configuration_names_it(runs, tmp_path):
    import ase.io
    from ase.build import molecule

    path = tmp_path / "water.xyz"
    ase.io.write(path, molecule("H2O"))
    result = _cli("task", "eos", str(runs["schnet"]), "-o", f"structure={path}")
    assert result.exit_code == 2, result.output
    assert "water.xyz[0] is not periodic along all three cell vectors" in result.output


@pytest.fixture(scope="module")
def third_party(tmp_path_factory):
    """The example task package installed for real with pip (a --target folder, no network) and
    put on sys.path; the plugins are discovered afresh (and again after the module)."""
    from mlffbench.plugin import manager

    folder = tmp_path_factory.mktemp("third-party")
    source = folder / "src"
    shutil.copytree(PACKAGE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    site = folder / "site"
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(site),
         str(source)],
        check=True, capture_output=True, text=True, timeout=300, env=env, cwd=folder,
    )  # fmt: skip
    assert (site / "mlffbench_example_task" / "__init__.py").is_file()
    sys.path.insert(0, str(site))
    manager.reset()
    yield site
    sys.path.remove(str(site))
    for name in [m for m in sys.modules if m.startswith("mlffbench_example_task")]:
        del sys.modules[name]
    manager.reset()
