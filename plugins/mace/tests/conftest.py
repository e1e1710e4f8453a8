"""Shared fixtures of the MACE plugin tests: real data, and a float64 MACE potential with seeded
random weights evaluated through the core's prediction path (the torch backend).

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
from mlffbench.testing import data_dir, dataset_loader
from mlffbench_mace.config import MaceConfig
from mlffbench_mace.model import build

REPO = Path(__file__).resolve().parents[3]

# small enough for 2 CI cores, with every kind of block (ℓ = 1 messages, correlation 2, MLP readout)
TINY = MaceConfig(num_channels=8, max_L=1, max_ell=2, correlation=2, num_interactions=2, radial_mlp=(16, 16))


@pytest.fixture(scope="session")
def conformance_data_dir() -> Path:
    """Where the conformance suite (mlffbench's pytest plugin) finds its configurations."""
    return data_dir(REPO)


@pytest.fixture(scope="session")
def datasets(tmp_path_factory):
    """Loads datasets by card name (cached for the session, parsed-set cache in a temp dir)."""
    return dataset_loader(data_dir(REPO), tmp_path_factory, "mace-cache")


class Evaluator(torch_testing.Evaluator):
    """A float64 MACE potential with seeded random weights (mace-torch's distributions plus noise)
    and zero reference energies, on plain configurations (numbers, positions, cell, pbc)."""

    def __init__(self, config: MaceConfig, species, seed: int = 0):
        self.config = config
        species = tuple(int(z) for z in species)
        potential = build(config, SpeciesStats(species=species, reference_energies=np.zeros(len(species))))
        module = potential.module
        gen = torch.Generator().manual_seed(seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module.to(torch.float32)
            module.reset_parameters()
        module.double()
        with torch.no_grad():
            for p in module.parameters():
                p.add_(0.1 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
        super().__init__(potential, species, config.r_max)

    def batch(self, configs):
        return super().batch(configs)[0]

    def atomic_energies_forces(self, batch):
        """(per-atom energies, forces) of the real atoms, numpy, from the backend's prediction."""
        out = self.outputs(batch, atomic=True)
        return out.atomic, out.forces


@pytest.fixture(scope="session")
def helpers():
    return SimpleNamespace(Evaluator=Evaluator, TINY=TINY)
