"""The command line: dataset summaries for every dataset, and bad input as one clear line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

CLI = [sys.executable, "-m", "mlffbench.cli.app"]

EXPECTED = {
    # name: (configurations, atoms_min, atoms_max, periodic)
    "ean": (75, 225, 225, "yes"),
    "ani1-s01": (10_800, 3, 5, "no"),
    "comp6-s66x8": (528, 6, 34, "no"),
    "water": (400, 192, 192, "yes"),
    "hfo2-slabs": (105, 60, 98, "yes"),
    "botnet-acac": (1800, 15, 15, "no"),
    "botnet-ethanol": (2000, 9, 9, "no"),
    **{
        f"rmd17-{m}": (2000, n, n, "no")
        for m, n in {
            "aspirin": 21,
            "azobenzene": 24,
            "benzene": 12,
            "ethanol": 9,
            "malonaldehyde": 9,
            "naphthalene": 18,
            "paracetamol": 20,
            "salicylic": 16,
            "toluene": 15,
            "uracil": 12,
        }.items()
    },
}


def cli(*args, cwd=None, env=None):
    environ = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run(CLI + list(args), capture_output=True, text=True, cwd=cwd, env=environ, timeout=600)


def assert_user_error(out, *fragments):
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("error:"), lines[0]
    assert "Traceback" not in out.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def test_datasets_show_counts_every_dataset(tmp_path, data_dir):
    listing = cli("datasets")
    assert listing.returncode == 0, listing.stderr
    for name, (configs, atoms_min, atoms_max, periodic) in EXPECTED.items():
        target = tmp_path / f"{name}.json"
        out = cli("datasets", "show", name, "--data-dir", str(data_dir), "--json", str(target))
        assert out.returncode == 0, out.stderr
        info = json.loads(target.read_text())
        assert (info["configurations"], info["atoms_min"], info["atoms_max"], info["periodic"]) == (
            configs,
            atoms_min,
            atoms_max,
            periodic,
        ), name
        assert str(configs) in out.stdout
        assert name in listing.stdout
    ean = json.loads((tmp_path / "ean.json").read_text())
    assert sorted(ean["elements"]) == ["C", "H", "N", "O"] and ean["atoms_total"] == 75 * 225
    rmd17 = json.loads((tmp_path / "rmd17-ethanol.json").read_text())
    assert rmd17["files"] == {"train": 1000, "test": 1000}


def test_unknown_names(tmp_path):
    assert_user_error(cli("datasets", "show", "no-such-set"), "unknown dataset 'no-such-set'", "ean")
    assert_user_error(
        cli("run", "no-such-model", "--dataset", "ean", "--runs-dir", str(tmp_path)),
        "unknown model 'no-such-model'",
        "jat",
    )
    assert_user_error(cli("run", "jat", "--dataset", "nope", "--runs-dir", str(tmp_path)), "unknown dataset 'nope'")
    assert not any(tmp_path.iterdir())  # nothing written


def test_missing_dataset_files(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = cli("datasets", "show", "ean", "--data-dir", str(empty), "--no-download")
    assert_user_error(out, "ean_neuralil/validation_original.json", "not found")


def test_corrupted_file_is_rejected_and_left_alone(tmp_path, data_dir):
    broken = tmp_path / "data" / "ean_neuralil"
    broken.mkdir(parents=True)
    source = data_dir / "ean_neuralil" / "validation_original.json"
    text = source.read_text().splitlines(keepends=True)
    (broken / "validation_original.json").write_text("".join(text[:3]) + text[3][: len(text[3]) // 2])
    before = (broken / "validation_original.json").read_bytes()
    out = cli(
        "datasets",
        "show",
        "ean",
        "--data-dir",
        str(tmp_path / "data"),
        "--no-download",
        env={"MLFFBENCH_CACHE_DIR": str(tmp_path / "cache")},
    )
    assert_user_error(out, "validation_original.json", "sha256")
    assert (broken / "validation_original.json").read_bytes() == before


def test_bad_options(tmp_path):
    assert_user_error(
        cli("run", "jat", "--dataset", "ean", "--param", "n_head=0", "--runs-dir", str(tmp_path)), "n_head"
    )
    assert_user_error(
        cli("run", "jat", "--dataset", "ean", "--param", "no_such_option=1", "--runs-dir", str(tmp_path)),
        "unknown jat model option(s): no_such_option",
    )
    assert_user_error(
        cli("run", "jat", "--dataset", "ean", "--lr", "1,2", "--runs-dir", str(tmp_path)), "--lr must be 3"
    )
    assert_user_error(
        cli("run", "jat", "--dataset", "ean", "--param", "broken", "--runs-dir", str(tmp_path)), "--param 'broken'"
    )
    assert_user_error(cli("evaluate", "jat", "--dataset", "ean", "--runs-dir", str(tmp_path)), "--init-from")


def test_readme_commands_are_what_ci_runs():
    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text()
    ci_command = [
        line
        for line in (root / ".ci" / "run").read_text().splitlines()
        if line and not line.startswith(("#", "set ", "cd "))
    ]
    assert len(ci_command) == 1 and ci_command[0] in readme
    assert shutil.which("bash")
