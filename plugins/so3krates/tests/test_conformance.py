"""SO3krates through mlffbench's conformance suite (float64, seeded parameters with a random,
non-zero energy head, EAN configuration 0 and rMD17 ethanol configuration 0), on a small model
(2 layers, F = 16, degrees 1-2): a smooth cutoff, so nothing is only reported."""

from __future__ import annotations

import pytest

from mlffbench.tasks.conformance import CHECK_NAMES, plugin_model, require
from mlffbench_so3krates.config import So3kratesConfig

SMALL = So3kratesConfig(
    n_layers=2,
    features=16,
    n_heads=2,
    max_degree=2,
    n_rbf=6,
    regression_dim=8,
    output_zero_init=False,  # a zero energy head would pass every check trivially
)


@pytest.fixture(scope="module")
def report(conformance):
    return conformance.run(plugin_model("so3krates", SMALL, seed=0))


@pytest.mark.slow  # the suite compiles some twenty float64 functions (≈ 30-60 s CPU in all)
@pytest.mark.parametrize("check", CHECK_NAMES)
def test_conformance(report, check):
    require(report, check, allow_reported=False)
