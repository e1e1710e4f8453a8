"""The conformance suite catches planted defects, and ``mlffbench check`` reports it.

The model under test is a small SchNet (PyTorch, float64, seeded) on the standard real
configurations (EAN configuration 0, periodic; rMD17 ethanol configuration 0, free). Each
defect wrapper breaks one law: the clean model passes that check, the wrapped one fails it
with a measured deviation far above the tolerance.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from mlffbench.cli.app import main
from mlffbench.tasks.conformance import FAILED, PASSED, REPORTED, plugin_model, run_suite, standard_configurations
from mlffbench.tasks.conformance.defects import planted

SMALL = {
    "hidden_channels": 16,
    "num_filters": 16,
    "num_interactions": 1,
    "num_gaussians": 12,
    "readout_channels": 8,
    "cutoff": 3.0,
}
SCHNET = [
    "-p",
    "hidden_channels=16",
    "-p",
    "num_filters=16",
    "-p",
    "num_interactions=1",
    "-p",
    "num_gaussians=12",
    "-p",
    "cutoff=3.0",
]


@pytest.fixture(scope="module")
def configs(data_dir):
    return standard_configurations(data_dir)


@pytest.fixture(scope="module")
def model():
    return plugin_model("schnet", seed=2, reference_energies=[-0.5, -3.0, -4.0, -5.0], **SMALL)


@pytest.mark.parametrize(
    "defect, check",
    [("rotation", "rotation"), ("cutoff", "cutoff smoothness"), ("force-sign", "forces")],
)
def test_planted_defect_is_reported_as_a_failure(model, configs, defect, check):
    clean = run_suite(model, configs, only=[check]).result(check)
    assert clean.status == PASSED, clean
    broken = run_suite(planted(model, defect), configs, only=[check]).result(check)
    assert broken.status == FAILED
    worst = max(m.value / m.tolerance for m in broken.measurements if not m.must_exceed)
    assert worst > 100  # far outside the tolerance, not a borderline call


def test_force_sign_defect_fails_only_the_force_check(model, configs):
    """The other checks compare forces with forces (both flipped) or use energies only."""
    report = run_suite(planted(model, "force-sign"), configs)
    assert report.failed() == ["forces"]
    assert not report.ok


def test_a_declared_hard_cutoff_is_reported_with_its_jump(model, configs):
    wrapped = planted(model, "cutoff")
    wrapped.hard_cutoff = True
    result = run_suite(wrapped, configs, only=["cutoff smoothness"]).result("cutoff smoothness")
    assert result.status == REPORTED
    assert abs(result.measurements[0].value - 1e-3) < 1e-6  # the planted step: one pair of 1e-3 eV
    assert "1.000e-03 eV" in result.detail


def test_configurations_with_unknown_elements_are_left_out(configs):
    """An H/O-only model cannot run on EAN or ethanol (C, N): a clear error, not a crash."""
    from mlffbench.errors import ConfigError

    ho = plugin_model("schnet", species=(1, 8), seed=0, **SMALL)
    with pytest.raises(ConfigError, match="no configuration has only elements"):
        run_suite(ho, configs)


def test_check_command_prints_the_table_and_writes_json(tmp_path, data_dir):
    out = tmp_path / "report.json"
    result = CliRunner().invoke(
        main,
        [
            "check",
            "schnet",
            *SCHNET,
            "--only",
            "forces",
            "--only",
            "supercell",
            "--json",
            str(out),
            "--data-dir",
            str(data_dir),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "conformance of schnet" in result.output and "max|F_fd − F|" in result.output
    report = json.loads(out.read_text())
    assert [c["name"] for c in report["checks"]] == ["forces", "supercell"]
    assert all(c["status"] == "passed" for c in report["checks"])


def test_check_command_errors(data_dir):
    runner = CliRunner()
    result = runner.invoke(main, ["check", "no-such-model", "--data-dir", str(data_dir)])
    assert result.exit_code == 2 and "unknown model 'no-such-model'" in result.output
    result = runner.invoke(main, ["check", "schnet", "--only", "gravity", "--data-dir", str(data_dir)])
    assert result.exit_code == 2 and "unknown check 'gravity'" in result.output
