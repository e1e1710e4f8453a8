"""Learning-rate schedules, evaluated in numpy by the loop and passed to the backend per step.

``one-cycle`` follows optax's ``linear_onecycle_schedule`` semantics as the JAT and
NeuralIL codes use it (docs/models/training.md §3): over n steps, linear from lr_min up to lr_max
at step ⌊0.45 n⌋, down to lr_min at ⌊0.9 n⌋, then down to lr_min·lr_fin/lr_max at
step n. With ``per_epoch`` the counter restarts every epoch (n = batches per epoch),
as in the original codes; otherwise one cycle spans the whole run.
"""

from __future__ import annotations

import numpy as np

from mlffbench.errors import ConfigError

PCT_START = 0.45
PCT_FINAL = 0.9


def one_cycle(step: int, n: int, lr_min: float, lr_max: float, lr_fin: float) -> float:
    """LR at ``step`` of an n-step one-cycle schedule (optax semantics)."""
    if n <= 0:
        raise ConfigError("one-cycle schedule needs at least one step")
    knots = np.array([0, int(PCT_START * n), int(PCT_FINAL * n), n], dtype=float)
    values = np.array([lr_min, lr_max, lr_min, lr_min * lr_fin / lr_max])
    # optax applies boundaries in order; equal knots (tiny n) keep the later value.
    step = min(max(step, 0), n)
    for k in range(1, 4):
        if step <= knots[k]:
            if knots[k] == knots[k - 1]:
                return float(values[k])
            frac = (step - knots[k - 1]) / (knots[k] - knots[k - 1])
            return float(values[k - 1] + frac * (values[k] - values[k - 1]))
    return float(values[-1])


PROGRESS_STEPS = 100_000  # resolution of a whole-run cycle that follows a time budget


def learning_rate(
    kind: str,
    lr: tuple[float, float, float],
    epoch: int,
    step: int,
    steps_per_epoch: int,
    epochs: int,
    progress: float | None = None,
) -> float:
    """LR for ``step`` (0-based within the epoch) of ``epoch`` (0-based).

    ``progress`` (0..1): the spent fraction of a time budget, for runs bounded by time rather
    than epochs; the whole-run ``one-cycle`` then follows it instead of the step count.
    """
    lr_min, lr_max, lr_fin = lr
    if kind == "constant":
        return float(lr_max)
    if kind == "one-cycle-epoch":
        return one_cycle(step, steps_per_epoch, lr_min, lr_max, lr_fin)
    if kind == "one-cycle" and progress is not None:
        return one_cycle(int(min(max(progress, 0.0), 1.0) * PROGRESS_STEPS), PROGRESS_STEPS, lr_min, lr_max, lr_fin)
    if kind == "one-cycle":
        return one_cycle(epoch * steps_per_epoch + step, epochs * steps_per_epoch, lr_min, lr_max, lr_fin)
    raise ConfigError(f"unknown lr schedule '{kind}' (known: constant, one-cycle-epoch, one-cycle)")
