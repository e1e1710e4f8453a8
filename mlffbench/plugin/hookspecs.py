"""Every hook mlffbench calls. Plugins implement them with ``@mlffbench.hookimpl``.

Registration hooks receive a ``register`` callable owned by the host, so the host can
reject duplicate names and tag each entry with the plugin that provided it. Hooks
return nothing; they call ``register`` once per spec.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from mlffbench.plugin.registry import DatasetCard, FormatSpec, ModelSpec
    from mlffbench.tasks.base import TaskSpec

hookspec = pluggy.HookspecMarker("mlffbench")


@hookspec
def mlffbench_models(register: Callable[[ModelSpec[Any]], None]) -> None:
    """Register model specs (:class:`mlffbench.plugin.registry.ModelSpec`), one call per model."""


@hookspec
def mlffbench_datasets(register: Callable[[DatasetCard], None]) -> None:
    """Register dataset cards (:class:`mlffbench.plugin.registry.DatasetCard`), one call per dataset."""


@hookspec
def mlffbench_formats(register: Callable[[FormatSpec], None]) -> None:
    """Register file-format adapters (:class:`mlffbench.plugin.registry.FormatSpec`)."""


@hookspec
def mlffbench_tasks(register: Callable[[TaskSpec], None]) -> None:
    """Register benchmark tasks (:class:`mlffbench.tasks.base.TaskSpec`), one call per task:
    ``mlffbench task NAME RUN_DIR`` runs one on a trained model and writes ``tasks/NAME/result.json``."""


@hookspec
def mlffbench_run_finished(run_dir: Path, metrics: dict[str, Any]) -> None:
    """Called once after a run wrote ``metrics.json`` into ``run_dir``; for reporters."""
