"""What a trained run is used for: the ASE calculator, molecular dynamics and scans.

A tiny SchNet is trained for one epoch on 24 EAN configurations (the run directory every
test here uses); the MD machinery is also checked on a physically generated model (harmonic
bonds, numpy) whose exact behaviour is known: energy conserved by velocity Verlet, and a
flipped force sign blowing the bonds apart.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from mlffbench.backends.predictor import Configuration, Prediction, Predictor
from mlffbench.cli.app import main
from mlffbench.errors import ConfigError, DataError, RunError
from mlffbench.tasks.md import MDOptions, bonds, run_md
from mlffbench.testing import TINY_SCHNET

S66X8_FACTORS = np.array([0.90, 0.95, 1.00, 1.05, 1.10, 1.25, 1.50, 2.00])  # the S66x8 curve points


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, data_dir):
    from mlffbench.runs.experiment import RunOptions, train_and_evaluate

    options = RunOptions(
        model="schnet",
        dataset="ean",
        model_params=dict(TINY_SCHNET),
        train_params={"max_configs": 24, "batch_size": 4, "eval_batch_size": 8, "seed": 3, "epochs": 1},
        data_dir=data_dir,
        runs_dir=tmp_path_factory.mktemp("physics-runs"),
        tracking=False,
        progress=False,
    )
    path, _ = train_and_evaluate(options)
    return path


@pytest.fixture(scope="module")
def ean(data_dir):
    from mlffbench.data.loading import load_dataset

    return load_dataset("ean", data_dir=data_dir, download=False)


def _atoms(ds, i):
    from ase import Atoms

    sl = ds.atoms_of(i)
    return Atoms(numbers=ds.numbers[sl], positions=ds.positions[sl], cell=ds.cell[i], pbc=ds.pbc[i])


# ------------------------------------------------------------------ ASE calculator
def test_calculator_reproduces_the_runs_own_evaluation(run_dir, ean):
    """Forces of the test configurations through ``mlffbench.ase.calculator(RUN)`` give the
    test force MAE that the run wrote at the end of training (same checkpoint, same model)."""
    from mlffbench.ase import calculator
    from mlffbench.data.splits import Split

    calc = calculator(run_dir)
    errors = []
    for i in Split.load(run_dir / "split.json").test:
        atoms = _atoms(ean, i)
        atoms.calc = calc
        errors.append(np.abs(atoms.get_forces() - ean.forces[ean.atoms_of(i)]))
        assert math.isfinite(atoms.get_potential_energy())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert abs(np.concatenate(errors).mean() - metrics["test"]["force_mae"]) < 1e-6 * metrics["test"]["force_mae"]


def test_calculator_stress_is_ases_numerical_stress(run_dir, ean):
    from ase.calculators.calculator import PropertyNotImplementedError
    from ase.calculators.fd import calculate_numerical_stress

    from mlffbench.ase import calculator

    atoms = _atoms(ean, 0)
    atoms.calc = calculator(run_dir, dtype="float64")
    stress = atoms.get_stress()
    assert stress.shape == (6,) and np.abs(stress).max() > 1e-5
    assert np.abs(stress - calculate_numerical_stress(atoms, eps=1e-6)).max() < 1e-8
    molecule = atoms[:11]  # the first cation, as a free molecule
    molecule.pbc = False
    molecule.calc = atoms.calc
    assert math.isfinite(molecule.get_potential_energy())
    with pytest.raises(PropertyNotImplementedError):
        molecule.get_stress()


def test_calculator_errors(run_dir, tmp_path):
    from ase import Atoms

    from mlffbench.ase import calculator

    calc = calculator(run_dir)
    iron = Atoms("FeH", positions=[[0, 0, 0], [1.5, 0, 0]])
    iron.calc = calc
    with pytest.raises(DataError, match="element Fe"):
        iron.get_potential_energy()
    with pytest.raises(RunError, match="not a run directory"):
        calculator(tmp_path)
    with pytest.raises(ConfigError, match="checkpoint must be one of"):
        calculator(run_dir, checkpoint="worst")


# ----------------------------------------------------------------- molecular dynamics
class HarmonicBonds(Predictor):
    """E = Σ k/2 (d − d₀)² over the bonds of a reference configuration (numpy)."""

    def __init__(self, config: Configuration, k: float = 20.0, sign: float = 1.0):
        self.i, self.j, shift = bonds(config)
        self.shift_vectors = shift @ config.cell
        self.d0 = np.linalg.norm(config.positions[self.j] - config.positions[self.i] + self.shift_vectors, axis=1)
        self.k, self.sign = k, sign
        self.species, self.cutoff, self.dtype = tuple(sorted(set(config.numbers.tolist()))), 2.0, "float64"

    def predict(self, configs, stress=False, shape=None):
        out = []
        for c in configs:
            vec = c.positions[self.j] - c.positions[self.i] + self.shift_vectors
            d = np.linalg.norm(vec, axis=1)
            g = (self.k * (d - self.d0) / d)[:, None] * vec  # dE/d(pos_j)
            forces = np.zeros_like(c.positions)
            np.add.at(forces, self.j, -g)
            np.add.at(forces, self.i, g)
            out.append(Prediction(float(0.5 * self.k * np.sum((d - self.d0) ** 2)), self.sign * forces))
        return out


@pytest.fixture(scope="module")
def ean0(ean):
    return Configuration.from_dataset(ean, 0)


def test_bonds_of_ean_are_its_covalent_bonds(ean0):
    """15 ethylammonium (10 bonds each: 3 N–H, C–N, 2 C–H, C–C, 3 C–H) + 15 nitrate (3 N–O)."""
    i, _j, _ = bonds(ean0)
    assert len(i) == 15 * 10 + 15 * 3


def test_nve_conserves_energy_and_a_flipped_force_sign_collapses(ean0, tmp_path):
    options = MDOptions(steps=200, ensemble="nve", temperature_K=300, timestep_fs=0.5, trajectory_interval=50)
    good = run_md(HarmonicBonds(ean0), ean0, options, tmp_path / "good")
    assert good.stable and good.steps_done == 200
    assert abs(good.drift_mev_per_atom_ps) < 0.5
    assert 0 < good.summary()["max_bond_deviation_A"] < 0.3
    bad = run_md(HarmonicBonds(ean0, sign=-1.0), ean0, options, tmp_path / "bad")
    assert not bad.stable and bad.steps_done < 200
    assert "bonded distance" in bad.reason or "temperature" in bad.reason
    import ase.io

    frames = ase.io.read(tmp_path / "good" / "trajectory.extxyz", index=":")
    assert len(frames) == 5 and frames[-1].get_potential_energy() == pytest.approx(good.potential[200])
    summary = json.loads((tmp_path / "good" / "md.json").read_text())["summary"]
    assert summary["stable"] and summary["steps_done"] == 200
    for name in ("energy.png", "temperature.png"):
        assert (tmp_path / "good" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_nvt_thermostats_hold_the_temperature(ean0):
    for thermostat in ("langevin", "bussi"):
        options = MDOptions(
            steps=300,
            ensemble="nvt",
            thermostat=thermostat,
            temperature_K=200,
            timestep_fs=0.5,
            friction_per_fs=0.05,
            taut_fs=10.0,
        )
        result = run_md(HarmonicBonds(ean0), ean0, options)
        assert result.stable
        assert 100 < np.mean(result.temperature[100:]) < 300


def test_md_command_on_a_run(run_dir, tmp_path, data_dir):
    out = tmp_path / "md"
    result = CliRunner().invoke(
        main, ["md", str(run_dir), "--steps", "4", "--out", str(out), "--data-dir", str(data_dir)]
    )
    assert result.exit_code == 0, result.output
    assert "MD steps/s" in result.output and "energy drift" in result.output
    summary = json.loads((out / "md.json").read_text())["summary"]
    assert summary["n_atoms"] == 225 and summary["steps_done"] >= 1
    result = CliRunner().invoke(main, ["md", str(run_dir), "--steps", "0", "--out", str(out)])
    assert result.exit_code == 2 and "--steps must be at least 1" in result.output


# ---------------------------------------------------------------------------- scans
def test_s66x8_monomers_and_distances(data_dir):
    """Every S66x8 curve splits into two rigid monomers (internal distances unchanged along
    the curve) whose closest contact is scaled by the data set's factors 0.90 … 2.00, in the
    order of the centre-of-mass distance the scan uses."""
    from mlffbench.data.loading import load_dataset
    from mlffbench.tasks.scan import _centre, monomers

    ds = load_dataset("comp6-s66x8", data_dir=data_dir, download=False)
    for g in range(len(ds.group_names)):
        idx = np.flatnonzero(ds.group == g)
        configs = [Configuration.from_dataset(ds, int(i)) for i in idx]
        a, b = monomers(configs[0])
        r = np.array([np.linalg.norm(_centre(c, b) - _centre(c, a)) for c in configs])
        configs = [configs[k] for k in np.argsort(r)]
        contact = np.array(
            [np.linalg.norm(c.positions[a][:, None] - c.positions[b][None], axis=-1).min() for c in configs]
        )
        assert np.abs(contact / contact[2] - S66X8_FACTORS).max() < 0.02, ds.group_names[g]
        for part in (a, b):
            inner = [np.linalg.norm(c.positions[part][:, None] - c.positions[part][None], axis=-1) for c in configs]
            assert max(np.abs(m - inner[0]).max() for m in inner) < 0.05, ds.group_names[g]


def test_scan_command_on_s66x8(run_dir, tmp_path, data_dir):
    out = tmp_path / "scan"
    result = CliRunner().invoke(
        main,
        ["scan", str(run_dir), "--curve", "mol00", "--curve", "mol03", "--out", str(out), "--data-dir", str(data_dir)],
    )
    assert result.exit_code == 0, result.output
    assert "mol00" in result.output and "ΔE MAE" in result.output
    data = json.loads((out / "scan.json").read_text())
    assert [c["name"] for c in data["curves"]] == ["mol00", "mol03"]
    for curve in data["curves"]:
        assert len(curve["distance_A"]) == 8 and curve["reference_eV"][-1] == 0.0 and curve["predicted_eV"][-1] == 0.0
        assert curve["energy_mae_eV"] > 0 and curve["force_mae_eV_per_A"] > 0
    assert (out / "scan.png").read_bytes()[:4] == b"\x89PNG"


def test_scan_skips_curves_with_unknown_elements(data_dir):
    from mlffbench.data.loading import load_dataset
    from mlffbench.tasks.conformance import plugin_model
    from mlffbench.tasks.scan import scan_curves

    ds = load_dataset("comp6-s66x8", data_dir=data_dir, download=False)
    no_nitrogen = plugin_model("schnet", species=(1, 6, 8), seed=0, **TINY_SCHNET).predictor
    result = scan_curves(no_nitrogen, ds, groups=["mol00", "mol01", "mol02"])
    skipped = {c.name: c.skipped for c in result.curves}
    assert skipped["mol00"] == "" and "element N unknown to the model" in skipped["mol02"]
    with pytest.raises(ConfigError, match="element N unknown"):
        scan_curves(no_nitrogen, ds, groups=["mol02"])


def test_scan_of_botnet_diatomic_curves(data_dir):
    """The BOTNet ethanol dimer curves (H–H … O–O, energies only): one curve per atom pair,
    ordered by the distance, relative to the largest one; no force reference."""
    from mlffbench.data.loading import load_dataset
    from mlffbench.tasks.conformance import plugin_model
    from mlffbench.tasks.scan import scan_curves

    ds = load_dataset("botnet-ethanol-dimers", data_dir=data_dir, download=False)
    predictor = plugin_model("schnet", species=(1, 6, 8), seed=0, **TINY_SCHNET).predictor
    result = scan_curves(predictor, ds, groups=["HO", "CC"])
    for curve, n in zip(result.curves, (84, 78), strict=True):
        assert len(curve.distance) == n and np.all(np.diff(curve.distance) > 0)
        assert curve.reference[-1] == 0.0 and curve.reference.min() < -1.0  # a bound pair
        assert curve.reference_force is None and math.isnan(curve.force_mae) and curve.energy_mae > 0
    info = ds.select(np.flatnonzero(ds.group == ds.group_names.index("HO")))
    assert sorted(set(info.numbers.tolist())) == [1, 8]


def test_bond_scan_force_is_minus_the_energy_slope(run_dir, ean, tmp_path):
    """The N–O stretch of the first nitrate of EAN (atoms 165, 166): the projected force is
    −dE/dd of the scanned energy (central differences of the curve)."""
    from mlffbench.runs.trained import TrainedModel
    from mlffbench.tasks.scan import scan_bond

    predictor = TrainedModel.from_run(run_dir, dtype="float64").predictor()
    config = Configuration.from_dataset(ean, 0)
    assert (config.numbers[165], config.numbers[166]) == (7, 8)
    d = np.linspace(1.1, 1.4, 16)
    curve = scan_bond(predictor, config, 165, 166, d).curves[0]
    slope = np.gradient(curve.predicted, d)
    assert np.abs(curve.predicted_force[1:-1] + slope[1:-1]).max() < 1e-3 * max(1.0, np.abs(slope).max())
    with pytest.raises(ConfigError, match="out of range"):
        scan_bond(predictor, config, 0, 999, d)
