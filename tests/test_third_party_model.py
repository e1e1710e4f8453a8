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
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(site),
            str(source),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp,
    )
    env["PYTHONPATH"] = os.pathsep.join([str(site), *filter(None, [os.environ.get("PYTHONPATH")])])
    env["COLUMNS"] = "200"
    return tmp, source, env


def _run(args, env, cwd, timeout=600):
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)


def test_registered_through_the_entry_point_only(installed):
    tmp, _, env = installed
    script = (
        "import json; from mlffbench.plugin.manager import get_plugins; p = get_plugins(); r = p.registry\n"
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
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(tmp),
            str(source / "conformance_check.py"),
        ],
        env,
        tmp,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "11 passed" in out.stdout


def test_run_and_check_a_trained_model(installed, data_dir):
    tmp, _, env = installed
    runs = tmp / "runs"
    out = _run(
        [
            *CLI,
            "run",
            "pairmlp",
            "--dataset",
            "ean",
            "--data-dir",
            str(data_dir),
            "--epochs",
            "2",
            "--max-configs",
            "16",
            "--batch-size",
            "4",
            "-t",
            "calibrate_output=true",
            "--runs-dir",
            str(runs),
            "--no-tracking",
            "--no-progress",
        ],
        env,
        tmp,
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
        "from mlffbench.data.loading import load_dataset\n"
        "from mlffbench.data.splits import Split\n"
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
    out = _run(
        [
            *CLI,
            "check",
            str(run_dir),
            "--dataset",
            "ean",
            "--only",
            "forces",
            "--only",
            "save/load",
            "--only",
            "cutoff smoothness",
            "--data-dir",
            str(data_dir),
        ],
        env,
        tmp,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "all checks passed" in out.stdout


def test_bench_compare_and_tune_drive_it_with_no_change_to_mlffbench(installed, data_dir, tmp_path):
    """The plugin's own search space and model go through ``bench``, ``compare`` and ``tune``."""
    tmp, _, env = installed
    runs = tmp_path / "runs"
    common = ["--data-dir", str(data_dir), "--max-configs", "12", "--no-tracking"]
    for seed in (0, 1):
        out = _run(
            [
                *CLI,
                "run",
                "pairmlp",
                "--dataset",
                "ean",
                "--epochs",
                "1",
                "--batch-size",
                "4",
                "-t",
                f"seed={seed}",
                "--runs-dir",
                str(runs),
                "--no-progress",
                *common,
            ],
            env,
            tmp,
        )
        assert out.returncode == 0, out.stderr[-3000:]
    run_dirs = sorted(p for p in runs.iterdir() if p.name.startswith("pairmlp-ean-"))
    assert len(run_dirs) == 2

    bench_json = tmp_path / "bench.json"
    out = _run(
        [
            *CLI,
            "bench",
            "pairmlp",
            "--dataset",
            "ean",
            "--data-dir",
            str(data_dir),
            "--max-configs",
            "8",
            "--batch-size",
            "4",
            "--repeats",
            "2",
            "--train-steps",
            "1",
            "--sweep",
            "1,2",
            "--sweep-repeats",
            "1",
            "--json",
            str(bench_json),
        ],
        env,
        tmp,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    bench = json.loads(bench_json.read_text())
    assert bench["model"] == "pairmlp" and bench["training"]["configs_per_s"] > 0
    assert [p["atoms"] for p in bench["size_sweep"]["points"]] == [225, 8 * 225]

    compare_json = tmp_path / "compare.json"
    out = _run(
        [
            *CLI,
            "compare",
            "--runs",
            *map(str, run_dirs),
            "--repeats",
            "2",
            "--train-steps",
            "1",
            "--out",
            str(tmp_path / "report"),
            "--json",
            str(compare_json),
            "--no-progress",
            *common,
        ],
        env,
        tmp,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    compared = json.loads(compare_json.read_text())
    assert set(compared["models"]) == {"pairmlp"} and len(compared["runs"]) == 2
    assert {r["split_fingerprint"] for r in compared["runs"]} == {compared["split_fingerprint"]}

    out = _run(
        [
            *CLI,
            "tune",
            "pairmlp",
            "--dataset",
            "ean",
            "--trials",
            "2",
            "--epochs",
            "1",
            "--study",
            "third",
            "--runs-dir",
            str(tmp_path / "tune"),
            *common,
        ],
        env,
        tmp,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads((tmp_path / "tune" / "tune-third" / "summary.json").read_text())
    assert summary["n_trials"] == 2 and summary["n_complete"] + summary["n_pruned"] == 2
    best = json.loads(Path(summary["best_config"]).read_text())
    assert {"hidden", "n_basis", "cutoff"} <= set(best["model"])
