"""The training loop: epochs, LR schedule, evaluation, early stopping, checkpoints, resume.

It talks to a :class:`mlffbench.backends.base.Backend` and knows no framework.
Epoch e shuffles with ``np.random.default_rng([seed, e])``, so a resumed run sees the
same batches as an uninterrupted one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlffbench.errors import RunError
from mlffbench.training import checkpoint
from mlffbench.training.callbacks import Callback, StopKind, StopReason, StopTraining
from mlffbench.training.config import TrainConfig
from mlffbench.training.metrics import ErrorAccumulator
from mlffbench.training.schedule import learning_rate

if TYPE_CHECKING:
    from mlffbench.backends.base import Backend
    from mlffbench.data.splits import Split
    from mlffbench.graph.batching import GraphBatcher

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

    @property
    def stop_reason(self) -> StopReason | None:
        """``stopped`` as a :class:`StopReason` (classified by its prefix; None: not stopped)."""
        return StopReason.parse(self.stopped)


@dataclass
class FitResult:
    best_state: Any
    loop: LoopState
    score_name: str
    # why training ended before its epochs (None: it ran them all); its message is loop.stopped
    stop: StopReason | None = None
    # a fitted run's record (mlffbench.training.fitted): sizes, times, memory, solver; None: trained
    fit: dict[str, Any] | None = None


def evaluate(
    backend: Backend[Any],
    state: Any,
    batcher: GraphBatcher,
    indices: Any,
    has_energy: bool,
    has_forces: bool,
    batch_size: int,
    keep_forces: bool = False,
    has_stress: bool = False,
) -> ErrorAccumulator:
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
) -> FitResult:
    """Train; writes ``last.ckpt`` every epoch and ``best.ckpt`` at every improvement.

    ``has_stress``: the data has stress in a known unit; validation then reports stress
    errors when ``config.stress_weight`` > 0."""
    run = _Fit.start(
        backend, batcher, split, config, Path(checkpoint_dir), has_energy, has_forces, callbacks, has_stress
    )
    state = _initial_state(run, initial_params)
    loop, state, best_state = _resume_or_begin(run, state, resume)
    for cb in callbacks:
        cb.on_train_start(
            {
                "epochs": config.epochs,
                "start_epoch": loop.epoch,
                "steps_per_epoch": run.steps,
                "max_time_s": config.max_time_s,
            }
        )
    wall_start = time.perf_counter() - loop.wall_seconds
    # A time budget (max_time_s) counts training seconds, as loop.train_seconds does
    # (compilation and validation excluded), and is checked before every step. epochs = 0
    # with a budget: train until it is spent; a whole-run schedule then advances with the
    # spent fraction of the budget.
    until_budget = config.epochs == 0 and config.max_time_s > 0
    while (loop.epoch < config.epochs or until_budget) and not loop.stopped:
        state, ep = _train_steps(run, loop, state, until_budget)
        record = _record_epoch(run, loop, state, ep, wall_start)
        best_state = _judge_epoch(run, loop, state, best_state, record)
        _end_epoch(run, loop, state, ep, record, until_budget)
    for cb in callbacks:
        cb.on_train_end(loop.to_dict())
    return FitResult(best_state=best_state, loop=loop, score_name=run.score_name, stop=run.stop)


@dataclass
class _Fit:
    """What every step of one :func:`fit` shares, and the reason it stopped (first wins)."""

    backend: Backend[Any]
    batcher: GraphBatcher
    split: Split
    config: TrainConfig
    checkpoint_dir: Path
    has_energy: bool
    has_forces: bool
    callbacks: Sequence[Callback]
    train_idx: np.ndarray
    steps: int  # optimizer steps per epoch
    val_stress: bool  # validation reports stress errors
    score_name: str  # the validation error that picks the best state
    stop: StopReason | None = None

    @classmethod
    def start(
        cls,
        backend: Backend[Any],
        batcher: GraphBatcher,
        split: Split,
        config: TrainConfig,
        checkpoint_dir: Path,
        has_energy: bool,
        has_forces: bool,
        callbacks: Sequence[Callback],
        has_stress: bool,
    ) -> _Fit:
        train_idx = np.asarray(split.train)
        steps = batcher.n_batches(len(train_idx), config.batch_size, drop_remainder=True)
        if steps == 0:
            raise RunError(
                f"training split has {len(train_idx)} configurations, fewer than one batch of {config.batch_size}"
            )
        val_stress = has_stress and config.stress_weight > 0
        use_forces = has_forces and config.force_weight > 0
        score_name = (
            "force_mae"
            if use_forces
            else ("stress_mae" if val_stress and config.energy_weight == 0 else "energy_mae_per_atom")
        )
        return cls(
            backend,
            batcher,
            split,
            config,
            checkpoint_dir,
            has_energy,
            has_forces,
            callbacks,
            train_idx,
            steps,
            val_stress,
            score_name,
        )

    def validate(self, state: Any) -> dict[str, float]:
        """Errors of ``state`` on the validation part."""
        return evaluate(
            self.backend,
            state,
            self.batcher,
            self.split.val,
            self.has_energy,
            self.has_forces,
            self.config.eval_batch_size,
            has_stress=self.val_stress,
        ).result()

    def stop_with(self, loop: LoopState, reason: StopReason | None) -> bool:
        """Record ``reason`` unless training already stopped for another; whether it stopped now."""
        if reason is None or loop.stopped:
            return False
        self.stop, loop.stopped = reason, reason.message
        return True


def _initial_state(run: _Fit, initial_params: Any) -> Any:
    """A fresh state from the seed (the first training batch as the example), with
    ``initial_params`` (imported weights) when given."""
    config = run.config
    example = next(iter(run.batcher.batches(run.train_idx[: config.batch_size], batch_size=config.batch_size)))
    state = run.backend.init(config.seed, example)
    if initial_params is not None:
        state = run.backend.with_params(state, initial_params)
    return state


def _resume_or_begin(run: _Fit, state: Any, resume: bool) -> tuple[LoopState, Any, Any]:
    """(loop state, state, best state): from ``last.ckpt`` / ``best.ckpt`` with ``resume``, else
    new (refusing a folder that already holds a checkpoint). A resumed run without ``last.ckpt``
    (killed before its first epoch ended) begins anew: no epoch of it is on record."""
    checkpoint_dir, backend = run.checkpoint_dir, run.backend
    if not resume or not (checkpoint_dir / LAST).exists():
        if not resume and (checkpoint_dir / LAST).exists():
            raise RunError(f"'{checkpoint_dir}' already holds a checkpoint; use --resume to continue it")
        return LoopState(), state, state
    data, blob = checkpoint.load(checkpoint_dir / LAST)
    loop = LoopState(**data)
    state = backend.state_from_bytes(state, blob)
    if (checkpoint_dir / BEST).is_file():
        _, best_blob = checkpoint.load(checkpoint_dir / BEST)
        best_state = backend.state_from_bytes(state, best_blob)
    else:
        best_state = state
    run.stop = loop.stop_reason  # a finished run's recorded reason (only its text is stored)
    return loop, state, best_state


@dataclass
class _EpochSteps:
    """One epoch's training steps so far: their losses (maybe still on the device), the last
    LR, and what is not training time (validation; compilation since ``compiled_before``)."""

    epoch: int
    t0: float
    compiled_before: float
    losses: list[Any] = field(default_factory=list)
    lr: float = 0.0
    eval_seconds: float = 0.0


def _train_steps(run: _Fit, loop: LoopState, state: Any, until_budget: bool) -> tuple[Any, _EpochSteps]:
    """The optimizer steps of epoch ``loop.epoch`` (batches shuffled by ``[seed, epoch]``), with
    the validations callbacks ask for within it; ends early when the time budget is spent or
    a callback stops training."""
    config, backend, callbacks, steps = run.config, run.backend, run.callbacks, run.steps
    epoch = loop.epoch
    rng = np.random.default_rng([config.seed, epoch])
    compiled_before = backend.compile_seconds
    ep = _EpochSteps(epoch=epoch, t0=time.perf_counter(), compiled_before=compiled_before)
    for step, batch in enumerate(
        run.batcher.batches(run.train_idx, rng=rng, batch_size=config.batch_size, drop_remainder=True)
    ):
        spent = None
        if config.max_time_s:
            trained = (
                loop.train_seconds
                + time.perf_counter()
                - ep.t0
                - ep.eval_seconds
                - (backend.compile_seconds - ep.compiled_before)
            )
            spent = trained / config.max_time_s
            if spent >= 1.0 and ep.losses:
                break
        ep.lr = learning_rate(
            config.lr_schedule, config.lr, epoch, step, steps, config.epochs, progress=spent if until_budget else None
        )
        state, loss = backend.train_step(state, batch, ep.lr)
        ep.losses.append(loss)
        for cb in callbacks:
            cb.on_step(epoch, step, steps)
        if step + 1 < steps and any(cb.evaluate_at(epoch, step + 1, steps) for cb in callbacks):
            t_eval, compiled_eval = time.perf_counter(), backend.compile_seconds
            mid = run.validate(state)
            # evaluation time (its compilation included) is not training time
            ep.eval_seconds += time.perf_counter() - t_eval
            ep.compiled_before += backend.compile_seconds - compiled_eval
            if run.stop_with(loop, _notify(callbacks, "on_evaluation", epoch, step + 1, steps, mid)):
                break
    return state, ep


def _record_epoch(run: _Fit, loop: LoopState, state: Any, ep: _EpochSteps, wall_start: float) -> dict[str, Any]:
    """Training time and loss of the epoch (waiting for the device), its validation errors, as
    the epoch's history entry; the loop state counts the epoch."""
    backend, config = run.backend, run.config
    loss_values = [backend.loss_value(v) for v in ep.losses]  # waits for the device
    epoch_seconds = time.perf_counter() - ep.t0 - ep.eval_seconds - (backend.compile_seconds - ep.compiled_before)
    n_configs = len(ep.losses) * config.batch_size
    loop.train_seconds += epoch_seconds
    loop.train_configs += n_configs
    val = run.validate(state)
    loop.wall_seconds = time.perf_counter() - wall_start
    train_loss = float(np.mean(loss_values))
    record = {
        "epoch": ep.epoch + 1,
        "train_loss": train_loss,
        "lr_last": ep.lr,
        "val": val,
        "epoch_seconds": epoch_seconds,
        "train_configs_per_s": n_configs / epoch_seconds if epoch_seconds > 0 else 0.0,
        "wall_s": loop.wall_seconds,
    }
    loop.history.append(record)
    loop.epoch = ep.epoch + 1
    return record


def _judge_epoch(run: _Fit, loop: LoopState, state: Any, best_state: Any, record: dict[str, Any]) -> Any:
    """The best state after the epoch (written to ``best.ckpt`` when it improved); stops on a
    non-finite training loss and after ``patience`` epochs without improvement."""
    config, epoch = run.config, record["epoch"]
    score = record["val"].get(run.score_name, math.inf)
    # loop.stopped may already hold a callback's reason for stopping within the epoch
    if not math.isfinite(record["train_loss"]):
        run.stop_with(loop, StopReason(StopKind.DIVERGED, f"diverged: non-finite training loss at epoch {epoch}"))
    elif score < loop.best_score:
        loop.best_score, loop.best_epoch, loop.bad_epochs = score, epoch, 0
        best_state = state
        checkpoint.save(run.checkpoint_dir / BEST, loop.to_dict(), run.backend.state_to_bytes(state))
    else:
        loop.bad_epochs += 1
        if config.patience and loop.bad_epochs >= config.patience:
            run.stop_with(
                loop,
                StopReason(
                    StopKind.EARLY_STOP,
                    f"early stop: no better validation {run.score_name} for {config.patience} epochs",
                ),
            )
    return best_state


def _end_epoch(
    run: _Fit, loop: LoopState, state: Any, ep: _EpochSteps, record: dict[str, Any], until_budget: bool
) -> None:
    """Stop when the time budget is spent (with epochs left), write ``last.ckpt``, then tell
    the callbacks (which may stop training)."""
    config = run.config
    if (
        not loop.stopped
        and config.max_time_s
        and loop.train_seconds >= config.max_time_s
        and (loop.epoch < config.epochs or until_budget)
    ):
        run.stop_with(loop, StopReason(StopKind.TIME_BUDGET, f"time budget of {config.max_time_s:g} s reached"))
    checkpoint.save(run.checkpoint_dir / LAST, loop.to_dict(), run.backend.state_to_bytes(state))
    run.stop_with(loop, _notify(run.callbacks, "on_epoch_end", ep.epoch, record))


def _notify(callbacks: Sequence[Callback], method: str, *args: Any) -> StopReason | None:
    """Call ``method`` on every callback; the first :class:`StopTraining`'s reason, or None."""
    reason = None
    for cb in callbacks:
        try:
            getattr(cb, method)(*args)
        except StopTraining as stop:
            reason = reason or stop.reason(f"stopped by {type(cb).__name__}")
    return reason
