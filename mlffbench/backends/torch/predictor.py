"""The PyTorch :class:`mlffbench.predictor.Predictor`: a potential and its parameters on plain
configurations (eager, real edges only), in float32 or float64."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import numpy as np
import torch

from mlffbench.backends.torch.potential import to_device
from mlffbench.backends.torch.trainer import TorchBackend
from mlffbench.predictor import Configuration, Prediction, Predictor, split_batch


class TorchPredictor(Predictor):
    def __init__(self, potential, params, species: Sequence[int], cutoff: float, dtype: str = "float32", device="cpu") -> None:
        self.potential = potential
        self.species = tuple(int(z) for z in species)
        self.cutoff = float(cutoff)
        self.dtype = dtype
        self.device = torch.device(device)
        self._torch_dtype = torch.float64 if dtype == "float64" else torch.float32
        self.params = None if params is None else {
            k: v.detach().to(device=self.device, dtype=self._torch_dtype) for k, v in params.items()
        }

    @classmethod
    def from_backend(cls, backend: TorchBackend, state, species, cutoff) -> TorchPredictor:
        dtype = "float64" if backend.dtype == torch.float64 else "float32"
        return cls(backend.potential, state.params, species, cutoff, dtype, backend.device)

    @staticmethod
    def new_backend(potential, train_config, force_rms: float = 1.0) -> TorchBackend:
        return TorchBackend(potential, train_config, force_rms=force_rms)

    @staticmethod
    def precision_scope(dtype: str):
        return contextlib.nullcontext()

    def predict(self, configs: Sequence[Configuration], stress: bool = False, shape=None) -> list[Prediction]:
        batch = self.graph_batch(configs, shape)
        dev = to_device(batch, self._torch_dtype, self.device)
        self.potential.module.eval()
        energy, forces = self.potential.energy_and_forces(self.params, dev)
        sigma = self.potential.stress(self.params, dev).cpu().numpy().astype(np.float64) if stress else None
        return split_batch(batch, energy.cpu().numpy().astype(np.float64), forces.cpu().numpy().astype(np.float64), sigma)
