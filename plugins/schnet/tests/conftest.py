"""Shared fixtures of the SchNet plugin tests: real data and an evaluator that turns plain
configurations into the core's graph batches and the torch backend's tensors (float64).

Data: $MLFFBENCH_DATA_DIR, else ``shared/data`` beside the repository.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from mlffbench.backends.torch.potential import to_device
from mlffbench.data.stats import SpeciesStats
from mlffbench.testing import EAN_SPECIES, data_dir, dataset_loader, ean_config
from mlffbench.testing import graph_batch as core_graph_batch
from mlffbench_schnet.config import SchnetConfig
from mlffbench_schnet.model import build

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def conformance_data_dir() -> Path:
    """Where the conformance suite (mlffbench's pytest plugin) finds its configurations."""
    return data_dir(REPO)


@pytest.fixture(scope="session")
def datasets(tmp_path_factory):
    """Loads datasets by card name (cached for the session, parsed-set cache in a temp dir)."""
    return dataset_loader(data_dir(REPO), tmp_path_factory, "schnet-cache")


@pytest.fixture(scope="session")
def ean(datasets):
    return datasets("ean")


def randomise(module: torch.nn.Module, seed: int, scale: float = 0.05) -> None:
    """PyG's initialisation plus noise on every parameter (so that biases are not zero)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen, dtype=p.dtype))


class Evaluator:
    """A float64 SchNet potential with seeded random weights, on plain configurations."""

    def __init__(self, config: SchnetConfig, species=EAN_SPECIES, seed: int = 0, references=None):
        self.config = config
        self.species = tuple(species)
        refs = np.zeros(len(self.species)) if references is None else np.asarray(references, np.float64)
        stats = SpeciesStats(species=self.species, reference_energies=refs)
        self.potential = build(config, stats)
        torch.manual_seed(seed)
        self.potential.module.reset_parameters()
        self.potential.module.double()
        randomise(self.potential.module, seed)

    def batch(self, configs, cutoff=None):
        """One torch batch of ``configs``: list of (numbers, positions, cell, pbc)."""
        cutoff = self.config.cutoff if cutoff is None else cutoff
        graph_batch, _ = core_graph_batch(configs, self.species, cutoff)
        return to_device(graph_batch, torch.float64), graph_batch

    def energy_forces(self, batch):
        """(energies of the real graphs, forces of the real atoms) as numpy."""
        energy, forces = self.potential.energy_and_forces(None, batch)
        return energy[batch.graph_mask].numpy(), forces[batch.atom_mask].numpy()

    def energy(self, batch, positions=None):
        if positions is not None:
            pos = batch.positions.clone()
            pos[: len(positions)] = torch.as_tensor(positions)
            batch = batch._replace(positions=pos)
        with torch.no_grad():
            return self.potential.energy(None, batch)[batch.graph_mask].numpy()

    def stress(self, batch):
        return self.potential.stress(None, batch)[batch.graph_mask].numpy()


@pytest.fixture(scope="session")
def helpers():
    return SimpleNamespace(Evaluator=Evaluator, ean_config=ean_config, EAN_SPECIES=EAN_SPECIES, randomise=randomise)
