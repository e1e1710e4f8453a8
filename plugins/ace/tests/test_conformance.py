"""ace-linear and ace-gnn through mlffbench's conformance suite (float64, seeded parameters,
EAN configuration 0 and rMD17 ethanol configuration 0), on tiny bases."""

from __future__ import annotations

import pytest

from mlffbench.tasks.conformance import CHECK_NAMES, plugin_model, require
from mlffbench_ace.config import AceConfig

TINY = AceConfig(n_radial=3, l_max=2, body_order=4, n_radial_high=2, l_max_high=1, hidden=8, n_layers=1)


@pytest.fixture(scope="module")
def linear_report(conformance):
    return conformance.run(plugin_model("ace-linear", TINY, seed=0))


@pytest.mark.parametrize("check", CHECK_NAMES)
def test_linear_conformance(linear_report, check):
    require(linear_report, check, allow_reported=False)  # smooth cutoff: nothing is only reported


@pytest.fixture(scope="module")
def gnn_report(conformance):
    return conformance.run(plugin_model("ace-gnn", TINY, seed=0))


@pytest.mark.slow
@pytest.mark.parametrize("check", CHECK_NAMES)
def test_gnn_conformance(gnn_report, check):
    require(gnn_report, check, allow_reported=False)
