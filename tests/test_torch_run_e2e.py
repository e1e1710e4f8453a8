"""A PyTorch model through the same loop as a JAX one: identical run records, exact resume.

Tiny JAT (JAX) and tiny SchNet (PyTorch) on 24 EAN configurations: the run directories hold
the same files, and ``metrics.json`` / ``history.json`` / ``config.json`` / ``stats.json`` /
``split.json`` have the same structure (keys and value types; only the model's own config
differs). A SchNet run stopped after 2 epochs and resumed with ``mlffbench run --resume`` to 4
epochs ends exactly where an uninterrupted 4-epoch run ends.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlffbench.testing import TINY_SCHNET

CLI = [sys.executable, "-m", "mlffbench.cli.app"]
COMMON = {"max_configs": 24, "batch_size": 4, "eval_batch_size": 8, "seed": 3}
JAT = {"layer_dims": [8], "embed_d": 8, "cutoff": 3.0, "readout_dims": [8], "species_energy_shift": True}
REQUIRED = ("energy_mae_per_atom", "energy_rmse_per_atom", "force_mae", "force_rmse")


def _shape(value, skip=()):
    """The structure of a JSON value: dict keys (recursively), list element structure, value kinds."""
    if isinstance(value, dict):
        return {k: ("…" if k in skip else _shape(v, skip)) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [_shape(value[0], skip)] if value else []
    if isinstance(value, bool) or value is None:
        return type(value).__name__
    if isinstance(value, (int, float)):
        return "number"
    return type(value).__name__


def _files(run_dir: Path) -> set[str]:
    return {str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, data_dir):
    from mlffbench.runs.experiment import RunOptions, train_and_evaluate

    root = tmp_path_factory.mktemp("jax-vs-torch")
    out = {}
    for model, params in (("jat", JAT), ("schnet", TINY_SCHNET)):
        options = RunOptions(
            model=model,
            dataset="ean",
            model_params=dict(params),
            train_params={**COMMON, "epochs": 2},
            data_dir=data_dir,
            runs_dir=root,
            tracking=False,
            progress=False,
        )
        out[model] = train_and_evaluate(options)
    return out


def test_jax_and_torch_runs_have_identical_records(two_runs):
    (jat_dir, jat_metrics), (schnet_dir, schnet_metrics) = two_runs["jat"], two_runs["schnet"]
    assert _files(jat_dir) == _files(schnet_dir)
    assert {
        "config.json",
        "split.json",
        "stats.json",
        "history.json",
        "metrics.json",
        "checkpoints/last.ckpt",
        "checkpoints/best.ckpt",
    } <= _files(schnet_dir)
    # JAT trains forces only here and gets energy offsets fitted, SchNet trains energies: the same
    # fields, filled only for the fitted one
    assert (jat_metrics["energies"], schnet_metrics["energies"]) == ("offset-fitted", "trained")
    assert schnet_metrics["energy_offsets"] is None and set(jat_metrics["energy_offsets"]) == {"H", "C", "N", "O"}
    for name, skip in (
        ("metrics.json", ("energy_offsets", "offset_fit")),
        ("history.json", ()),
        ("config.json", ("model_config",)),
        ("stats.json", ("energy_offsets",)),
        ("split.json", ()),
    ):
        a = json.loads((jat_dir / name).read_text())
        b = json.loads((schnet_dir / name).read_text())
        assert _shape(a, skip) == _shape(b, skip), name
    assert jat_metrics["split_fingerprint"] == schnet_metrics["split_fingerprint"]
    for part in ("val", "test"):
        assert set(REQUIRED) <= set(schnet_metrics[part])
    assert schnet_metrics["model"] == "schnet" and schnet_metrics["epochs"] == 2
    assert schnet_metrics["compile_count"] == 0 and schnet_metrics["train_configs_per_s"] > 0
    assert schnet_metrics["device"].startswith(("cpu", "cuda")) and "torch" in schnet_metrics["versions"]
    assert json.loads((schnet_dir / "config.json").read_text())["model_config"]["hidden_channels"] == 8


def _run(args, cwd):
    env = {**os.environ, "COLUMNS": "200"}
    out = subprocess.run(CLI + args, capture_output=True, text=True, cwd=cwd, env=env, timeout=600)
    assert out.returncode == 0, out.stderr
    line = next(line for line in out.stdout.splitlines() if line.startswith("run directory:"))
    return Path(line.split(":", 1)[1].strip())


def _cli_args(epochs):
    args = [
        "run",
        "schnet",
        "--dataset",
        "ean",
        "--epochs",
        str(epochs),
        "--no-tracking",
        "--no-progress",
        "--max-configs",
        "24",
        "--batch-size",
        "4",
        "--seed",
        "3",
        "-t",
        "eval_batch_size=8",
        "-t",
        "lr_schedule=one-cycle-epoch",
    ]  # a schedule that does not depend on the epoch count
    for key, value in TINY_SCHNET.items():
        args += ["-p", f"{key}={json.dumps(value)}"]
    return args


def test_resumed_torch_run_equals_uninterrupted(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    reference = tmp_path / "a" / _run(_cli_args(4), tmp_path / "a")
    stopped = tmp_path / "b" / _run(_cli_args(2), tmp_path / "b")
    assert json.loads((stopped / "metrics.json").read_text())["epochs"] == 2
    resumed = _run(["run", "--resume", str(stopped), "--epochs", "4"], tmp_path / "b")
    assert resumed.resolve() == stopped.resolve()
    expected = json.loads((reference / "metrics.json").read_text())
    got = json.loads((stopped / "metrics.json").read_text())
    assert got["epochs"] == 4 and got["split_fingerprint"] == expected["split_fingerprint"]
    for part in ("val", "test"):
        for key in REQUIRED:
            assert got[part][key] == pytest.approx(expected[part][key], rel=1e-9, abs=1e-12), (part, key)
    history_a = json.loads((reference / "history.json").read_text())
    history_b = json.loads((stopped / "history.json").read_text())
    assert [h["train_loss"] for h in history_b] == pytest.approx([h["train_loss"] for h in history_a], rel=1e-9)
