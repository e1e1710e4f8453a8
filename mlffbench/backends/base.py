"""The contract between the framework-neutral loop and a framework backend."""

from __future__ import annotations

import contextlib
import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, TypeVar

import numpy as np

from mlffbench.backends.predictor import BackendPredictor
from mlffbench.errors import ConfigError
from mlffbench.plugin.isolation import kept_process_state

if TYPE_CHECKING:
    from mlffbench.graph.batching import GraphBatch
    from mlffbench.training.config import TrainConfig

BACKENDS = {
    "jax": "mlffbench.backends.jax.trainer:JaxBackend",
    "torch": "mlffbench.backends.torch.trainer:TorchBackend",
}

State = TypeVar("State")  # a backend's training state (parameters and optimizer state)


class Outputs(NamedTuple):
    """What a model gives for one padded batch: energy per graph (G,) eV, forces per atom (N, 3)
    eV/Å, stress per graph (G, 3, 3) eV/Å³ (ASE sign), atomic energies (N,) eV; None where not
    asked for. A potential returns them as framework arrays, :meth:`Backend.evaluate` as numpy
    float64 arrays (padding included: mask with the batch's ``graph_mask`` / ``atom_mask``)."""

    energy: Any
    forces: Any = None
    stress: Any = None
    atomic: Any = None


class Backend(ABC, Generic[State]):
    """One model, one training configuration, one framework.

    ``Backend(potential, train_config, force_rms=...)``: ``potential`` is what the model
    spec's ``build`` returned (the backend's ``Potential``), ``force_rms`` the training
    statistics' force scale (eV/Å) that ``TrainConfig.calibrate_output`` targets.

    A state is opaque to the loop: parameters plus optimizer state. Every method taking
    a batch takes a :class:`mlffbench.graph.batching.GraphBatch` (numpy) and converts it.
    ``compile_count`` / ``compile_seconds`` count compilations (one per bucket shape), the
    ``cache_loads`` among them (and their ``cache_load_seconds``) were loaded from a persistent
    compilation cache instead (:func:`mlffbench.speed.runtime.set_compilation_cache`).
    """

    name: str = ""
    compile_count: int = 0
    compile_seconds: float = 0.0
    cache_loads: int = 0
    cache_load_seconds: float = 0.0

    def __init__(self, potential: Any, train_config: TrainConfig, force_rms: float = 1.0) -> None:
        self.potential = potential
        self.config = train_config
        self.force_rms = float(force_rms)
        self.compile_count = 0
        self.compile_seconds = 0.0
        self.cache_loads = 0
        self.cache_load_seconds = 0.0

    @classmethod
    def precision(cls, dtype: str) -> contextlib.AbstractContextManager[Any]:
        """Context in which a potential of ``dtype`` ("float32"/"float64") is built or its state
        read for this backend (none needed by default; the JAX backend scopes 64-bit JAX)."""
        return contextlib.nullcontext()

    @classmethod
    @contextlib.contextmanager
    def build_scope(cls, dtype: str) -> Iterator[None]:
        """Context in which a plugin builds a potential (or imports weights) of ``dtype``: the
        backend's :meth:`precision`, and the process state kept as it was
        (:func:`mlffbench.plugin.isolation.kept_process_state`)."""
        with kept_process_state(), cls.precision(dtype):
            yield

    @abstractmethod
    def init(self, seed: int, example: GraphBatch) -> State:
        """Fresh state: parameters from ``seed`` and a zeroed optimizer."""

    @abstractmethod
    def train_step(self, state: State, batch: GraphBatch, lr: float) -> tuple[State, Any]:
        """One optimizer step; returns (state, loss) where loss may still be on the device."""

    @abstractmethod
    def loss_value(self, loss: Any) -> float:
        """Wait for the device and return the loss as a Python float."""

    def evaluate(
        self, state: State, batch: Any, *, forces: bool = True, stress: bool = False, atomic: bool = False
    ) -> Outputs:
        """The model's predictions for one batch: the one prediction path of a backend.

        Energies always; forces, stress and per-atom energies where asked for (None otherwise),
        as numpy float64 arrays in the batch's padded shapes, after waiting for the device.
        ``batch``: a numpy :class:`~mlffbench.graph.batching.GraphBatch`, or one already
        converted by :meth:`device_batch` (used as it is). :meth:`predict`,
        :meth:`predict_with_stress`, :meth:`inference_fn`, :meth:`predictor` (the conformance
        suite, the ASE calculator, ``md``, ``scan``) and the plugins' tests all go through it.

        This default serves a backend that implements only :meth:`predict` (and
        :meth:`predict_with_stress`); it cannot give per-atom energies.
        """
        if atomic:
            raise NotImplementedError(f"the {self.name or type(self).__name__} backend does not give atomic energies")
        if stress:
            energy, force_values, sigma = self.predict_with_stress(state, batch)
            return Outputs(energy, force_values if forces else None, sigma)
        energy, force_values = self.predict(state, batch)
        return Outputs(energy, force_values if forces else None)

    @abstractmethod
    def predict(self, state: State, batch: GraphBatch) -> tuple[np.ndarray, np.ndarray]:
        """(energy per graph, forces per atom) as numpy arrays (waits for the device)."""

    def predict_with_stress(self, state: State, batch: GraphBatch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(energy per graph, forces per atom, stress per graph (G, 3, 3) eV/Å³, ASE sign)."""
        raise NotImplementedError(f"the {self.name or type(self).__name__} backend does not predict stress")

    def device_batch(self, batch: GraphBatch) -> Any:
        """``batch`` converted once for :meth:`evaluate` (floats in the backend's precision, on its
        device), for evaluating one batch many times; the numpy batch itself by default."""
        return batch

    def state_of(self, params: Any) -> State:
        """A state holding ``params`` (parameters made outside training: tests, a module's own
        weights) with a fresh optimizer; the potential (its output scale) is left as it is."""
        raise NotImplementedError(f"the {self.name or type(self).__name__} backend cannot make a state of parameters")

    def add_energy_offsets(self, offsets: Sequence[float] | np.ndarray) -> None:
        """Add per-species energy offsets (eV, in species-table order) to the model's reference
        energies, so every later prediction includes them (fitted after force-only training)."""
        raise NotImplementedError(f"the {self.name or type(self).__name__} backend cannot shift energies")

    @abstractmethod
    def state_to_bytes(self, state: State) -> bytes:
        """Serialise a whole state (parameters and optimizer)."""

    @abstractmethod
    def state_from_bytes(self, template: State, data: bytes) -> State:
        """Restore a state serialised by :meth:`state_to_bytes` into ``template``'s structure."""

    def saved_output_scale(self, data: bytes) -> float | None:
        """The potential's output scale recorded in serialised state bytes (None: not recorded)."""
        return None

    @abstractmethod
    def with_params(self, state: State, params: Any) -> State:
        """The state with its parameters replaced (imported weights)."""

    @abstractmethod
    def n_params(self, state: State) -> int:
        """Number of trainable scalars."""

    @abstractmethod
    def environment(self) -> dict[str, str]:
        """Device description and framework versions, for the run record."""

    def predictor(self, state: State, species: Sequence[int], cutoff: float) -> BackendPredictor:
        """The model in ``state`` on plain configurations (:class:`mlffbench.backends.predictor.BackendPredictor`)."""

        return BackendPredictor(self, state, species, cutoff)

    # ------------------------------------------------ timing (mlffbench.speed.timing)
    def sync(self, value: Any) -> None:
        """Wait until the device has computed ``value`` (a result of a step or prediction)."""

    def compilations(self) -> int:
        """Compilations done so far (process-wide where the framework counts them so)."""
        return int(self.compile_count)

    def inference_fn(self, state: State, batch: GraphBatch) -> Callable[[], Any]:
        """A zero-argument callable computing energy and forces of ``batch`` (what :meth:`evaluate`
        computes) with the data already on the device; its result is what :meth:`sync` waits for."""
        return lambda: self.predict(state, batch)

    def peak_device_memory(self) -> int | None:
        """Peak accelerator memory in bytes (None on a CPU or where unknown)."""
        return None

    def reset_peak_device_memory(self) -> None:
        """Start a new peak for :meth:`peak_device_memory` (where the framework can)."""


def get_backend_class(name: str) -> type[Backend[Any]]:
    """Import a backend lazily (jax/torch are imported only here)."""
    if name not in BACKENDS:
        raise ConfigError(f"unknown backend '{name}' (known: {', '.join(BACKENDS)})")
    module, _, cls = BACKENDS[name].partition(":")
    return getattr(importlib.import_module(module), cls)
