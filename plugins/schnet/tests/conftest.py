"""Shared fixtures of the SchNet plugin tests: real data and an evaluator of plain configurations
through the core's prediction path (the torch backend, float64).

Data: $MLFFBENCH_DATA_DIR, else ``shared/data`` beside the repository.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from mlffbench.backends.torch import testing as torch_testing
from mlffbench.data.stats import SpeciesStats
from mlffbench.testing import EAN_SPECIES, data_dir, dataset_loader, ean_config
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


class Evaluator(torch_testing.Evaluator):
    """A float64 SchNet potential with seeded random weights, on plain configurations."""

    def __init__(self, config: SchnetConfig, species=EAN_SPECIES, seed: int = 0, references=None):
        self.config = config
        species = tuple(species)
        refs = np.zeros(len(species)) if references is None else np.asarray(references, np.float64)
        potential = build(config, SpeciesStats(species=species, reference_energies=refs))
        torch.manual_seed(seed)
        potential.module.reset_parameters()
        potential.module.double()
        randomise(potential.module, seed)
        super().__init__(potential, species, config.cutoff)

    def batch(self, configs, cutoff=None):
        """(one torch batch of ``configs``: list of (numbers, positions, cell, pbc), the core's numpy batch)."""
        graph_batch = self.graph_batch(configs, cutoff)
        return self.backend.device_batch(graph_batch), graph_batch


@pytest.fixture(scope="session")
def helpers():
    return SimpleNamespace(Evaluator=Evaluator, ean_config=ean_config, EAN_SPECIES=EAN_SPECIES, randomise=randomise)
