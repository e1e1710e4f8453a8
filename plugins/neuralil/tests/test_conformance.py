"""NeuralIL through mlffbench's conformance suite (float64, released EAN weights)."""

from __future__ import annotations

import pytest

from mlffbench.tasks.conformance import CHECK_NAMES, PASSED, plugin_model, require
from mlffbench_neuralil.config import NeuralilConfig


@pytest.fixture(scope="module")
def report(conformance, weights_path):
    return conformance.run(plugin_model("neuralil", NeuralilConfig(), weights=weights_path))


@pytest.mark.parametrize("check", CHECK_NAMES)
def test_conformance(report, check):
    require(report, check, allow_reported=False)


def test_smooth_cutoff_passes_outright(report):
    assert report.result("cutoff smoothness").status == PASSED
