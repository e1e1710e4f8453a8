"""Import released JAT checkpoints (npz of flat flax paths ``params/…``).

The npz (converted from the original pickle, see shared/reference/weights/README.md) maps
``params/core_model/jat_layers_0/DenseGeneral_0/kernel``-style paths to arrays. The JSON
next to it (same stem) carries the checkpoint metadata; its ``sorted_elements`` give the
order of the embedding rows (the original numbers species alphabetically: C, H, N, O).
mlffbench numbers species in the order of the dataset statistics (atomic numbers
ascending: H, C, N, O), so the embedding rows are reordered on import.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np

from mlffbench import elements
from mlffbench.errors import ConfigError, DataError
from mlffbench_jat.config import JatConfig
from mlffbench_jat.model import _param_dtype, make_model, param_shapes

PREFIX = "params/"
EMBED = "embed/embedding"


def read_metadata(path: str | Path) -> dict[str, Any] | None:
    """The checkpoint's JSON metadata (``<stem>.json`` beside the npz), or None."""
    meta_path = Path(path).with_suffix(".json")
    if not meta_path.is_file():
        return None
    try:
        return json.loads(meta_path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{meta_path}: cannot read checkpoint metadata ({exc})") from None


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise ConfigError(f"weights file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            raw = {k: np.asarray(data[k]) for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: not a readable npz weights file ({exc})") from None
    flat = {}
    for key, value in raw.items():
        if not key.startswith(PREFIX):
            raise ConfigError(f"{path}: entry '{key}' is not a flax parameter path (expected '{PREFIX}…')")
        flat[key[len(PREFIX) :]] = value
    return flat


def _check_metadata(meta: dict[str, Any], config: JatConfig, path: Path) -> None:
    checks = {
        "layer_dims": (tuple(meta.get("layer_dims", config.layer_dims)), config.layer_dims),
        "n_head": (meta.get("n_head", config.n_head), config.n_head),
        "embed_d": (meta.get("embed_d", config.embed_d), config.embed_d),
        "cutoff": (float(meta.get("graph_cut", config.cutoff)), float(config.cutoff)),
    }
    for name, (stored, wanted) in checks.items():
        if stored != wanted:
            raise ConfigError(f"{path}: checkpoint has {name}={stored!r} but the model config has {name}={wanted!r}")


def _embedding_order(
    meta: dict[str, Any] | None, n_rows: int, species: Sequence[int] | None, path: Path
) -> list[int] | None:
    """Row indices into the stored embedding for the requested species order."""
    if meta is None or "sorted_elements" not in meta:
        if species is not None and len(species) != n_rows:
            raise ConfigError(
                f"{path}: no element list beside the weights; cannot map {n_rows} embedding rows onto "
                f"{len(species)} species"
            )
        return None
    stored = [elements.atomic_number(s, where=str(path)) for s in meta["sorted_elements"]]
    if len(stored) != n_rows:
        raise ConfigError(f"{path}: metadata names {len(stored)} elements but the embedding has {n_rows} rows")
    wanted = sorted(stored) if species is None else [int(z) for z in species]
    missing = [z for z in wanted if z not in stored]
    if missing:
        raise ConfigError(f"{path}: the checkpoint has no embedding for element {elements.symbol(missing[0])}")
    return [stored.index(z) for z in wanted]


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
    flat = _read_npz(path)
    meta = read_metadata(path)
    if meta is not None:
        _check_metadata(meta, config, path)
    if EMBED not in flat:
        raise ConfigError(f"{path}: missing parameter '{PREFIX}{EMBED}'")
    order = _embedding_order(meta, flat[EMBED].shape[0], species, path)
    if order is not None:
        flat[EMBED] = flat[EMBED][order]

    expected = param_shapes(make_model(config, flat[EMBED].shape[0]))
    for key, shape in expected.items():
        if key not in flat:
            raise ConfigError(f"{path}: missing parameter '{PREFIX}{key}' (expected shape {shape})")
        if tuple(flat[key].shape) != shape:
            raise ConfigError(
                f"{path}: parameter '{PREFIX}{key}' has shape {tuple(flat[key].shape)}, the model expects {shape}"
            )
    for key in sorted(flat):
        if key not in expected:
            raise ConfigError(f"{path}: unexpected parameter '{PREFIX}{key}' (not in the model built from the config)")
    bad = [k for k, v in flat.items() if not np.all(np.isfinite(v))]
    if bad:
        raise DataError(f"{path}: parameter '{PREFIX}{bad[0]}' holds non-finite values")

    dtype = _param_dtype(config)
    params: dict[str, Any] = {}
    for key in sorted(flat):
        node = params
        *parents, leaf = key.split("/")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = jnp.asarray(flat[key], dtype=dtype)
    return params
