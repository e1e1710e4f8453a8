"""The plugin gives mlip's own numbers: for fixed seeded weights in float64, per-atom energies
and forces through mlffbench (the plugin's module on the core's receiver-sorted edge graph,
forces by the core's Potential) equal mlip's own forward (its neighbour list and Graph from an
ASE Atoms, its ConservativePredictor / ForceField) on EAN configuration 0 (periodic, 225 atoms)
and rMD17 aspirin configuration 0 (free molecule, 21 atoms)."""

from __future__ import annotations

import ase
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mlffbench.backends.jax import testing as jax_testing
from mlffbench.testing import ean_config
from mlffbench_mlip import model as mlip_model

MODELS = ("mace-jax", "nequip-jax", "visnet-jax")
REL_TOL = 1e-8


def mlip_reference(config, species, params, numbers, positions, cell, pbc):
    """(per-atom energies, forces) from mlip's own pipeline, float64."""
    from mlip.data import ChemicalSystem
    from mlip.graph import Graph
    from mlip.models import ForceField
    from mlip.models.predictors.conservative_predictor import ConservativePredictor
    from mlip.typing.properties import Properties

    atoms = ase.Atoms(numbers=numbers, positions=positions, cell=cell, pbc=pbc)
    graph = Graph.from_chemical_system(ChemicalSystem.from_ase_atoms(atoms), config.cutoff)
    graph = jax.tree_util.tree_map(
        lambda x: jnp.asarray(x, jnp.float64) if np.issubdtype(np.asarray(x).dtype, np.floating) else x, graph
    )
    predictor = ConservativePredictor(
        mlip_network=mlip_model.mlip_network(config, species), required_properties=Properties()
    )
    force_field = ForceField(predictor=predictor, params={"params": {"mlip_network": params["mlip_network"]}})
    out = jax.jit(force_field.calculate)(graph)
    return np.asarray(out.nodes.features["energy"]), np.asarray(out.nodes.forces)


def _rel(a, b):
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


@pytest.fixture(scope="module")
def configurations(datasets):
    ean = datasets("ean")
    aspirin = datasets("rmd17-aspirin")
    return {"ean[0]": ean_config(ean, 0), "aspirin[0]": ean_config(aspirin, 0)}


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_same_numbers_as_mlip(x64, small, configurations, name):
    config = small[name]
    for label, conf in configurations.items():
        species = tuple(sorted({int(z) for z in conf[0]}))
        module = mlip_model.make_model(config, species)
        params = mlip_model.init_params(module, seed=3)
        assert {leaf.dtype for leaf in jax.tree_util.tree_leaves(params)} == {np.dtype(np.float64)}
        evaluator = jax_testing.Evaluator(mlip_model.build, config, species, params)
        batch, _ = evaluator.batch([conf])
        # the core's edges are receiver-sorted: the module must re-sort them for mlip
        assert np.all(np.diff(np.asarray(batch.receivers)) >= 0)
        assert not np.all(np.diff(np.asarray(batch.senders)) >= 0)
        energy, forces, atomic = evaluator.evaluate(batch)
        ref_atomic, ref_forces = mlip_reference(config, species, params, *conf)
        assert np.abs(ref_forces).max() > 1e-4  # a real, non-trivial comparison
        rel_atomic, rel_forces = _rel(atomic, ref_atomic), _rel(forces, ref_forces)
        rel_energy = abs(energy[0] - ref_atomic.sum()) / abs(ref_atomic.sum())
        print(f"{name} {label}: rel diff atomic {rel_atomic:.2e}, energy {rel_energy:.2e}, forces {rel_forces:.2e}")
        assert rel_atomic <= REL_TOL, (label, rel_atomic)
        assert rel_energy <= REL_TOL, (label, rel_energy)
        assert rel_forces <= REL_TOL, (label, rel_forces)
