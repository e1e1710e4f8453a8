"""A fitted run: the closed-form counterpart of :func:`mlffbench.training.loop.fit`.

A model whose spec declares ``fit="least-squares"`` (:class:`mlffbench.plugin.registry.ModelSpec`)
is affine in its parameters; its run solves the weighted linear least-squares problem of
the training loss (squared errors, the loss weights and per-atom normalisations of
:class:`mlffbench.training.config.TrainConfig`) on the whole training part in one step,
blockwise over batches of ``batch_size`` configurations (the backend's normal equations), and
returns the same :class:`mlffbench.training.loop.FitResult` as training: one "epoch" with
its validation errors, ``last.ckpt`` and ``best.ckpt`` (the same state), ``train_s`` = the
fit's time (compilation excluded). Epochs, time budgets, the LR schedule, the optimizer and
the loss shape do not apply and are ignored; ``--resume`` of a run whose fit is done keeps
the fitted state and fits nothing.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from mlffbench.errors import ConfigError, RunError
from mlffbench.training import checkpoint
from mlffbench.training.callbacks import Callback, StopTraining
from mlffbench.training.config import TrainConfig
from mlffbench.training.loop import BEST, LAST, FitResult, LoopState, _Fit

if TYPE_CHECKING:
    from mlffbench.backends.base import Backend
    from mlffbench.backends.jax.trainer import JaxBackend
    from mlffbench.data.splits import Split
    from mlffbench.graph.batching import GraphBatcher

DEFAULT_RIDGE = 1e-8
IGNORED = ("epochs", "max_time_s", "lr", "lr_schedule", "optimizer", "weight_decay", "patience", "loss")


def ignored_note(config: TrainConfig) -> str:
    """The log line of a fitted run: what it does and which training settings it ignores."""
    return (
        "fitted in closed form (weighted linear least squares, one step): "
        f"{', '.join(IGNORED)} do not apply and are ignored (epochs={config.epochs} recorded as 1)"
    )


def fit_settings(options: Mapping[str, Any] | None) -> tuple[float, int, str]:
    """(ridge λ ≥ 0, tangents per JVP chunk, Jacobian mode) from a spec's ``fit_options(config)``."""
    options = dict(options or {})
    ridge = options.pop("ridge", DEFAULT_RIDGE)
    chunk = options.pop("chunk", 8)
    mode = options.pop("jacobian", "auto")
    if options:
        raise ConfigError(f"unknown fit option(s): {', '.join(sorted(options))} (known: ridge, chunk, jacobian)")
    if isinstance(ridge, bool) or not isinstance(ridge, (int, float)) or not math.isfinite(ridge) or ridge < 0:
        raise ConfigError(f"fit ridge must be a finite number >= 0, got {ridge!r}")
    if mode not in ("auto", "params", "positions"):
        raise ConfigError(f"fit jacobian must be auto, params or positions, got {mode!r}")
    return float(ridge), int(chunk), str(mode)


def fit_closed_form(
    backend: Backend[Any],
    batcher: GraphBatcher,
    split: Split,
    config: TrainConfig,
    checkpoint_dir: Path,
    has_energy: bool,
    has_forces: bool,
    callbacks: Sequence[Callback] = (),
    resume: bool = False,
    initial_params: Any = None,
    has_stress: bool = False,
    options: Mapping[str, Any] | None = None,
) -> FitResult:
    """Fit; writes ``best.ckpt`` and ``last.ckpt`` (one record, epoch 1) as training does."""
    if backend.name != "jax":
        raise ConfigError(f"a least-squares fit needs the jax backend, not '{backend.name}'")
    from mlffbench.backends.jax.fit import least_squares

    ridge, chunk, mode = fit_settings(options)
    checkpoint_dir = Path(checkpoint_dir)
    run = _Fit.start(backend, batcher, split, config, checkpoint_dir, has_energy, has_forces, callbacks, has_stress)
    use_energy, use_forces = has_energy and config.energy_weight > 0, has_forces and config.force_weight > 0
    if not (use_energy or use_forces or (has_stress and config.stress_weight > 0)):
        raise ConfigError("a least-squares fit needs energies, forces or stress with a weight > 0 to fit to")
    train_idx = run.train_idx
    example = next(iter(batcher.batches(train_idx[: config.batch_size], batch_size=config.batch_size)))
    state = backend.init(config.seed, example)
    if initial_params is not None:
        state = backend.with_params(state, initial_params)
    if (checkpoint_dir / LAST).exists():
        if not resume:
            raise RunError(f"'{checkpoint_dir}' already holds a checkpoint; use --resume to continue it")
        data, blob = checkpoint.load(checkpoint_dir / LAST)  # the fit is done: nothing to continue
        done = data.pop("fit", None)
        loop = LoopState(**data)
        state = backend.state_from_bytes(state, blob)
        return FitResult(best_state=state, loop=loop, score_name=run.score_name, stop=None, fit=done)
    n_blocks = batcher.n_batches(len(train_idx), config.batch_size)
    for cb in callbacks:
        cb.on_train_start({"epochs": 1, "start_epoch": 0, "steps_per_epoch": n_blocks, "max_time_s": 0.0})
    wall_start = time.perf_counter()

    def progress(step: int) -> None:
        for cb in callbacks:
            cb.on_step(0, step, n_blocks)

    # blocks of similar sizes (the order of the rows does not change the normal equations): fewer
    # padded shapes to compile, less padding
    order = np.asarray(train_idx)[np.argsort(batcher.ds.n_atoms[np.asarray(train_idx)], kind="stable")]
    blocks = _block_batcher(batcher, order, config.batch_size).batches(order, batch_size=config.batch_size)
    jax_backend = cast("JaxBackend", backend)  # checked above: the jax backend
    state, info = least_squares(
        jax_backend, state, blocks, ridge, chunk=chunk, progress=progress, mode=mode, use=(use_energy, use_forces)
    )
    val = run.validate(state)
    loop = LoopState(
        epoch=1,
        best_epoch=1,
        best_score=float(val.get(run.score_name, math.inf)),
        train_seconds=float(info["fit_s"]),
        train_configs=int(info["configs"]),
        wall_seconds=time.perf_counter() - wall_start,
    )
    record = {
        "epoch": 1,
        "train_loss": float(info["train_objective_per_config"]),
        "lr_last": 0.0,
        "val": val,
        "epoch_seconds": float(info["fit_s"]),
        "train_configs_per_s": info["configs"] / info["fit_s"] if info["fit_s"] > 0 else 0.0,
        "wall_s": loop.wall_seconds,
        "fit": info,
    }
    loop.history.append(record)
    blob = backend.state_to_bytes(state)
    checkpoint.save(checkpoint_dir / BEST, {**loop.to_dict(), "fit": info}, blob)
    checkpoint.save(checkpoint_dir / LAST, {**loop.to_dict(), "fit": info}, blob)
    for cb in callbacks:
        try:
            cb.on_epoch_end(0, record)
        except StopTraining:
            pass  # the fit is one step: there is nothing left to stop (a pruner's verdict is moot)
    for cb in callbacks:
        cb.on_train_end(loop.to_dict())
    return FitResult(best_state=state, loop=loop, score_name=run.score_name, stop=None, fit=info)


def _block_batcher(batcher: GraphBatcher, order: np.ndarray, size: int) -> GraphBatcher:
    """The batcher of the fit's blocks: every block padded to the largest block's shape (one
    compilation of the Jacobian instead of one per bucket, ~10-20 s each on a CPU) where the
    blocks are of similar size (the largest at most twice the median in atoms), else ``batcher``
    (its buckets: padding atoms cost position tangents)."""
    from mlffbench.graph.batching import GraphBatcher

    starts = np.arange(0, order.size, size)
    atoms = np.add.reduceat(np.asarray(batcher.ds.n_atoms)[order], starts)
    edges = np.add.reduceat(np.asarray(batcher.neighbors.n_edges)[order], starts)
    if atoms.size < 2 or atoms.max() > 2 * np.median(atoms):
        return batcher
    n_nodes, n_edges = batcher.padded_shape(int(atoms.max()), int(edges.max()))
    return GraphBatcher(
        batcher.ds, batcher.neighbors, batcher.species_table, size, n_nodes=int(n_nodes), n_edges=int(n_edges)
    )
