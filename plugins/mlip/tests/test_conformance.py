"""The three mlip models through mlffbench's conformance suite (float64, small configs,
seeded weights): symmetries, forces and stress against the energy, periodic images,
save/load, smooth cutoff (mlip's polynomial / cosine envelopes)."""

from __future__ import annotations

import dataclasses

import pytest

from mlffbench.tasks.conformance import CHECK_NAMES, plugin_model, require

MODELS = ("mace-jax", "nequip-jax", "visnet-jax")


@pytest.fixture(scope="module", params=MODELS)
def report(request, conformance, small):
    name = request.param
    # a 4 Å graph (about half the edges of 5 Å on EAN) keeps the suite at CI size
    config = dataclasses.replace(small[name], cutoff=4.0)
    return conformance.run(plugin_model(name, config, seed=1))


@pytest.mark.slow
@pytest.mark.parametrize("check", CHECK_NAMES)
def test_conformance(report, check):
    require(report, check, allow_reported=False)
