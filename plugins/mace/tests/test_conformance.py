"""MACE (PyTorch) through mlffbench's conformance suite (float64, seeded initialisation,
per-species reference energies)."""

from __future__ import annotations

import pytest

from mlffbench.tasks.conformance import CHECK_NAMES, plugin_model, require
from mlffbench_mace.config import MaceConfig

# ℓ ≤ 1, 4 channels, 4 Å: the whole suite in well under a minute on 2 cores
SMALL = MaceConfig(num_channels=4, max_L=1, max_ell=1, correlation=2, num_interactions=2, radial_mlp=(8,), r_max=4.0)


@pytest.fixture(scope="module")
def report(conformance):
    return conformance.run(plugin_model("mace", SMALL, seed=1, reference_energies=[-0.5, -3.0, -4.0, -5.0]))


@pytest.mark.parametrize("check", CHECK_NAMES)
def test_conformance(report, check):
    require(report, check, allow_reported=False)
