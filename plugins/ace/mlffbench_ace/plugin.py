"""Entry point of the ACE plugin: ``ace-linear`` (fitted in closed form) and ``ace-gnn`` (trained), JAX."""

from __future__ import annotations

from typing import Any

from mlffbench import hookimpl
from mlffbench.plugin.registry import ModelSpec
from mlffbench_ace.config import (
    GNN_MODEL_DEFAULTS,
    GNN_TRAIN_DEFAULTS,
    LINEAR_TRAIN_DEFAULTS,
    SEARCH_SPACE,
    AceConfig,
)


def _build_linear(config, stats):
    from mlffbench_ace.model import build_linear  # jax is imported only when a model is built

    return build_linear(config, stats)


def _build_gnn(config, stats):
    from mlffbench_ace.model import build_gnn

    return build_gnn(config, stats)


def _cutoff(config: AceConfig) -> float:
    return config.cutoff


def _fit_options(config: AceConfig) -> dict[str, Any]:
    return {"ridge": config.ridge}


LINEAR = ModelSpec(
    name="ace-linear",
    backend="jax",
    config_class=AceConfig,
    build=_build_linear,
    cutoff=_cutoff,
    description=(
        "Linear ACE (Drautz 2019): per-species linear energy on atomic cluster expansion invariants "
        "(2-, 3- and 4-body), fitted in closed form by weighted linear least squares with a ridge."
    ),
    train_defaults=dict(LINEAR_TRAIN_DEFAULTS),
    search_space=SEARCH_SPACE,
    fit="least-squares",
    fit_options=_fit_options,
)

GNN = ModelSpec(
    name="ace-gnn",
    backend="jax",
    config_class=AceConfig,
    build=_build_gnn,
    cutoff=_cutoff,
    description="ACE invariants as node features of a message-passing network (normalised adjacency), trained.",
    model_defaults=dict(GNN_MODEL_DEFAULTS),
    train_defaults=dict(GNN_TRAIN_DEFAULTS),
)


@hookimpl
def mlffbench_models(register):
    """Registers the ACE model specs."""
    register(LINEAR)
    register(GNN)
