"""Import parameters of the authors' SO3krates (mlff 1.0, ``init_so3krates_sparse``).

Their parameter tree, flattened to ``params/…`` paths in an npz (``mlff_flat`` below shows
the flattening of an in-memory tree), maps one to one onto this plugin's:

* ``feature_embeddings_0/Embed_0/embedding`` (119, F), one row per atomic number → ``embed/embedding``
  (n_species, F), the rows of the model's species (``species``: atomic numbers in the order of
  the model's species indices, mlffbench's ascending order by default);
* ``layers_{t}/attention_block/…`` and ``layers_{t}/exchange_block/mlp_layer_2`` → the same paths
  (and ``res_mlp_*``, ``layer_normalization_*`` where the config has them);
* ``observables_0/energy_dense_regression|energy_dense_final`` → the same names at the top;
  ``observables_0/atomic_scales|energy_offset`` (119,) → (n_species,) rows (``atomic_scale_shift``).

The radial basis, cutoff and degrees are not parameters: the config must name the model the
weights were trained with (a JSON beside the npz may carry ``cutoff``, ``max_degree``, ``n_rbf``,
checked when present).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from flax.core import unfreeze
from flax.traverse_util import flatten_dict

from mlffbench.backends.jax.precision import float64_scope
from mlffbench.backends.jax.weights import check_metadata, checked_params, read_metadata, read_npz
from mlffbench.errors import ConfigError
from mlffbench_so3krates.config import So3kratesConfig
from mlffbench_so3krates.model import _param_dtype, make_model, param_shapes

EMBED = "feature_embeddings_0/Embed_0/embedding"
OBSERVABLE = "observables_0/"
PER_ELEMENT = ("atomic_scales", "energy_offset")


def mlff_flat(tree: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Flat ``a/b/c → array`` of a nested parameter tree (the ``params`` level removed)."""
    if "params" in tree:
        tree = tree["params"]
    return {key: np.asarray(value) for key, value in flatten_dict(unfreeze(dict(tree)), sep="/").items()}


def convert(flat: Mapping[str, np.ndarray], species: Sequence[int]) -> dict[str, np.ndarray]:
    """The authors' flat parameters (no ``params/`` prefix) as this plugin's flat paths."""
    z = np.asarray([int(s) for s in species])
    out: dict[str, np.ndarray] = {}
    for key, value in flat.items():
        if key == EMBED:
            if value.ndim != 2 or value.shape[0] <= z.max():
                raise ConfigError(f"'{EMBED}' has shape {value.shape}: no row for atomic number {z.max()}")
            out["embed/embedding"] = value[z]
        elif key.startswith(OBSERVABLE):
            name = key[len(OBSERVABLE) :]
            out[name] = value[z] if name in PER_ELEMENT else value
        elif key.startswith("layers_"):
            out[key] = value
        else:
            raise ConfigError(f"unexpected parameter '{key}' in an mlff SO3krates tree")
    return out


def from_mlff(tree: Mapping[str, Any], config: So3kratesConfig, species: Sequence[int]) -> dict[str, Any]:
    """This plugin's parameter pytree from an in-memory mlff parameter tree."""
    return _checked(convert(mlff_flat(tree), species), config, Path("<mlff parameters>"))


def _checked(flat: dict[str, np.ndarray], config: So3kratesConfig, path: Path) -> dict[str, Any]:
    with float64_scope(config.dtype):  # a float64 config must not switch 64-bit JAX on for good
        n_species = flat["embed/embedding"].shape[0] if "embed/embedding" in flat else 1
        expected = param_shapes(make_model(config, n_species))
        return checked_params(flat, expected, path, _param_dtype(config))


def load_weights(path: str | Path, config: So3kratesConfig, species: Sequence[int] | None = None) -> dict[str, Any]:
    """This plugin's parameter pytree from an npz of the authors' flat ``params/…`` paths.

    ``species`` (atomic numbers in the model's species order) is required: the authors' embedding
    has a row per atomic number, the model one per species of its dataset.
    """
    path = Path(path)
    if species is None:
        raise ConfigError(f"{path}: an mlff SO3krates import needs the dataset's species (atomic numbers)")
    meta = read_metadata(path)
    if isinstance(meta, dict):
        checks = {
            name: (meta[name], getattr(config, name)) for name in ("cutoff", "max_degree", "n_rbf") if name in meta
        }
        check_metadata(checks, path)
    return _checked(convert(read_npz(path), species), config, path)
