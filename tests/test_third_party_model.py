"""A third-party model plugin, registered only through the entry-point group "mlffbench".

The package in tests/third_party/mlffbench_example_model (a per-pair MLP in JAX) is installed
for real with pip into a temporary --target folder (no network). In fresh interpreters with
that folder on PYTHONPATH: the registry lists its model; the package's own test file runs
mlffbench's whole conformance suite through the pytest plugin in a few lines, and every check
passes; ``mlffbench run`` trains it and ``mlffbench check RUN_DIR`` checks the trained model.
Nothing in mlffbench knows the package.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent / "third_party" / "mlffbench_example_model"
CLI = [sys.executable, "-m", "mlffbench.cli.app"]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("third-party-model")
    source = tmp / "src"
    shutil.copytree(PACKAGE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    site = tmp / "site"
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(site), str(source)],
        check=True, capture_output=True, text=True, timeout=300, env=env, cwd=tmp,
    )
    env["PYTHONPATH"] = os.pathsep.join([str(site), *filter(None, [os.environ.get("PYTHONPATH")])])
    env["COLUMNS"] = "200"
    return tmp, source, env


def _run(args, env, cwd, timeout=600):
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)


def test_registered_through_the_entry_point_only(installed):
    tmp, _, env = installed
    script = (
        "import json; from mlffbench.plugins import get_plugins; p = get_plugins(); r = p.registry\n"
        "print(json.dumps({'models': sorted(r.models), 'provider': r.provider[('models', 'pairmlp')],\n"
        "  'info': [[i.name, i.distribution, list(i.hooks)] for i in p.info if i.name == 'example_model']}))"
    )
    out = _run([sys.executable, "-c", script], env, tmp)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert {"pairmlp", "jat", "neuralil", "schnet"} <= set(result["models"])
    assert result["provider"] == "example_model"
    assert result["info"] == [["example_model", "mlffbench-example-model", ["mlffbench_models"]]]


def test_its_own_tests_run_the_conformance_suite(installed):
    tmp, source, env = installed
    out = _run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp), str(source / "conformance_check.py")],
        env, tmp,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "11 passed" in out.stdout


def test_run_and_check_a_trained_model(installed, data_dir):
    tmp, _, env = installed
    runs = tmp / "runs"
    out = _run(
        [*CLI, "run", "pairmlp", "--dataset", "ean", "--data-dir", str(data_dir), "--epochs", "2", "--max-configs", "16",
         "--batch-size", "4", "-t", "calibrate_output=true", "--runs-dir", str(runs), "--no-tracking", "--no-progress"],
        env, tmp,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    (run_dir,) = [p for p in runs.iterdir() if p.name.startswith("pairmlp-ean-")]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["model"] == "pairmlp" and metrics["test"]["force_mae"] > 0
    # the ASE calculator restores the run (output scale calibrated on its first training batch
    # included) and reproduces the test force MAE the run wrote
    script = (
        "import json, sys, numpy as np\n"
        "from ase import Atoms\n"
        "from mlffbench.ase import calculator\n"
        "from mlffbench.datasets.loading import load_dataset\n"
        "from mlffbench.splits import Split\n"
        "run, data = sys.argv[1], sys.argv[2]\n"
        "calc = calculator(run)\n"
        "ds = load_dataset('ean', data_dir=data, download=False)\n"
        "errors = []\n"
        "for i in Split.load(run + '/split.json').test:\n"
        "    sl = ds.atoms_of(i)\n"
        "    atoms = Atoms(numbers=ds.numbers[sl], positions=ds.positions[sl], cell=ds.cell[i], pbc=ds.pbc[i])\n"
        "    atoms.calc = calc\n"
        "    errors.append(np.abs(atoms.get_forces() - ds.forces[sl]))\n"
        "print(json.dumps({'mae': float(np.concatenate(errors).mean()), 'scale': calc.predictor.potential.output_scale}))\n"
    )
    out = _run([sys.executable, "-c", script, str(run_dir), str(data_dir)], env, tmp)
    assert out.returncode == 0, out.stderr[-3000:]
    restored = json.loads(out.stdout.strip().splitlines()[-1])
    assert restored["scale"] != 1.0  # calibrated
    assert abs(restored["mae"] - metrics["test"]["force_mae"]) < 1e-6 * metrics["test"]["force_mae"]
    out = _run([*CLI, "check", str(run_dir), "--dataset", "ean", "--only", "forces", "--only", "save/load",
                "--only", "cutoff smoothness", "--data-dir", str(data_dir)], env, tmp)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "all checks passed" in out.stdout
