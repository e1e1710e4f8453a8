"""The JAX backend: jitted train step per bucket shape, evaluation, state serialisation."""

from __future__ import annotations

import contextlib
import functools
import platform
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import serialization

from mlffbench.backends.base import Backend, Outputs
from mlffbench.backends.jax.losses import pointwise
from mlffbench.backends.jax.potential import Batch, Potential
from mlffbench.backends.jax.precision import float64_scope
from mlffbench.errors import RunError
from mlffbench.graph.batching import split_batch
from mlffbench.training.config import TrainConfig

_COMPILATIONS = [0]
_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"  # one per XLA compilation


def _on_event(event: str, duration_secs: float, **kwargs: str | int) -> None:
    if event == _COMPILE_EVENT:
        _COMPILATIONS[0] += 1


jax.monitoring.register_event_duration_secs_listener(_on_event)

_CACHE_LOADS = [0]
_CACHE_HIT_EVENT = "/jax/compilation_cache/cache_hits"  # a program loaded from the persistent cache


def _on_cache_event(event: str, **kwargs: str | int) -> None:
    if event == _CACHE_HIT_EVENT:
        _CACHE_LOADS[0] += 1


jax.monitoring.register_event_listener(_on_cache_event)


def compilation_count() -> int:
    """XLA backend compilations in this process since this module was imported."""
    return _COMPILATIONS[0]


# Serialised states: format 2 holds the state and the potential's output scale (set by the
# output calibration at initialisation), so a restored model needs no training data. Format 1
# (the bare flax state dict, no scale) still loads: the potential keeps the scale it has.
STATE_FORMAT = "mlffbench-jax-state-2"


def _scoped(method):
    """Run a backend method (and, for a returned callable, its calls) in the backend's precision."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with float64_scope(self.config.dtype):
            return method(self, *args, **kwargs)

    return wrapper


class TrainState(NamedTuple):
    params: Any
    opt_state: Any
    step: jax.Array


def to_device(batch, dtype) -> Batch:
    """A numpy GraphBatch as a device Batch with floats in ``dtype``."""
    values = {}
    for name in Batch._fields:
        arr = np.asarray(getattr(batch, name))
        if arr.dtype.kind == "f":
            arr = arr.astype(dtype)
        values[name] = jnp.asarray(arr)
    return Batch(**values)


def stress_targets(batch, dtype):
    """(reference stress (G, 3, 3), mask (G,)) of a numpy GraphBatch on the device, for the stress loss."""
    return jnp.asarray(np.asarray(batch.stress).astype(dtype)), jnp.asarray(np.asarray(batch.stress_mask))


def make_optimizer(config: TrainConfig) -> optax.GradientTransformation:
    """Scaling, optional decoupled weight decay, then the per-step LR (passed as a hyperparameter)."""
    if config.optimizer == "yogi":
        scale = optax.scale_by_yogi()  # optax defaults: b1 0.9, b2 0.999, eps 1e-3
    else:
        scale = optax.scale_by_adam()
    parts = [scale]
    if config.weight_decay > 0 or config.optimizer == "adamw":
        parts.append(optax.add_decayed_weights(config.weight_decay or 1e-4))
    return optax.chain(*parts)


class JaxBackend(Backend[TrainState]):
    name = "jax"
    potential: Potential

    def __init__(self, potential: Potential, train_config: TrainConfig, force_rms: float = 1.0) -> None:
        # 64-bit JAX is never switched on for the process: every method working on arrays runs
        # inside float64_scope (see _scoped), as does building a float64 potential (precision())
        super().__init__(potential, train_config, force_rms)
        self.dtype = np.float64 if train_config.dtype == "float64" else np.float32
        self.optimizer = make_optimizer(train_config)
        self._train: dict[Any, Any] = {}
        self._predict: dict[Any, Any] = {}

    @classmethod
    def precision(cls, dtype: str) -> contextlib.AbstractContextManager:
        """64-bit JAX for a float64 ``dtype`` (restored afterwards)."""
        return float64_scope(dtype)

    # ------------------------------------------------------------------ state
    @_scoped
    def init(self, seed: int, example) -> TrainState:
        batch = to_device(example, self.dtype)
        from mlffbench.backends.jax.potential import edge_vectors, make_graph

        graph = make_graph(batch, edge_vectors(batch, batch.positions, batch.cell))
        # jitted: an eager init of an e3nn-jax network dispatches op by op (MACE-JAX: 37 s eager, 4 s jitted)
        params = jax.jit(self.potential.module.init)(jax.random.PRNGKey(seed), graph)["params"]
        params = jax.tree_util.tree_map(lambda x: jnp.asarray(x, self.dtype), params)
        self.potential.output_scale = 1.0
        if self.config.calibrate_output and self.force_rms > 0:
            _, forces = jax.jit(self.potential.energy_and_forces)(params, batch)
            spread = float(jnp.sqrt(jnp.sum(forces**2) / (3.0 * jnp.maximum(batch.atom_mask.sum(), 1))))
            if spread > 0 and np.isfinite(spread):
                self.potential.output_scale = self.force_rms / spread
        return TrainState(params, self.optimizer.init(params), jnp.zeros((), jnp.int32))

    @_scoped
    def with_params(self, state: TrainState, params: Any) -> TrainState:
        """Imported weights are used as published: no output calibration."""
        self.potential.output_scale = 1.0
        params = jax.tree_util.tree_map(lambda x: jnp.asarray(x, self.dtype), params)
        return TrainState(params, self.optimizer.init(params), state.step)

    def n_params(self, state: TrainState) -> int:
        return int(sum(np.size(x) for x in jax.tree_util.tree_leaves(state.params)))

    def state_to_bytes(self, state: TrainState) -> bytes:
        return serialization.msgpack_serialize(
            {
                "format": STATE_FORMAT,
                "state": serialization.to_state_dict(state),
                "output_scale": float(self.potential.output_scale),
            }
        )

    @staticmethod
    def _unpack(data: bytes) -> tuple[dict, float | None]:
        """(flax state dict, output scale or None for a format-1 state)."""
        try:
            raw = serialization.msgpack_restore(data)
        except Exception as exc:  # noqa: BLE001 - any unreadable blob is one user-facing error
            raise RunError(f"checkpoint state is not a JAX backend state ({type(exc).__name__})") from None
        if not isinstance(raw, dict):
            raise RunError("checkpoint state is not a JAX backend state (written by another backend?)")
        if raw.get("format") == STATE_FORMAT:
            return raw["state"], float(raw["output_scale"])
        return raw, None

    def saved_output_scale(self, data: bytes) -> float | None:
        return self._unpack(data)[1]

    @_scoped
    def state_from_bytes(self, template: TrainState, data: bytes) -> TrainState:
        state, scale = self._unpack(data)
        if scale is not None:
            self.potential.output_scale = scale
        restored = serialization.from_state_dict(template, state)

        def in_dtype(
            x,
        ):  # a state saved in another precision (a float32 run checked in float64), as the torch backend does
            dtype = getattr(x, "dtype", None)
            return (
                x.astype(self.dtype)
                if dtype is not None and np.issubdtype(dtype, np.floating) and dtype != self.dtype
                else x
            )

        return jax.tree_util.tree_map(in_dtype, restored)

    # ------------------------------------------------------------------ steps
    def _loss_sum(self, params, batch: Batch, targets=None):
        """The configurations' losses summed over the real graphs (the batch loss × their count).

        ``targets``: the batch's (reference stress, stress mask) (:func:`stress_targets`) when
        ``stress_weight`` > 0; the stress term of a configuration is ``stress_weight`` · the mean
        over its 9 components of ℓ_E(Δσ · V / N) (eV/atom, the virial per atom), 0 where the mask is False.
        """
        cfg = self.config
        use_stress = cfg.stress_weight > 0 and targets is not None
        if use_stress:
            energies, forces, stress = self.potential.energy_forces_stress(params, batch)
        else:
            energies, forces = self.potential.energy_and_forces(params, batch)
        graphs = batch.graph_mask.astype(energies.dtype)
        total: float | jax.Array = 0.0
        if cfg.force_weight > 0:
            per_comp = pointwise(cfg.loss, batch.forces - forces, cfg.log_cosh_p)
            per_atom = per_comp.sum(axis=1) * batch.atom_mask
            per_graph = jax.ops.segment_sum(per_atom, batch.graph_index, num_segments=batch.cell.shape[0])
            per_graph = per_graph / (3.0 * batch.n_atoms)
            total = total + cfg.force_weight * (per_graph * graphs).sum()
        if cfg.energy_weight > 0:
            de = (batch.energy - energies) / batch.n_atoms
            total = total + cfg.energy_weight * (pointwise(cfg.loss, de, cfg.energy_log_cosh_p) * graphs).sum()
        if use_stress:
            ref, mask = targets
            volume = jnp.abs(jnp.linalg.det(batch.cell))
            dv = (ref - stress) * (volume / batch.n_atoms)[:, None, None]
            per_graph = pointwise(cfg.loss, dv, cfg.energy_log_cosh_p).reshape(dv.shape[0], 9).mean(axis=1)
            total = total + cfg.stress_weight * (per_graph * (mask & batch.graph_mask).astype(per_graph.dtype)).sum()
        return total

    def _loss(self, params, batch: Batch, targets=None):
        return self._loss_sum(params, batch, targets) / jnp.maximum(batch.graph_mask.sum(), 1).astype(self.dtype)

    def _apply(self, state: TrainState, grads, lr) -> TrainState:
        updates, opt_state = self.optimizer.update(grads, state.opt_state, state.params)
        updates = jax.tree_util.tree_map(lambda u: -lr * u, updates)
        return TrainState(optax.apply_updates(state.params, updates), opt_state, state.step + 1)

    def _train_step(self, state: TrainState, batch: Batch, lr, targets=None):
        loss, grads = jax.value_and_grad(self._loss)(state.params, batch, targets)
        return self._apply(state, grads, lr), loss

    def _accumulate(self, params, batch: Batch, scale, loss, grads, targets=None):
        """(loss, grads) plus one part's share: its loss sum × ``scale`` (1 / the batch's graphs)."""
        part_loss, part_grads = jax.value_and_grad(lambda p: self._loss_sum(p, batch, targets) * scale)(params)
        return loss + part_loss, jax.tree_util.tree_map(jnp.add, grads, part_grads)

    def _compiled(self, table: dict, fn, key, *args):
        """Compile ``fn`` ahead of time once per bucket shape, timing the compilation.

        The output scale is a constant of the compiled function, hence part of the key (a
        restored state may bring another one)."""
        key = (key, float(self.potential.output_scale))
        if key not in table:
            t0, loads = time.perf_counter(), _CACHE_LOADS[0]
            table[key] = jax.jit(fn).lower(*args).compile()
            seconds = time.perf_counter() - t0
            self.compile_seconds += seconds
            self.compile_count += 1
            if _CACHE_LOADS[0] > loads:  # loaded from JAX's persistent cache (traced, not compiled)
                self.cache_loads += 1
                self.cache_load_seconds += seconds
        return table[key]

    @staticmethod
    def _shape_key(batch: Batch):
        return (batch.positions.shape[0], batch.senders.shape[0], batch.cell.shape[0])

    @_scoped
    def train_step(self, state: TrainState, batch, lr: float):
        lr_j = jnp.asarray(lr, self.dtype)
        size = self.config.micro_batch_size
        n_real = int(np.asarray(batch.graph_mask).sum())
        stress = self.config.stress_weight > 0
        if not size or n_real <= size:
            dev = to_device(batch, self.dtype)
            targets = stress_targets(batch, self.dtype) if stress else None
            step = self._compiled(self._train, self._train_step, self._shape_key(dev), state, dev, lr_j, targets)
            return step(state, dev, lr_j, targets)
        # gradient passes over parts of the batch, summed, then the batch's one update
        scale = jnp.asarray(1.0 / n_real, self.dtype)
        loss = jnp.zeros((), self.dtype)
        grads = jax.tree_util.tree_map(jnp.zeros_like, state.params)
        for part in split_batch(batch, size):
            dev = to_device(part, self.dtype)
            args = (state.params, dev, scale, loss, grads, stress_targets(part, self.dtype) if stress else None)
            loss, grads = self._compiled(self._train, self._accumulate, ("part", *self._shape_key(dev)), *args)(*args)
        apply = self._compiled(self._train, self._apply, ("apply",), state, grads, lr_j)
        return apply(state, grads, lr_j), loss

    def loss_value(self, loss) -> float:
        return float(jax.block_until_ready(loss))

    @_scoped
    def device_batch(self, batch) -> Batch:
        return to_device(batch, self.dtype)

    @_scoped
    def state_of(self, params: Any) -> TrainState:
        params = jax.tree_util.tree_map(lambda x: jnp.asarray(x, self.dtype), params)
        return TrainState(params, self.optimizer.init(params), jnp.zeros((), jnp.int32))

    def _evaluation(self, params, dev: Batch, forces: bool = True, stress: bool = False, atomic: bool = False):
        """The compiled :meth:`Potential.evaluate` for these outputs and ``dev``'s bucket shape."""
        kind = (forces, stress, atomic)
        fn = functools.partial(self.potential.evaluate, forces=forces, stress=stress, atomic=atomic)
        return self._compiled(self._predict, fn, (kind, *self._shape_key(dev)), params, dev)

    @_scoped
    def evaluate(self, state: TrainState, batch, *, forces=True, stress=False, atomic=False):
        dev = batch if isinstance(batch, Batch) else to_device(batch, self.dtype)
        out = jax.block_until_ready(self._evaluation(state.params, dev, forces, stress, atomic)(state.params, dev))
        return Outputs(*(None if v is None else np.asarray(v, np.float64) for v in out))

    def predict(self, state: TrainState, batch):
        out = self.evaluate(state, batch)
        return out.energy, out.forces

    def predict_with_stress(self, state: TrainState, batch):
        out = self.evaluate(state, batch, stress=True)
        return out.energy, out.forces, out.stress

    @_scoped
    def add_energy_offsets(self, offsets) -> None:
        self.potential.add_energy_offsets(offsets)
        self._predict.clear()  # compiled with the old reference energies
        self._train.clear()

    # ----------------------------------------------------------------- timing
    def sync(self, value) -> None:
        jax.block_until_ready(value)

    def compilations(self) -> int:
        """XLA compilations in this process so far (all functions, not only this backend's)."""
        return compilation_count()

    @_scoped
    def inference_fn(self, state: TrainState, batch):
        dev = to_device(batch, self.dtype)
        params = state.params

        def run():  # compiles on the first call (the protocol's warm-up), not here
            with float64_scope(self.config.dtype):
                return self._evaluation(params, dev)(params, dev)

        return run

    def peak_device_memory(self) -> int | None:
        """``peak_bytes_in_use`` of the first device (GPU; None on the CPU). Process-wide, never reset."""
        stats = jax.devices()[0].memory_stats() or {}
        peak = stats.get("peak_bytes_in_use")
        return int(peak) if peak is not None else None

    # ------------------------------------------------------------ environment
    def environment(self) -> dict[str, str]:
        import flax
        import jaxlib

        device = jax.devices()[0]
        kind = getattr(device, "device_kind", device.platform)
        cpu = platform.processor() or platform.machine()
        return {
            "backend": "jax",
            "device": f"{device.platform}: {kind}" + (f" ({cpu})" if device.platform == "cpu" else ""),
            "jax": jax.__version__,
            "jaxlib": jaxlib.__version__,
            "flax": flax.__version__,
            "optax": optax.__version__,
        }
