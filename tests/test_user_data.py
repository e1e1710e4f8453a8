"""Your own data: paths as datasets, user cards, declared units and stress conventions, bad input.

The periodic data with stress is made by ASE's EMT calculator (mlffbench.testing.emt_frames) on rattled and strained
Cu/Al/Ni fcc cells; the molecular data is rMD17 ethanol written to extxyz by ASE.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from mlffbench.data import units
from mlffbench.errors import DataError
from mlffbench.testing import emt_frames

# a tiny SchNet (PyTorch: nothing to compile) for one epoch: these tests are about the data path
QUICK = [
    "--epochs",
    "1",
    "--batch-size",
    "4",
    "--seed",
    "0",
    "--no-progress",
    "--no-tracking",
    "-p",
    "hidden_channels=16",
    "-p",
    "num_filters=16",
    "-p",
    "num_interactions=1",
    "-p",
    "num_gaussians=10",
    "-p",
    "cutoff=3.0",
    "-t",
    "eval_batch_size=8",
]


# ------------------------------------------------------------------ data
def write_variants(frames, folder: Path) -> dict[str, tuple[Path, dict, dict]]:
    """The same frames as extxyz with the stress in eV/Å³ (ASE sign), GPa, kbar with VASP's
    sign and Voigt order (xx yy zz xy yz zx), and as a virial W = -sigma V; each with the card
    units/options that declare it."""
    import ase.io
    from ase.calculators.singlepoint import SinglePointCalculator

    folder.mkdir(parents=True, exist_ok=True)
    out = {}

    def write(name, convert, units_, options):
        copies = []
        for atoms in frames:
            a = atoms.copy()
            sigma = atoms.calc.results["stress"]
            a.calc = SinglePointCalculator(a, energy=atoms.calc.results["energy"], forces=atoms.calc.results["forces"])
            key, value = convert(sigma, a)
            if key == "stress":
                a.calc.results["stress"] = value
            else:
                a.info[key] = value
            copies.append(a)
        path = folder / f"{name}.xyz"
        ase.io.write(path, copies, format="extxyz")
        out[name] = (path, units_, options)

    gpa, kbar = units.STRESS["GPa"], units.STRESS["kbar"]
    write("ev", lambda s, a: ("stress", s), {"stress": "eV/angstrom^3"}, {})
    write("gpa", lambda s, a: ("stress", s / gpa), {"stress": "GPa"}, {})
    vasp = [(0, 0), (1, 1), (2, 2), (0, 1), (1, 2), (2, 0)]
    write(
        "kbar",
        lambda s, a: ("pressure_kbar", np.array([-s[i, j] / kbar for i, j in vasp])),
        {"stress": "kbar"},
        {"stress_key": "pressure_kbar", "stress_sign": "vasp", "voigt_order": "xx yy zz xy yz zx"},
    )
    write("virial", lambda s, a: ("virial", -s * a.get_volume()), {}, {"virial_key": "virial"})
    return out


def write_neuralil(frames, path: Path) -> Path:
    """NeuralIL JSON lines with per-line ``Types`` (no card options needed)."""
    with path.open("w") as f:
        for a in frames:
            f.write(
                json.dumps(
                    {
                        "Energy": float(a.calc.results["energy"]),
                        "Positions": a.positions.tolist(),
                        "Forces": a.calc.results["forces"].tolist(),
                        "Cell-Size": a.cell.array.tolist(),
                        "Types": list(a.get_chemical_symbols()),
                        "Natoms": len(a),
                    }
                )
                + "\n"
            )
    return path


@pytest.fixture(scope="module")
def frames():
    return emt_frames(12)


@pytest.fixture(scope="module")
def variants(frames, tmp_path_factory):
    return write_variants(frames, tmp_path_factory.mktemp("variants"))


@pytest.fixture(scope="module")
def ethanol_xyz(data_dir, tmp_path_factory) -> Path:
    """25 rMD17 ethanol configurations (real DFT data) written as extxyz by ASE."""
    import ase
    import ase.io
    from ase.calculators.singlepoint import SinglePointCalculator

    from mlffbench.data.loading import load_dataset

    ds = load_dataset("rmd17-ethanol", data_dir=data_dir, download=False)
    images = []
    for i in range(0, 2000, 80):  # 25 configurations
        sl = ds.atoms_of(i)
        a = ase.Atoms(numbers=ds.numbers[sl], positions=ds.positions[sl])
        a.calc = SinglePointCalculator(a, energy=float(ds.energy[i]), forces=ds.forces[sl])
        images.append(a)
    path = tmp_path_factory.mktemp("ethanol") / "ethanol.xyz"
    ase.io.write(path, images, format="extxyz")
    return path


def cli(args, env=None):
    from click.testing import CliRunner

    from mlffbench.cli.app import main

    old = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        return CliRunner().invoke(main, args, catch_exceptions=False)
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def one_error_line(result, *needles):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    text = " ".join(lines)
    assert text.startswith("error:"), result.output
    for needle in needles:
        assert needle in text, (needle, text)


# ------------------------------------------------------------------ units and conventions
def test_factors_come_from_codata():
    import scipy.constants as c

    assert units.STRESS["GPa"] == pytest.approx(1e9 * 1e-30 / c.eV, rel=1e-15)
    assert units.GPA_PER_EV_A3 == 1.0 / units.STRESS["GPa"]  # the reporting factor, without scipy, is the same float
    assert units.STRESS["kbar"] == pytest.approx(0.1 * units.STRESS["GPa"], rel=1e-15)
    assert units.STRESS["bar"] == pytest.approx(1e-4 * units.STRESS["GPa"], rel=1e-15)
    assert units.ENERGY["kcal/mol"] == pytest.approx(4184 / c.N_A / c.eV, rel=1e-15)
    assert units.canonical("stress", "eV/Å^3") == "eV/angstrom^3"
    with pytest.raises(DataError, match="unknown stress unit 'psi'"):
        units.canonical("stress", "psi")


def test_four_stress_conventions_load_to_the_same_array(frames, variants, tmp_path):
    from mlffbench.data.loading import load_dataset
    from mlffbench.data.user import resolve_card

    reference = np.array([a.calc.results["stress"] for a in frames])
    assert np.abs(reference).max() > 1e-3  # strained cells: stresses of order 0.01 eV/Å³
    loaded = {}
    for name, (path, card_units, options) in variants.items():
        card = resolve_card(str(path), units=card_units, options=options)
        ds = load_dataset(card, cache_dir=tmp_path)
        loaded[name] = ds.stress
        assert card.files[0].sha256 and card.root == str(path.parent.resolve())
    for name, stress in loaded.items():
        rel = np.abs(stress - reference).max() / np.abs(reference).max()
        assert rel <= 1e-12, (name, rel)
    assert not np.allclose(loaded["ev"], -reference)  # the sign is really applied, not symmetric data


def test_undeclared_stress_loads_but_cannot_be_used(variants, tmp_path):
    from mlffbench.data.loading import load_dataset, require_stress_units
    from mlffbench.data.user import resolve_card

    path = variants["gpa"][0]
    card = resolve_card(str(path), units={}, options={})
    assert "stress" not in card.units
    ds = load_dataset(card, cache_dir=tmp_path)
    assert ds.stress is not None  # kept as read
    with pytest.raises(DataError, match=f"{path}: holds stress but declares no stress unit"):
        require_stress_units(card)
    require_stress_units(resolve_card(str(path), units={"stress": "GPa"}, options={}))
    require_stress_units(resolve_card(str(variants["virial"][0]), units={}, options={"virial_key": "virial"}))


def test_builtin_cards_with_stress_declare_it(data_dir):
    from mlffbench.data.loading import load_dataset, stress_declared
    from mlffbench.plugin.manager import get_registry

    card = get_registry().dataset("hfo2-slabs")
    assert card.units["stress"] == "eV/angstrom^3" and card.options["stress_sign"] == "ase"
    assert load_dataset(card, data_dir=data_dir, download=False).stress is not None and stress_declared(card)


def test_ase_format_adapter_reads_a_trajectory(frames, tmp_path):
    import ase.io

    from mlffbench.data.loading import load_dataset
    from mlffbench.data.user import resolve_card

    path = tmp_path / "cu.traj"
    ase.io.write(path, frames)
    card = resolve_card(str(path), units={}, options={})
    assert card.format == "ase" and card.options["ase_format"] == "traj"
    assert card.units["stress"] == "eV/angstrom^3"  # ASE's own units: declared by the format
    ds = load_dataset(card, cache_dir=tmp_path)
    ref = np.array([a.calc.results["stress"] for a in frames])
    np.testing.assert_allclose(ds.stress, ref, rtol=0, atol=1e-15)
    np.testing.assert_allclose(ds.energy, [a.calc.results["energy"] for a in frames])


# ------------------------------------------------------------------ NeuralIL with Types
def test_neuralil_types_need_no_options(frames, tmp_path):
    from mlffbench.data.loading import load_dataset
    from mlffbench.data.user import resolve_card

    path = write_neuralil(frames, tmp_path / "alloy.jsonl")
    card = resolve_card(str(path), units={}, options={})
    assert card.format == "neuralil-jsonl" and not card.options
    ds = load_dataset(card, cache_dir=tmp_path)
    assert ds.n_configs == len(frames)
    np.testing.assert_array_equal(ds.numbers, np.concatenate([a.numbers for a in frames]))
    np.testing.assert_allclose(ds.forces, np.concatenate([a.calc.results["forces"] for a in frames]))


# ------------------------------------------------------------------ CLI on files
def test_show_and_run_on_real_data_extxyz(ethanol_xyz, tmp_path):
    out = cli(["datasets", "show", str(ethanol_xyz), "--json", str(tmp_path / "info.json")])
    assert out.exit_code == 0, out.output
    info = json.loads((tmp_path / "info.json").read_text())
    assert info["configurations"] == 25
    runs_dir = tmp_path / "runs"
    args = ["run", "schnet", "--dataset", str(ethanol_xyz), "--runs-dir", str(runs_dir), *QUICK]
    first, second = cli(args), cli(args)
    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
    dirs = sorted(p for p in runs_dir.iterdir() if p.is_dir())
    assert len(dirs) == 2
    configs = [json.loads((d / "config.json").read_text()) for d in dirs]
    from mlffbench.data.fetch import sha256_file

    for config in configs:
        card = config["dataset_card"]
        assert config["dataset"] == "ethanol" and card["files"][0]["sha256"] == sha256_file(ethanol_xyz)
    from mlffbench.speed.compare import check_same_split

    assert check_same_split(dirs)  # two runs on the same file: provably the same split
    from mlffbench.runs.trained import TrainedModel

    data = TrainedModel.from_run(
        dirs[0], with_data=True
    ).require_data()  # restored from the recorded card, with no options retyped
    assert data.card.name == "ethanol" and data.dataset.n_configs == 25


@pytest.mark.slow
def test_run_on_neuralil_types_and_periodic_stress(frames, variants, tmp_path):
    path = write_neuralil(frames, tmp_path / "alloy.jsonl")
    out = cli(["datasets", "show", str(path)])
    assert out.exit_code == 0 and "Al" in out.output, out.output
    out = cli(["run", "schnet", "--dataset", str(path), "--runs-dir", str(tmp_path / "runs"), *QUICK])
    assert out.exit_code == 0, out.output
    kbar = variants["kbar"][0]
    out = cli(
        [
            "run",
            "schnet",
            "--dataset",
            str(kbar),
            "--unit",
            "stress=kbar",
            "--stress-sign",
            "vasp",
            "--key",
            "stress=pressure_kbar",
            "--runs-dir",
            str(tmp_path / "runs2"),
            *QUICK,
        ]
    )
    assert out.exit_code == 0, out.output
    (run_dir,) = (tmp_path / "runs2").iterdir()
    card = json.loads((run_dir / "config.json").read_text())["dataset_card"]
    assert card["units"]["stress"] == "kbar" and card["options"] == {
        "stress_key": "pressure_kbar",
        "stress_sign": "vasp",
    }


def test_user_card_folder_lists_trains_and_card_output_loads(variants, tmp_path):
    from mlffbench.data.cards import load_card
    from mlffbench.data.user import resolve_card

    path = variants["gpa"][0]
    out = cli(["datasets", "card", str(path), "--unit", "stress=GPa"])
    assert out.exit_code == 0, out.output
    assert "sha256" in out.output and "# present: energy, forces, stress" in out.output
    cards = path.parent / "cards"
    cards.mkdir(exist_ok=True)
    saved = path.parent / "gpa.toml"
    saved.write_text(out.output)
    loaded = load_card(saved, user=True)  # saved, it loads as is
    made = resolve_card(str(path), units={"stress": "GPa"}, options={})
    assert loaded.to_dict(record=False) == made.to_dict(record=False) and loaded.root == made.root
    # the same card in a card folder, its file given relative to the card
    (cards / "emt-gpa.toml").write_text(
        out.output.replace('name = "gpa"', 'name = "emt-gpa"').replace('path = "gpa.xyz"', 'path = "../gpa.xyz"')
    )
    listed = cli(["datasets"], env={"MLFFBENCH_CARDS": str(cards), "COLUMNS": "250"})
    assert listed.exit_code == 0 and "emt-gpa" in listed.output and str(cards) in listed.output, listed.output
    runs_dir = tmp_path / "runs"
    trained = cli(
        ["run", "schnet", "--dataset", "emt-gpa", "--runs-dir", str(runs_dir), *QUICK],
        env={"MLFFBENCH_CARDS": str(cards)},
    )
    assert trained.exit_code == 0, trained.output
    (run_dir,) = runs_dir.iterdir()
    assert json.loads((run_dir / "config.json").read_text())["dataset_card"]["units"]["stress"] == "GPa"


# ------------------------------------------------------------------ bad input
def _nothing_written(runs_dir: Path) -> bool:
    return not runs_dir.exists() or not any(p.is_dir() for p in runs_dir.iterdir())


def test_unknown_unit(variants, tmp_path):
    out = cli(
        [
            "run",
            "schnet",
            "--dataset",
            str(variants["ev"][0]),
            "--unit",
            "stress=furlong",
            "--runs-dir",
            str(tmp_path),
            *QUICK,
        ]
    )
    one_error_line(out, "unknown stress unit 'furlong'", "--unit")
    assert _nothing_written(tmp_path)


def test_file_ase_cannot_parse(tmp_path):
    bad = tmp_path / "broken.xyz"
    bad.write_text('3\nLattice="1 0 0 0 1 0 0 0 1" Properties=species:S:1:pos:R:3\nCu 0 0 0\nCu 1 1\n')
    out = cli(["run", "schnet", "--dataset", str(bad), "--runs-dir", str(tmp_path / "runs"), *QUICK])
    one_error_line(out, str(bad), "malformed extended XYZ")
    assert _nothing_written(tmp_path / "runs")
    outcar = tmp_path / "OUTCAR"
    outcar.write_text(" vasp.6.4.2 18Apr23 (build) complex\n garbage\n")
    out = cli(["datasets", "show", str(outcar)])
    one_error_line(out, str(outcar), "ASE cannot read it as vasp-out")


def test_mixed_stress_frames(frames, tmp_path):
    import ase.io
    from ase.calculators.singlepoint import SinglePointCalculator

    mixed = []
    for i, a in enumerate(frames[:4]):
        b = a.copy()
        results = dict(a.calc.results)
        if i == 2:
            results.pop("stress")
        b.calc = SinglePointCalculator(b, **results)
        mixed.append(b)
    path = tmp_path / "mixed.xyz"
    ase.io.write(path, mixed, format="extxyz")
    out = cli(["datasets", "show", str(path), "--unit", "stress=eV/angstrom^3"])
    one_error_line(out, f"{path} frame 2", "'stress' is missing")


def test_nan_in_stress(frames, tmp_path):
    import ase.io

    path = tmp_path / "nan.xyz"
    ase.io.write(path, frames[:3], format="extxyz")
    text = path.read_text().splitlines()
    text[1] = text[1].replace('stress="', 'stress="nan ', 1)
    text[1] = text[1].replace(
        text[1].split('stress="')[1].split('"')[0], " ".join(text[1].split('stress="')[1].split('"')[0].split()[:9])
    )
    path.write_text("\n".join(text) + "\n")
    out = cli(["run", "schnet", "--dataset", str(path), "--runs-dir", str(tmp_path / "runs"), *QUICK])
    one_error_line(out, f"{path} frame 0", "'stress' contains NaN or infinity")
    assert _nothing_written(tmp_path / "runs")


def test_card_with_missing_file_and_wrong_sha256(variants, tmp_path):
    path = variants["ev"][0]
    out = cli(["datasets", "card", str(path)])
    text = out.output
    card = tmp_path / "mine.toml"
    card.write_text(text.replace('name = "ev"', 'name = "mine"').replace('path = "ev.xyz"', f'path = "{path}"'))
    assert cli(["datasets", "show", str(card)]).exit_code == 0
    missing = tmp_path / "missing.toml"
    missing.write_text(text.replace('path = "ev.xyz"', 'path = "gone.xyz"'))
    out = cli(["run", "schnet", "--dataset", str(missing), "--runs-dir", str(tmp_path / "runs"), *QUICK])
    one_error_line(out, str(tmp_path / "gone.xyz"), "file not found")
    wrong = tmp_path / "wrong.toml"
    digest = next(line for line in text.splitlines() if line.startswith("sha256")).split('"')[1]
    wrong.write_text(text.replace(digest, "0" * 64).replace('path = "ev.xyz"', f'path = "{path}"'))
    out = cli(["run", "schnet", "--dataset", str(wrong), "--runs-dir", str(tmp_path / "runs"), *QUICK])
    one_error_line(out, str(path), f"has sha256 {digest}, expected {'0' * 64}")
    assert _nothing_written(tmp_path / "runs")


def test_max_configs_takes_the_first_n_of_each_file(data_dir):
    from mlffbench.data.loading import config_roles, limit_configs, load_dataset
    from mlffbench.plugin.manager import get_registry
    from mlffbench.runs.experiment import run_split
    from mlffbench.training.config import TrainConfig

    card = get_registry().dataset("rmd17-ethanol")
    full = load_dataset(card, data_dir=data_dir, download=False)
    ds = limit_configs(full, card, 200)
    assert ds.n_configs == 400
    roles = config_roles(ds, card)
    assert (roles == "train").sum() == 200 and (roles == "test").sum() == 200
    first_test = int(np.flatnonzero(config_roles(full, card) == "test")[0])
    np.testing.assert_array_equal(ds.positions[ds.atoms_of(200)], full.positions[full.atoms_of(first_test)])
    split = run_split(ds, card, TrainConfig(max_configs=200))
    assert len(split.test) == 200 and len(split.train) + len(split.val) == 200


def test_failed_run_writes_no_run_directory(tmp_path):
    out = cli(["run", "schnet", "--dataset", "ean", "--runs-dir", str(tmp_path), "--split-policy", "files", *QUICK])
    assert out.exit_code == 2, out.output
    assert _nothing_written(tmp_path)
