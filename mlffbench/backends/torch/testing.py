"""Helpers for the tests of PyTorch model plugins: a plugin's torch potential with the weights its
module holds, on plain configurations through the core's prediction path
(:class:`mlffbench.backends.testing.Evaluator` with the torch backend, on the CPU)."""

from __future__ import annotations

import torch

from mlffbench.backends import testing
from mlffbench.backends.torch.potential import Potential
from mlffbench.backends.torch.trainer import TorchBackend, TorchState
from mlffbench.training.config import TrainConfig


class Evaluator(testing.Evaluator):
    """``potential`` with its module's own (current) parameters, in ``dtype``, on the CPU.

    The state is made from the module at every evaluation, so weights loaded into the module
    later (``load_state_dict``) are the ones evaluated. Batches are the backend's device batches.
    """

    def __init__(self, potential: Potential, species, cutoff: float, dtype: str = "float64", **batching) -> None:
        backend = TorchBackend(potential, TrainConfig(dtype=dtype), device="cpu")
        super().__init__(backend, None, species, cutoff, **batching)

    @property
    def state(self) -> TorchState:
        return self.backend.state_of(dict(self.potential.module.named_parameters()))

    def with_positions(self, batch, positions):
        pos = batch.positions.clone()
        pos[: len(positions)] = torch.as_tensor(positions, dtype=pos.dtype)
        return batch._replace(positions=pos)
