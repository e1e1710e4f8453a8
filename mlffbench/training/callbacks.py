"""Callbacks the loop calls: progress display, tracking. The loop knows no backend."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID


class StopKind(enum.Enum):
    """Why training ended before its epochs: the value is the recorded message's prefix
    (``stopped`` in ``metrics.json``, e.g. ``"diverged: non-finite training loss at epoch 3"``)."""

    DIVERGED = "diverged"  # a non-finite training loss or validation error
    PRUNED = "pruned"  # the tuning study's pruner
    EARLY_STOP = "early stop"  # ``patience`` epochs without a better validation error
    TIME_BUDGET = "time budget"  # ``max_time_s`` spent
    CALLBACK = "callback"  # any other callback's StopTraining (its message has no known prefix)


@dataclass(frozen=True)
class StopReason:
    """A structured stop reason: its ``kind`` and the one-line ``message`` the run records."""

    kind: StopKind
    message: str

    def __str__(self) -> str:
        return self.message

    @classmethod
    def parse(cls, text: str | None) -> StopReason | None:
        """The reason a recorded message stands for (None for ``""``: not stopped). A message
        beginning with a kind's prefix is of that kind, any other a callback's."""
        if not text:
            return None
        for kind in (StopKind.DIVERGED, StopKind.PRUNED, StopKind.EARLY_STOP, StopKind.TIME_BUDGET):
            if text.startswith(kind.value):
                return cls(kind, text)
        return cls(StopKind.CALLBACK, text)


def stop_kind(text: str | None) -> StopKind | None:
    """The :class:`StopKind` of a recorded stop message (``metrics["stopped"]``, a trial's
    reason), None when it is empty."""
    reason = StopReason.parse(text)
    return reason.kind if reason is not None else None


class StopTraining(Exception):
    """Raised by a callback to end training cleanly after the current evaluation.

    The loop finishes the epoch's bookkeeping, records the message as ``stopped`` and
    returns normally (used for pruning and divergence detection by ``mlffbench tune``).
    ``kind``: the reason's :class:`StopKind`; None: the kind the message's prefix names
    (:meth:`StopReason.parse`).
    """

    def __init__(self, message: str = "", kind: StopKind | None = None) -> None:
        super().__init__(message)
        self.kind = kind

    def reason(self, default: str) -> StopReason:
        """The structured reason; ``default`` is the message when the exception has none."""
        message, kind = str(self) or default, getattr(self, "kind", None)
        if kind is not None:
            return StopReason(kind, message)
        return StopReason.parse(message) or StopReason(StopKind.CALLBACK, message)


class Callback:
    def on_train_start(self, info: dict[str, Any]) -> None:
        """Once, before the first epoch (``info``: epochs, start_epoch, steps_per_epoch)."""

    def on_step(self, epoch: int, step: int, steps: int) -> None:
        """After each optimizer step (cheap: no device sync)."""

    def on_epoch_end(self, epoch: int, record: dict[str, Any]) -> None:
        """After each epoch's evaluation; ``record`` is the epoch's history entry."""

    def evaluate_at(self, epoch: int, step: int, steps: int) -> bool:
        """Whether to evaluate the validation part after ``step`` of ``steps`` optimizer steps
        of ``epoch`` (only asked within an epoch; the epoch end is always evaluated)."""
        return False

    def on_evaluation(self, epoch: int, step: int, steps: int, val: dict[str, Any]) -> None:
        """After a within-epoch validation asked for by ``evaluate_at`` (any callback's)."""

    def on_train_end(self, summary: dict[str, Any]) -> None:
        """Once, after training stopped."""


class RichProgress(Callback):
    """A rich progress bar: epochs, with the last validation errors."""

    def __init__(self, console=None, description: str = "training") -> None:
        from rich.console import Console

        self.console = console or Console(stderr=True)
        self.description = description
        self.progress: Progress | None = None
        self.task: TaskID | None = None

    def on_train_start(self, info: dict[str, Any]) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[status]}"),
            console=self.console,
            transient=False,
        )
        self.progress.start()
        self.by_time = info["epochs"] == 0 and info.get("max_time_s", 0) > 0  # a run bounded by time
        if self.by_time:
            total, done, description = round(info["max_time_s"]), 0, f"{self.description} (training s)"
        else:
            total, done, description = info["epochs"], info["start_epoch"], self.description
        self.total, self.trained = total, 0.0
        self.task = self.progress.add_task(description, total=total, completed=done, status="")

    def on_epoch_end(self, epoch: int, record: dict[str, Any]) -> None:
        val = record.get("val", {})
        parts = [f"loss {record['train_loss']:.4g}"]
        if "force_mae" in val:
            parts.append(f"val F MAE {1000 * val['force_mae']:.1f} meV/Å")
        if "energy_mae_per_atom" in val:
            parts.append(f"val E MAE {1000 * val['energy_mae_per_atom']:.2f} meV/atom")
        parts.append(f"{record['train_configs_per_s']:.1f} conf/s")
        done = min(round(self.trained + record["epoch_seconds"]), self.total) if self.by_time else epoch + 1
        self.trained += record["epoch_seconds"]
        assert self.progress is not None and self.task is not None  # made by on_train_start
        self.progress.update(self.task, completed=done, status=" · ".join(parts))

    def on_train_end(self, summary: dict[str, Any]) -> None:
        if self.progress is not None:
            self.progress.stop()
