"""JAT through mlffbench's conformance suite (float64, released EAN weights): the faithful
model (its hard cutoff reported with the measured energy jump), the training default with an
edge basis, and the cosine envelope, which must be smooth at the cutoff."""

from __future__ import annotations

import pytest

from mlffbench.tasks.conformance import CHECK_NAMES, REPORTED, plugin_model, require
from mlffbench_jat.config import JatConfig

EDGE_BASIS_CHECKS = (
    "translation",
    "rotation",
    "permutation",
    "periodic images",
    "forces",
    "stress",
    "cutoff smoothness",
)


@pytest.fixture(scope="module")
def report(conformance, weights_path):
    return conformance.run(plugin_model("jat", JatConfig(), weights=weights_path))


@pytest.mark.parametrize("check", CHECK_NAMES)
def test_conformance(report, check):
    require(report, check)


def test_hard_cutoff_is_reported_with_its_jump(report):
    """The faithful model's energy jumps when pair (66, 124) of EAN[0] crosses r_c = 5 Å
    (the original: ≈ 2.4e-4 eV): reported, not hidden and not a failure."""
    result = report.result("cutoff smoothness")
    assert result.status == REPORTED
    jump = result.measurements[0].value
    assert 1e-4 < jump < 1e-3
    assert "declared hard cutoff" in result.detail


@pytest.fixture(scope="module")
def edge_basis_report(conformance, weights_path):
    """The released weights plus random edge-basis kernels (the default for training)."""
    import numpy as np

    from mlffbench.plugin.manager import get_registry
    from mlffbench.runs.trained import TrainedModel
    from mlffbench.tasks.conformance import model_under_test
    from mlffbench.training.config import TrainConfig
    from mlffbench_jat.weights import load_weights

    config = JatConfig(dtype="float64", edge_basis=16)
    params = load_weights(weights_path, JatConfig(dtype="float64"), species=(1, 6, 7, 8))
    rng = np.random.default_rng(5)
    layers = {
        name: {**layer, "edge_basis": rng.normal(scale=0.3, size=(16, layer["DenseGeneral_0"]["kernel"].shape[-1]))}
        for name, layer in params["core_model"].items()
        if name.startswith("jat_layers")
    }
    params = {**params, "core_model": {**params["core_model"], **layers}}
    model = TrainedModel.fresh(
        get_registry().model("jat"), config, (1, 6, 7, 8), train_config=TrainConfig(dtype="float64"), params=params
    )
    return conformance.run(model_under_test(model), only=EDGE_BASIS_CHECKS)


@pytest.mark.parametrize("check", EDGE_BASIS_CHECKS)
def test_conformance_with_edge_basis(edge_basis_report, check):
    require(edge_basis_report, check)
    if check == "cutoff smoothness":  # the edge basis has an envelope, the attention still cuts hard
        assert edge_basis_report.result(check).status == REPORTED


def test_cosine_envelope_is_smooth_at_the_cutoff(conformance, weights_path):
    model = plugin_model("jat", JatConfig(cutoff_envelope="cosine"), weights=weights_path)
    assert not model.hard_cutoff
    report = conformance.run(model, only=["cutoff smoothness"], configurations=conformance.configurations[:1])
    require(report, "cutoff smoothness", allow_reported=False)
