"""Import released NeuralIL checkpoints (npz of flat flax paths ``params/…``).

The npz (converted from the original pickle, see shared/reference/weights/README.md) maps
``params/core_model/Inlet/kernel``-style paths to arrays; the JSON next to it (same stem)
carries the metadata (``r_cut``, ``n_max``, ``embed_d``, ``core_widths``, ``model_name``
and ``sorted_elements``, the original's species order: alphabetical, C, H, N, O).

mlffbench numbers species by ascending atomic number (H, C, N, O for EAN). Three things
depend on the species order and are reordered on import: the rows of the species
embedding, the rows of the Morse parameter embedding, and the rows of the Inlet kernel that
read the descriptor, whose blocks of n_coeffs rows belong to the species pairs a ≤ b in
row-major order (the pair (C, H) of the original is the pair (H, C) of mlffbench). A subset
of the checkpoint's elements is fine (the pairs that remain are selected). Reading and
checking the npz: :mod:`mlffbench.backends.jax.weights`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mlffbench.backends.jax import weights as jax_weights
from mlffbench.backends.jax.precision import float64_scope
from mlffbench.backends.jax.weights import PREFIX, check_metadata, checked_params, read_npz, species_order
from mlffbench.errors import ConfigError
from mlffbench_neuralil.config import NeuralilConfig
from mlffbench_neuralil.model import _param_dtype, make_model, param_shapes, species_pairs

EMBED = "embed/embedding"
MORSE_EMBED = "morse/embed/embedding"
INLET = "core_model/Inlet/kernel"


def read_metadata(path: str | Path) -> dict[str, Any] | None:
    """The checkpoint's JSON metadata (``<stem>.json`` beside the npz, a JSON object), or None."""
    return jax_weights.read_metadata(path, require_object=True)


def _check_metadata(meta: dict[str, Any], config: NeuralilConfig, path: Path) -> None:
    checks = {
        "n_max": (meta.get("n_max", config.n_max), config.n_max),
        "embed_d": (meta.get("embed_d", config.embed_d), config.embed_d),
        "core_widths": (tuple(meta.get("core_widths", config.core_widths)), config.core_widths),
        "cutoff": (float(meta.get("r_cut", config.cutoff)), float(config.cutoff)),
    }
    name = str(meta.get("model_name", ""))
    if name:
        checks["morse"] = ("morse" in name.lower(), config.morse)
    check_metadata(checks, path)


def _inlet_rows(order: list[int], n_stored: int, n_coeffs: int, embed_d: int) -> np.ndarray:
    """Rows of the stored Inlet kernel for the reordered species: descriptor pair blocks,
    then the embedding rows (unchanged)."""
    sa, sb = species_pairs(n_stored)
    stored_pair = {(int(a), int(b)): k for k, (a, b) in enumerate(zip(sa, sb))}
    rows: list[int] = []
    for a, b in zip(*species_pairs(len(order))):
        p, q = sorted((order[a], order[b]))
        k = stored_pair[(p, q)]
        rows.extend(range(k * n_coeffs, (k + 1) * n_coeffs))
    n_desc = len(sa) * n_coeffs
    rows.extend(range(n_desc, n_desc + embed_d))
    return np.asarray(rows)


def load_weights(path: str | Path, config: NeuralilConfig, species: Sequence[int] | None = None):
    """Flax parameter pytree from a released-checkpoint npz, checked against ``config``.

    ``species``: atomic numbers in the order of the model's species indices (the dataset
    statistics' ``species``). Default: the checkpoint's elements by ascending atomic number
    (mlffbench's convention). The metadata (``r_cut``, ``n_max``, ``embed_d``, ``core_widths``,
    Morse or not) must agree with ``config``; then every path and shape is compared with what
    the model built from ``config`` expects, and the first missing, extra or mis-shaped path
    raises ConfigError. Arrays are cast to ``config.dtype``.
    """
    path = Path(path)
    if not isinstance(config, NeuralilConfig):
        raise ConfigError(f"neuralil: expected a NeuralilConfig, got {type(config).__name__}")
    flat = read_npz(path)
    meta = read_metadata(path)
    if meta is not None:
        _check_metadata(meta, config, path)
    if EMBED not in flat or flat[EMBED].ndim != 2:
        raise ConfigError(f"{path}: missing parameter '{PREFIX}{EMBED}' (a species × embed_d table)")
    n_stored = flat[EMBED].shape[0]
    order = species_order(meta, n_stored, species, path)
    n_species = n_stored if order is None else len(order)

    with float64_scope(config.dtype):  # a float64 config must not switch 64-bit JAX on for good
        expected = param_shapes(make_model(config, n_species))
    if order is not None:
        stored_inlet = (n_stored * (n_stored + 1) // 2 * config.n_coeffs + config.embed_d, expected[INLET][1])
        if INLET in flat and tuple(flat[INLET].shape) != stored_inlet:
            raise ConfigError(
                f"{path}: parameter '{PREFIX}{INLET}' has shape {tuple(flat[INLET].shape)}, a model of the "
                f"checkpoint's {n_stored} species expects {stored_inlet}"
            )
        flat[EMBED] = flat[EMBED][order]
        if MORSE_EMBED in flat and flat[MORSE_EMBED].shape[:1] == (n_stored,):
            flat[MORSE_EMBED] = flat[MORSE_EMBED][order]
        if INLET in flat:
            flat[INLET] = flat[INLET][_inlet_rows(order, n_stored, config.n_coeffs, config.embed_d)]
    with float64_scope(config.dtype):
        return checked_params(flat, expected, path, _param_dtype(config))
