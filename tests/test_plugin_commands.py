"""The third-party models (mace-torch's MACE, mlip's MACE, NequIP and ViSNet) through the commands a
user runs on them: ``run`` on a file of one's own with stress in the loss, the ASE calculator giving
the run's own test errors, molecular dynamics, the conformance checks of the run directory, and a
resumed run that continues the same record.

Data: 8 periodic 16-atom fcc cells of random Cu/Al/Ni, strained by up to 3 % and rattled, with ASE's
EMT energy, forces and stress (one padded shape, so the JAX models compile few functions). Each
model is a small config trained for one epoch.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from mlffbench.cli.app import main
from mlffbench.testing import emt_frames

SMALL = {
    "mace": {"num_channels": 8, "max_L": 1, "max_ell": 2, "correlation": 2, "num_interactions": 1, "radial_mlp": [16]},
    "mace-jax": {"num_channels": 8, "l_max": 1, "correlation": 2, "radial_mlp_hidden": [16], "readout_hidden": 8},
    "nequip-jax": {"target_irreps": "8x0e + 4x1o", "l_max": 1, "radial_mlp_hidden": [16]},
    "visnet-jax": {"num_channels": 16, "num_heads": 4, "num_rbf": 8},
}
TRAIN = {"batch_size": 2, "eval_batch_size": 2, "epochs": 1, "seed": 0, "stress_weight": 1.0}


@pytest.fixture(scope="module")
def emt_file(tmp_path_factory):
    import ase.io

    frames = emt_frames(8, seed=7, repeat=(2, 2, 1))
    path = tmp_path_factory.mktemp("emt") / "cualni.extxyz"
    ase.io.write(path, frames, format="extxyz")
    return path


def _invoke(*args: str):
    result = CliRunner().invoke(main, list(args), catch_exceptions=False, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def trained(emt_file, tmp_path_factory):
    """``trained(model)``: the run directory of ``model`` trained on the EMT file (once per module)."""
    made = {}

    def train(model: str):
        if model not in made:
            folder = tmp_path_factory.mktemp(model)
            config = folder / "config.json"
            config.write_text(json.dumps({"model": SMALL[model], "train": TRAIN}))
            data = [str(emt_file), "--unit", "stress=eV/angstrom^3"]
            _invoke("run", model, "--dataset", *data, "--config", str(config), "--fractions", "0.5,0.25,0.25",
                    "--runs-dir", str(folder / "runs"), "--no-tracking", "--no-progress")  # fmt: skip
            (made[model],) = (folder / "runs").iterdir()
        return made[model]

    return train


@pytest.mark.slow
@pytest.mark.parametrize("model", sorted(SMALL))
def test_run_with_stress_and_the_calculator_of_the_run(model, trained, emt_file):
    """Stress in the loss and the metrics; the ASE calculator on the test configurations gives
    the run's own test force and stress errors."""
    import ase.io

    from mlffbench.ase import calculator
    from mlffbench.data.splits import Split

    run_dir = trained(model)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    test = metrics["test"]
    assert math.isfinite(test["stress_mae"]) and test["stress_mae"] > 0, test
    assert math.isfinite(metrics["constant_stress_mae"])
    recorded = json.loads((run_dir / "config.json").read_text())
    assert recorded["train"]["stress_weight"] == 1.0 and recorded["dataset_card"]["units"]["stress"] == "eV/angstrom^3"

    frames = ase.io.read(emt_file, index=":")
    calc = calculator(run_dir)
    force_errors, stress_errors = [], []
    for i in Split.load(run_dir / "split.json").test:
        reference = frames[i]
        atoms = reference.copy()
        atoms.calc = calc
        force_errors.append(np.abs(atoms.get_forces() - reference.get_forces()))
        stress_errors.append(np.abs(atoms.get_stress(voigt=False) - reference.get_stress(voigt=False)))
    assert len(force_errors) == 2
    assert np.mean(np.concatenate(force_errors)) == pytest.approx(test["force_mae"], rel=1e-4)
    assert np.mean(stress_errors) == pytest.approx(test["stress_mae"], rel=1e-4)


# md, check and resume go through the backends' generic paths (resume: tests/test_run_e2e.py with
# JAT; md and the calculator: tests/test_run_physics.py with SchNet): here for the torch plugin only,
# as each JAX plugin model takes ~40 s more for them
@pytest.mark.slow
@pytest.mark.parametrize("model", ["mace"])
def test_md_check_and_resume_of_the_run(model, trained, tmp_path):
    run_dir = trained(model)
    metrics = json.loads((run_dir / "metrics.json").read_text())

    # NVE MD from the first configuration: finite energies, the requested number of steps
    out = tmp_path / "md"
    _invoke("md", str(run_dir), "--steps", "4", "--temperature", "300", "--traj-interval", "2", "--out", str(out))
    md = json.loads((out / "md.json").read_text())
    assert md["summary"]["steps_done"] == 4, md["summary"]
    total = np.asarray(md["potential_eV"]) + np.asarray(md["kinetic_eV"])
    assert len(total) >= 2 and np.all(np.isfinite(total)), md

    # the conformance checks of the trained model on the run's own data (neither EAN nor
    # ethanol has these elements): forces = -dE/dx, stress = the strain derivative
    report = tmp_path / "check.json"
    _invoke("check", str(run_dir), "--only", "forces", "--only", "stress", "--json", str(report))
    checks = json.loads(report.read_text())
    assert {c["name"] for c in checks["checks"]} == {"forces", "stress"}, checks
    assert checks["ok"] and all(c["status"] == "passed" for c in checks["checks"]), checks

    # resumed to a second epoch: the same run directory and split, one more epoch in its history
    _invoke("run", "--resume", str(run_dir), "--epochs", "2", "--no-progress")
    resumed = json.loads((run_dir / "metrics.json").read_text())
    assert resumed["epochs"] == 2 and len(json.loads((run_dir / "history.json").read_text())) == 2
    assert resumed["split_fingerprint"] == metrics["split_fingerprint"]
