"""The JAX :class:`mlffbench.predictor.Predictor`: a potential and its parameters on plain
configurations, jitted once per padded batch shape, in float32 or float64.

64-bit JAX is switched on only around this predictor's own calls (``jax.enable_x64``), never
process-wide, so a float64 predictor can live beside float32 code (e.g. in a test session).
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence

import jax
import numpy as np

from mlffbench.backends.jax.trainer import JaxBackend, to_device
from mlffbench.predictor import Configuration, Prediction, Predictor, split_batch


_FUNCTIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _compiled(potential):
    """The jitted (energy, forces) and (energy, forces, stress) of ``potential``, shared by all
    predictors of that potential object (models with other parameters compile nothing new).
    The output scale and the reference energies are constants of the compiled functions,
    hence part of the key."""
    table = _FUNCTIONS.setdefault(potential, {})
    key = (float(potential.output_scale), np.asarray(potential.reference_energies).tobytes())
    if key not in table:
        table[key] = (
            jax.jit(potential.energy_and_forces),
            jax.jit(lambda p, b: (*potential.energy_and_forces(p, b), potential.stress(p, b))),
        )
    return table[key]


class JaxPredictor(Predictor):
    def __init__(self, potential, params, species: Sequence[int], cutoff: float, dtype: str = "float32") -> None:
        self.potential = potential
        self.species = tuple(int(z) for z in species)
        self.cutoff = float(cutoff)
        self.dtype = dtype
        self._x64 = dtype == "float64"
        self._np_dtype = np.float64 if self._x64 else np.float32
        with jax.enable_x64(self._x64):
            self.params = jax.tree_util.tree_map(lambda x: jax.numpy.asarray(x, self._np_dtype), params)
        self._forces, self._stress = _compiled(potential)

    @classmethod
    def from_backend(cls, backend: JaxBackend, state, species, cutoff) -> JaxPredictor:
        dtype = "float64" if backend.dtype == np.float64 else "float32"
        return cls(backend.potential, state.params, species, cutoff, dtype)

    @staticmethod
    def new_backend(potential, train_config, force_rms: float = 1.0) -> JaxBackend:
        before = bool(jax.config.jax_enable_x64)
        try:
            return JaxBackend(potential, train_config, force_rms=force_rms)
        finally:
            jax.config.update("jax_enable_x64", before)

    @staticmethod
    def precision_scope(dtype: str):
        return jax.enable_x64(dtype == "float64")

    def predict(self, configs: Sequence[Configuration], stress: bool = False, shape=None) -> list[Prediction]:
        batch = self.graph_batch(configs, shape)
        with jax.enable_x64(self._x64):
            dev = to_device(batch, self._np_dtype)
            if stress:
                energy, forces, sigma = jax.block_until_ready(self._stress(self.params, dev))
                sigma = np.asarray(sigma, np.float64)
            else:
                energy, forces = jax.block_until_ready(self._forces(self.params, dev))
                sigma = None
        return split_batch(batch, np.asarray(energy, np.float64), np.asarray(forces, np.float64), sigma)
