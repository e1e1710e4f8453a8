"""The plugin's own test: mlffbench's conformance suite in a few lines (its pytest plugin,
registered by mlffbench's ``pytest11`` entry point, provides the ``conformance`` fixture)."""

import pytest

from mlffbench.tasks.conformance import CHECK_NAMES, plugin_model, require


@pytest.fixture(scope="module")
def report(conformance):
    return conformance.run(plugin_model("pairmlp", seed=0, reference_energies=[-0.5, -3.0, -4.0, -5.0]))


@pytest.mark.parametrize("check", CHECK_NAMES)
def test_conformance(report, check):
    require(report, check, allow_reported=False)
