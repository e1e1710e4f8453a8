"""Reading released flax checkpoints: npz of flat parameter paths ``params/…`` (JAX).

The pieces every JAX model plugin's weight import shares: the npz of flat paths, the JSON
metadata beside it (same stem), the order of the checkpoint's species (its
``sorted_elements``) against the requested one, the comparison of every path and shape
with the model's parameter tree, and the nested pytree cast to the model's dtype. What a
model's checkpoint means (which metadata keys, which rows follow the species order) stays
in its plugin.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np

from mlffbench.data import elements
from mlffbench.errors import ConfigError, DataError

PREFIX = "params/"


def read_metadata(path: str | Path, *, require_object: bool = False) -> Any | None:
    """The checkpoint's JSON metadata (``<stem>.json`` beside the npz), or None.

    ``require_object``: anything but a JSON object raises DataError.
    """
    meta_path = Path(path).with_suffix(".json")
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{meta_path}: cannot read checkpoint metadata ({exc})") from None
    if require_object and not isinstance(meta, dict):
        raise DataError(f"{meta_path}: checkpoint metadata must be a JSON object")
    return meta


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Flat ``path → array`` of an npz whose entries are all ``params/…`` (prefix removed)."""
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


def check_metadata(checks: Mapping[str, tuple[Any, Any]], path: Path) -> None:
    """``checks``: name → (stored in the checkpoint, wanted by the config); the first
    difference raises ConfigError."""
    for name, (stored, wanted) in checks.items():
        if stored != wanted:
            raise ConfigError(f"{path}: checkpoint has {name}={stored!r} but the model config has {name}={wanted!r}")


def species_order(
    meta: dict[str, Any] | None,
    n_rows: int,
    species: Sequence[int] | None,
    path: Path,
    *,
    what: str = "parameters",
) -> list[int] | None:
    """Indices into the checkpoint's species (its metadata ``sorted_elements``) for the
    requested species order; None where the stored order is kept (no element list).

    ``species``: atomic numbers, or None for the stored elements by ascending atomic
    number. ``what``: what the checkpoint lacks for a missing element (error message).
    """
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
        raise ConfigError(f"{path}: the checkpoint has no {what} for element {elements.symbol(missing[0])}")
    return [stored.index(z) for z in wanted]


def checked_params(
    flat: dict[str, np.ndarray], expected: Mapping[str, tuple[int, ...]], path: Path, dtype
) -> dict[str, Any]:
    """The nested parameter pytree of ``flat``, arrays cast to ``dtype``.

    Every path and shape is compared with ``expected`` (the model's flat ``path → shape``):
    the first missing or mis-shaped path, then the first surplus one, raises ConfigError;
    non-finite values raise DataError.
    """
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

    params: dict[str, Any] = {}
    for key in sorted(flat):
        node = params
        *parents, leaf = key.split("/")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = jnp.asarray(flat[key], dtype=dtype)
    return params
