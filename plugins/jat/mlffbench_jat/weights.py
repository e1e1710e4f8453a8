"""Import released JAT checkpoints (npz of flat flax paths ``params/…``).

The npz (converted from the original pickle, see shared/reference/weights/README.md) maps
``params/core_model/jat_layers_0/DenseGeneral_0/kernel``-style paths to arrays. The JSON
next to it (same stem) carries the checkpoint metadata; its ``sorted_elements`` give the
order of the embedding rows (the original numbers species alphabetically: C, H, N, O).
mlffbench numbers species in the order of the dataset statistics (atomic numbers
ascending: H, C, N, O), so the embedding rows are reordered on import. Reading and checking
the npz: :mod:`mlffbench.backends.jax.weights`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlffbench.backends.jax.precision import float64_scope
from mlffbench.backends.jax.weights import (
    PREFIX,
    check_metadata,
    checked_params,
    read_metadata,
    read_npz,
    species_order,
)
from mlffbench.errors import ConfigError
from mlffbench_jat.config import JatConfig
from mlffbench_jat.model import _param_dtype, make_model, param_shapes

EMBED = "embed/embedding"


def _check_metadata(meta: dict[str, Any], config: JatConfig, path: Path) -> None:
    if config.edge_basis:
        raise ConfigError(f"{path}: released JAT weights have no edge basis; use the model option edge_basis=0")
    checks = {
        "layer_dims": (tuple(meta.get("layer_dims", config.layer_dims)), config.layer_dims),
        "n_head": (meta.get("n_head", config.n_head), config.n_head),
        "embed_d": (meta.get("embed_d", config.embed_d), config.embed_d),
        "cutoff": (float(meta.get("graph_cut", config.cutoff)), float(config.cutoff)),
    }
    check_metadata(checks, path)


def load_weights(path: str | Path, config: JatConfig, species: Sequence[int] | None = None):
    """Flax parameter pytree from a released-checkpoint npz, checked against ``config``.

    The cutoff is not a parameter, but the weights only mean something with the cutoff they
    were trained with: a metadata ``graph_cut`` different from ``config.cutoff`` is refused.

    ``species``: atomic numbers in the order of the model's species indices (the dataset
    statistics' ``species``). Default: the checkpoint's elements by ascending atomic number
    (mlffbench's convention). Every path and shape is compared with what the model built
    from ``config`` expects; the first missing, extra or mis-shaped path raises ConfigError.
    Arrays are cast to ``config.dtype``.
    """
    path = Path(path)
    flat = read_npz(path)
    meta = read_metadata(path)
    if meta is not None:
        _check_metadata(meta, config, path)
    if EMBED not in flat:
        raise ConfigError(f"{path}: missing parameter '{PREFIX}{EMBED}'")
    order = species_order(meta, flat[EMBED].shape[0], species, path, what="embedding")
    if order is not None:
        flat[EMBED] = flat[EMBED][order]

    with float64_scope(config.dtype):  # a float64 config must not switch 64-bit JAX on for good
        expected = param_shapes(make_model(config, flat[EMBED].shape[0]))
        return checked_params(flat, expected, path, _param_dtype(config))
