"""SchNet (PyTorch) through mlffbench's conformance suite (float64, seeded initialisation,
per-species energy shift)."""

from __future__ import annotations

import pytest

from mlffbench.tasks.conformance import CHECK_NAMES, plugin_model, require
from mlffbench_schnet.config import SchnetConfig

SMALL = SchnetConfig(
    hidden_channels=32, num_filters=32, num_interactions=2, num_gaussians=25, cutoff=5.0, readout_channels=16
)


@pytest.fixture(scope="module")
def report(conformance):
    return conformance.run(plugin_model("schnet", SMALL, seed=1, reference_energies=[-0.5, -3.0, -4.0, -5.0]))


@pytest.mark.parametrize("check", CHECK_NAMES)
def test_conformance(report, check):
    require(report, check, allow_reported=False)
