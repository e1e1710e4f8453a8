"""The training loop: epochs, LR schedule, evaluation, early stopping, checkpoints, resume.

It talks to a :class:`mlffbench.training.backend.Backend` and knows no framework.
Epoch e shuffles with ``np.random.default_rng([seed, e])``, so a resumed run sees the
same batches as an uninterrupted one.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlffbench.errors import RunError
from mlffbench.training import checkpoint
from mlffbench.training.callbacks import Callback, StopTraining
from mlffbench.training.config import TrainConfig
from mlffbench.training.metrics import ErrorAccumulator
from mlffbench.training.schedule import learning_rate

LAST = "last.ckpt"
BEST = "best.ckpt"


@dataclass
class LoopState:
    epoch: int = 0  # epochs completed
    best_score: float = math.inf
    best_epoch: int = -1
    bad_epochs: int = 0
    train_seconds: float = 0.0
    train_configs: int = 0
    wall_seconds: float = 0.0
    stopped: str = ""
    history: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class FitResult:
    best_state: Any
    loop: LoopState
    score_name: str


def evaluate(backend, state, batcher, indices, has_energy: bool, has_forces: bool, batch_size: int, keep_forces: bool = False,
             has_stress: bool = False):
    """Metrics of ``state`` on the configurations ``indices`` (stress errors too with ``has_stress``)."""
    acc = ErrorAccumulator(keep_forces=keep_forces)
    for batch in batcher.batches(np.asarray(indices), batch_size=batch_size):
        if has_stress:
            energy, forces, stress = backend.predict_with_stress(state, batch)
        else:
            (energy, forces), stress = backend.predict(state, batch), None
        acc.add(batch, energy, forces, has_energy, has_forces, stress=stress)
    return acc


def fit(
    backend,
    batcher,
    split,
    config: TrainConfig,
    checkpoint_dir: Path,
    has_energy: bool,
    has_forces: bool,
    callbacks: list[Callback] = (),
    resume: bool = False,
    initial_params: Any = None,
    has_stress: bool = False,
) -> FitResult:
    """Train; writes ``last.ckpt`` every epoch and ``best.ckpt`` at every improvement.

    ``has_stress``: the data has stress in a known unit; validation then reports stress
    errors when ``config.stress_weight`` > 0."""
    checkpoint_dir = Path(checkpoint_dir)
    train_idx = np.asarray(split.train)
    steps = batcher.n_batches(len(train_idx), config.batch_size, drop_remainder=True)
    if steps == 0:
        raise RunError(f"training split has {len(train_idx)} configurations, fewer than one batch of {config.batch_size}")
    example = next(iter(batcher.batches(train_idx[: config.batch_size], batch_size=config.batch_size)))
    state = backend.init(config.seed, example)
    if initial_params is not None:
        state = backend.with_params(state, initial_params)
    val_stress = has_stress and config.stress_weight > 0
    use_forces = has_forces and config.force_weight > 0
    score_name = "force_mae" if use_forces else ("stress_mae" if val_stress and config.energy_weight == 0 else "energy_mae_per_atom")
    loop = LoopState()
    best_state = state
    if resume:
        data, blob = checkpoint.load(checkpoint_dir / LAST)
        loop = LoopState(**data)
        state = backend.state_from_bytes(state, blob)
        if (checkpoint_dir / BEST).is_file():
            _, best_blob = checkpoint.load(checkpoint_dir / BEST)
            best_state = backend.state_from_bytes(state, best_blob)
        else:
            best_state = state
    elif (checkpoint_dir / LAST).exists():
        raise RunError(f"'{checkpoint_dir}' already holds a checkpoint; use --resume to continue it")

    for cb in callbacks:
        cb.on_train_start({"epochs": config.epochs, "start_epoch": loop.epoch, "steps_per_epoch": steps, "max_time_s": config.max_time_s})
    wall_start = time.perf_counter() - loop.wall_seconds
    # A time budget (max_time_s) counts training seconds, as loop.train_seconds does
    # (compilation and validation excluded), and is checked before every step. epochs = 0
    # with a budget: train until it is spent; a whole-run schedule then advances with the
    # spent fraction of the budget.
    until_budget = config.epochs == 0 and config.max_time_s > 0
    while (loop.epoch < config.epochs or until_budget) and not loop.stopped:
        epoch = loop.epoch
        rng = np.random.default_rng([config.seed, epoch])
        losses = []
        compiled_before = backend.compile_seconds
        t0 = time.perf_counter()
        lr = 0.0
        eval_seconds = 0.0
        for step, batch in enumerate(batcher.batches(train_idx, rng=rng, batch_size=config.batch_size, drop_remainder=True)):
            spent = None
            if config.max_time_s:
                trained = loop.train_seconds + time.perf_counter() - t0 - eval_seconds - (backend.compile_seconds - compiled_before)
                spent = trained / config.max_time_s
                if spent >= 1.0 and losses:
                    break
            lr = learning_rate(config.lr_schedule, config.lr, epoch, step, steps, config.epochs, progress=spent if until_budget else None)
            state, loss = backend.train_step(state, batch, lr)
            losses.append(loss)
            for cb in callbacks:
                cb.on_step(epoch, step, steps)
            if step + 1 < steps and any(cb.evaluate_at(epoch, step + 1, steps) for cb in callbacks):
                t_eval, compiled_eval = time.perf_counter(), backend.compile_seconds
                mid = evaluate(backend, state, batcher, split.val, has_energy, has_forces, config.eval_batch_size,
                               has_stress=val_stress).result()
                # evaluation time (its compilation included) is not training time
                eval_seconds += time.perf_counter() - t_eval
                compiled_before += backend.compile_seconds - compiled_eval
                loop.stopped = _notify(callbacks, "on_evaluation", epoch, step + 1, steps, mid)
                if loop.stopped:
                    break
        loss_values = [backend.loss_value(v) for v in losses]  # waits for the device
        epoch_seconds = time.perf_counter() - t0 - eval_seconds - (backend.compile_seconds - compiled_before)
        n_configs = len(losses) * config.batch_size
        loop.train_seconds += epoch_seconds
        loop.train_configs += n_configs
        val = evaluate(backend, state, batcher, split.val, has_energy, has_forces, config.eval_batch_size, has_stress=val_stress).result()
        loop.wall_seconds = time.perf_counter() - wall_start
        train_loss = float(np.mean(loss_values))
        record = {
            "epoch": epoch + 1,
            "train_loss": train_loss,
            "lr_last": lr,
            "val": val,
            "epoch_seconds": epoch_seconds,
            "train_configs_per_s": n_configs / epoch_seconds if epoch_seconds > 0 else 0.0,
            "wall_s": loop.wall_seconds,
        }
        loop.history.append(record)
        loop.epoch = epoch + 1
        score = val.get(score_name, math.inf)
        # loop.stopped may already hold a callback's reason for stopping within the epoch
        if not math.isfinite(train_loss):
            loop.stopped = loop.stopped or f"diverged: non-finite training loss at epoch {epoch + 1}"
        elif score < loop.best_score:
            loop.best_score, loop.best_epoch, loop.bad_epochs = score, epoch + 1, 0
            best_state = state
            checkpoint.save(checkpoint_dir / BEST, loop.to_dict(), backend.state_to_bytes(state))
        else:
            loop.bad_epochs += 1
            if config.patience and loop.bad_epochs >= config.patience:
                loop.stopped = loop.stopped or f"early stop: no better validation {score_name} for {config.patience} epochs"
        if not loop.stopped and config.max_time_s and loop.train_seconds >= config.max_time_s and (loop.epoch < config.epochs or until_budget):
            loop.stopped = f"time budget of {config.max_time_s:g} s reached"
        checkpoint.save(checkpoint_dir / LAST, loop.to_dict(), backend.state_to_bytes(state))
        stop = _notify(callbacks, "on_epoch_end", epoch, record)
        loop.stopped = loop.stopped or stop
    for cb in callbacks:
        cb.on_train_end(loop.to_dict())
    return FitResult(best_state=best_state, loop=loop, score_name=score_name)


def _notify(callbacks, method: str, *args) -> str:
    """Call ``method`` on every callback; the first :class:`StopTraining` message, or ``""``."""
    reason = ""
    for cb in callbacks:
        try:
            getattr(cb, method)(*args)
        except StopTraining as stop:
            reason = reason or str(stop) or f"stopped by {type(cb).__name__}"
    return reason
