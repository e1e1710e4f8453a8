"""`mlffbench bench` and `mlffbench compare` end to end on real EAN data with tiny models."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

CLI = [sys.executable, "-m", "mlffbench.cli.app"]
TINY_JAT = ["-p", "layer_dims=[16,16]", "-p", "embed_d=16", "-p", "cutoff=3.5"]
COMPARE_TINY = [
    "-p",
    "jat:layer_dims=[16,16]",
    "-p",
    "jat:embed_d=16",
    "-p",
    "jat:cutoff=3.5",
    "-p",
    "neuralil:core_widths=[16,16]",
    "-p",
    "neuralil:n_max=2",
]


def cli(args, cwd, timeout=600):
    env = {**os.environ, "COLUMNS": "220"}
    return subprocess.run(CLI + args, capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)


def test_bench_cli(tmp_path):
    out = cli(
        [
            "bench",
            "jat",
            "--dataset",
            "ean",
            "--max-configs",
            "12",
            *TINY_JAT,
            "--repeats",
            "2",
            "--train-steps",
            "1",
            "--infer-batch",
            "3",
            "--sweep",
            "1,2",
            "--sweep-repeats",
            "2",
            "--json",
            "bench.json",
        ],
        tmp_path,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads((tmp_path / "bench.json").read_text())
    train, (one, three) = result["training"], result["inference"]
    assert train["configs_per_call"] == 2 and train["recompilations"] == 0 and train["warmup_compilations"] >= 1
    assert one["atoms_per_call"] == 225 and three["atoms_per_call"] == 3 * 225
    for t in (train, one, three):
        assert t["repeats"] == 2 and t["median_s"] > 0 and t["recompilations"] == 0
        assert t["us_per_atom_step"] == pytest.approx(1e6 * t["median_s"] / t["atoms_per_call"])
    assert one["warmup_compilations"] >= 1  # compiled in the warm-up, not in the timed calls
    sweep = result["size_sweep"]
    assert [p["atoms"] for p in sweep["points"]] == [225, 1800]
    assert sweep["points"][1]["edges"] == 8 * sweep["points"][0]["edges"]  # a periodic supercell has 8× the pairs
    small, large = sweep["points"]
    assert large["median_s"] > small["median_s"]  # 8× the atoms and edges cost more
    assert sweep["fit"]["exponent"] == pytest.approx(np.log(large["median_s"] / small["median_s"]) / np.log(8))
    assert result["memory"]["peak_host_bytes"] > 0 and result["memory"]["peak_device_bytes"] is None
    assert {"cpu", "cpu_count", "versions"} <= set(result["machine"]) and "jax" in result["machine"]["versions"]
    assert "size sweep" in out.stdout and "µs/atom·step" in out.stdout


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("compare")
    args = [
        "compare",
        "jat",
        "neuralil",
        "--dataset",
        "ean",
        "--epochs",
        "1",
        "--max-configs",
        "20",
        *COMPARE_TINY,
        "--repeats",
        "2",
        "--train-steps",
        "1",
        "--no-progress",
        "--out",
        "report",
        "--json",
        "compare.json",
    ]
    out = cli(args, cwd)
    assert out.returncode == 0, out.stderr
    return cwd, json.loads((cwd / "compare.json").read_text()), out, args


def test_compare_outputs(compared):
    cwd, result, out, _ = compared
    assert result["order"] == ["jat", "neuralil"]
    fps = {r["split_fingerprint"] for r in result["runs"]}
    assert fps == {result["split_fingerprint"]} and len(result["runs"]) == 2
    for name in ("jat", "neuralil"):
        m = result["models"][name]
        assert np.isfinite(m["test"]["force_mae"]["mean"]) and m["n_params"] > 0
        assert m["inference"]["recompilations"] == 0 and m["training"]["configs_per_s"] > 0
        run_metrics = json.loads((Path(cwd) / m["runs"][0] / "metrics.json").read_text())
        # compare re-evaluates the best checkpoint: the same test errors the run recorded
        assert m["test"]["force_mae"]["mean"] == pytest.approx(run_metrics["test"]["force_mae"], rel=1e-4)
    assert result["models"]["jat"]["train_speed_ratio"] == pytest.approx(1.0)
    for file in (
        "report/report.md",
        "report/accuracy_vs_speed.png",
        "report/force_mae_vs_wall_time.png",
        "report/force_parity.png",
    ):
        assert (cwd / file).is_file() and (cwd / file).stat().st_size > 1000, file
    report = (cwd / "report/report.md").read_text()
    assert result["split_fingerprint"] in report and "![parity](force_parity.png)" in report
    assert "meV/Å (test)" in out.stdout and "neuralil" in out.stdout  # units on a header's second line

    # paired statistics: one pair, force and energy, on the same test configurations; one seed: a warning
    paired = {p["metric"]: p for p in result["paired"]}
    assert set(paired) == {"force_mae", "energy_mae_per_atom"}
    n_test = result["split_sizes"]["test"]
    for p in paired.values():
        assert (p["a"], p["b"], p["configs"], p["seeds_a"], p["seeds_b"]) == ("jat", "neuralil", n_test, 1, 1)
        assert p["verdict"] in ("jat better", "neuralil better", "tied within the noise")
        assert p["ci"][0] <= p["mean_diff"] <= p["ci"][1] and p["mdd"] >= 0 and 0 <= p["wilcoxon_p"] <= 1
    jat, neuralil = (result["models"][n]["test"]["force_mae"]["mean"] for n in ("jat", "neuralil"))
    # the mean of per-configuration force MAEs weighs configurations equally; EAN's all have 225 atoms
    assert paired["force_mae"]["mean_diff"] == pytest.approx(jat - neuralil, rel=1e-4, abs=1e-9)
    assert len(result["warnings"]) == 2 and "single seed" in result["warnings"][0]
    assert "single seed" in out.stdout and "paired differences" in out.stdout
    assert "## Paired differences" in report and "min. detectable" in report


def test_compare_logs_parent_run(compared):
    cwd, result, _, _ = compared
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{(cwd / 'runs' / 'mlflow.db').resolve()}")
    run = client.get_run(result["mlflow_run_id"])
    assert run.data.tags["split_fingerprint"] == result["split_fingerprint"]
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {"report.md", "force_parity.png", "compare.json"}
    assert "jat.test.force_mae" in run.data.metrics and "paired.jat-neuralil.force_mae.mean_diff" in run.data.metrics


def test_compare_reuses_matching_runs(compared):
    """Same models, dataset, configuration, split and budget: the finished runs are found
    (nothing is trained); another budget finds none."""
    cwd, result, _, _ = compared
    from mlffbench.speed.compare import CompareOptions, _resolved, expected_split, find_reusable, obtain_runs

    options = CompareOptions(
        models=("jat", "neuralil"),
        dataset="ean",
        epochs=1,
        train_params={"max_configs": 20},
        runs_dir=cwd / "runs",
        model_params={
            "jat": {"layer_dims": [16, 16], "embed_d": 16, "cutoff": 3.5},
            "neuralil": {"core_widths": [16, 16], "n_max": 2},
        },
    )
    found = obtain_runs(options)
    assert [d.name for d in found] == [Path(r["run_dir"]).name for r in result["runs"]]
    fp = expected_split("jat", options).fingerprint
    assert fp == result["split_fingerprint"]
    _spec, _card, _, _, model_config, train_config = _resolved(
        "jat", CompareOptions(**{**options.__dict__, "epochs": 2}), 0
    )
    assert find_reusable(cwd / "runs", "jat", "ean", model_config, train_config, fp) is None


def test_compare_refuses_runs_on_different_splits(compared):
    cwd, result, _, _ = compared
    out = cli(
        [
            "run",
            "jat",
            "--dataset",
            "ean",
            "--epochs",
            "0",
            "--max-configs",
            "20",
            "--split-seed",
            "1",
            *TINY_JAT,
            "--no-progress",
            "--no-tracking",
        ],
        cwd,
    )  # no training needed: the run records its split
    assert out.returncode == 0, out.stderr
    other = next(line.split(":", 1)[1].strip() for line in out.stdout.splitlines() if line.startswith("run directory:"))
    first = result["models"]["jat"]["runs"][0]
    refused = cli(["compare", "--runs", first, other, "--no-tracking", "--out", "refused"], cwd)
    assert refused.returncode == 2
    assert "different splits" in refused.stderr and "Traceback" not in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert not (cwd / "refused").exists()


def test_per_group_breakdown_on_molecules():
    """COMP6 S66x8 (66 dimers, more than 30 groups): errors broken down by heavy-atom count;
    predictions off by a known amount per group give exactly that error per group."""
    from mlffbench.data.loading import load_dataset
    from mlffbench.speed.compare import errors_of, groups_of

    ds = load_dataset("comp6-s66x8")
    idx = np.arange(0, ds.n_configs, 3)
    kind, groups = groups_of(ds, idx)
    assert kind == "heavy atoms" and sum(len(v) for v in groups.values()) == idx.size
    heavy = {int(i): int((ds.numbers[ds.atoms_of(int(i))] > 1).sum()) for i in idx}
    assert all(heavy[int(i)] == int(g) for g, members in groups.items() for i in members)
    n_atoms = ds.n_atoms[idx]
    atom_config = np.repeat(np.arange(idx.size), n_atoms)
    ref_f = np.concatenate([ds.forces[ds.atoms_of(int(i))] for i in idx])
    shift = np.array([1e-3 * heavy[int(i)] for i in idx])  # eV/Å per component, eV/atom per energy
    pred = {
        "config": idx,
        "n_atoms": n_atoms,
        "atom_config": atom_config,
        "energy_ref": ds.energy[idx],
        "energy_pred": ds.energy[idx] + shift * n_atoms,
        "force_ref": ref_f,
        "force_pred": ref_f - shift[atom_config][:, None],
    }
    for g, members in groups.items():
        e = errors_of(pred, members)
        assert e["configs"] == len(members)
        assert e["force_mae"] == pytest.approx(1e-3 * int(g)) and e["energy_mae_per_atom"] == pytest.approx(
            1e-3 * int(g)
        )
    whole = errors_of(pred)
    assert min(1e-3 * int(g) for g in groups) < whole["force_mae"] < max(1e-3 * int(g) for g in groups)


def test_compare_table_reads_at_80_columns(compared):
    """At 80 columns (a pipe's default) no header or cell is cut to "…" and no line is wider:
    units go to a second header line and the columns that do not fit to a second table."""
    import io

    from rich.console import Console

    from mlffbench.speed.report import render

    _, result, _, _ = compared
    console = Console(width=80, file=io.StringIO(), color_system=None, force_terminal=False)
    render(result, console)
    text = console.file.getvalue()
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 80
    for word in ("F MAE", "meV/Å", "µs/atom·step", "t→target", "inference speed", "Wilcoxon p", "verdict", "95% CI"):
        assert word in text, word
    assert "(1/2)" in text and "(2/2)" in text


CHROMIUM = "/usr/bin/chromium"


def _chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess:
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=0",
    ]
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_report_html_renders_in_chromium(compared, tmp_path):
    """report.html is self-contained (plots embedded) and renders in headless Chromium: the
    screenshot is of the expected size and not blank; the page's sorting script ran without
    errors (its marker in the DOM, no "Uncaught" in the console log)."""
    cwd, result, _, _ = compared
    page = cwd / "report" / "report.html"
    assert result["report_html"].endswith("report.html") and page.is_file()
    text = page.read_text()
    assert result["split_fingerprint"] in text and "data:image/png;base64," in text
    assert 'src="http' not in text and "<link" not in text  # nothing fetched from beside or outside it
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"{CHROMIUM} is missing: scripts/setup.sh installs Debian's chromium where apt is usable")
    shot = tmp_path / "report.png"
    out = _chromium([f"--screenshot={shot}", "--window-size=1200,900", page.resolve().as_uri()], tmp_path / "p1")
    assert shot.is_file(), out.stderr[-2000:]
    from PIL import Image

    with Image.open(shot) as im:
        assert im.size == (1200, 900)
        pixels = np.asarray(im.convert("L"), dtype=float)
    assert pixels.std() > 10 and (pixels < 128).mean() > 0.005  # text, tables and plots, not a blank page
    dom = _chromium(["--dump-dom", page.resolve().as_uri()], tmp_path / "p2")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert 'data-script="ok"' in dom.stdout, dom.stderr[-2000:]
    assert "Uncaught" not in dom.stderr + out.stderr
    keep = os.environ.get("MLFFBENCH_KEEP_SCREENSHOT")
    if keep:
        Path(keep).write_bytes(shot.read_bytes())
