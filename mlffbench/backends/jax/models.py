"""What JAX model plugins share around their flax modules.

The parameter dtype of a config, a checked module, a tiny example graph to initialise
parameters, the flat parameter shapes of a module, a cached jitted initialiser, and the
per-species reference energies that a plugin's ``build()`` hands to
:class:`mlffbench.backends.jax.potential.Potential`.

A module here is a flax module with the fields ``n_species`` (int) and ``config`` (whose
``dtype`` is "float32" or "float64"), as the plugins' ``make_model`` return.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from mlffbench.backends.jax.potential import EdgeGraph
from mlffbench.backends.jax.precision import float_dtype
from mlffbench.data.stats import ModelStats
from mlffbench.errors import ConfigError


def param_dtype(config):
    """The parameter dtype of a model config: float64 for ``dtype="float64"``, else float32."""
    return jnp.float64 if config.dtype == "float64" else jnp.float32


def example_graph(n_species: int, dtype=jnp.float32) -> EdgeGraph:
    """A tiny valid graph (two atoms, one pair) for initialising parameters."""
    vec = jnp.asarray([[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]], dtype)
    return EdgeGraph(
        species=jnp.asarray([0, n_species - 1], jnp.int32),
        atom_mask=jnp.ones(2, bool),
        vectors=vec,
        senders=jnp.asarray([0, 1], jnp.int32),
        receivers=jnp.asarray([1, 0], jnp.int32),
        edge_mask=jnp.ones(2, bool),
        graph_index=jnp.zeros(2, jnp.int32),
        n_graphs=1,
    )


def make_module(module_class, config_class, model: str, config, n_species: int, sorted_receivers: bool = False):
    """``module_class(n_species=…, config=…, sorted_receivers=…)`` after checking that
    ``config`` is a ``config_class`` and that there is a species. A float64 model is built
    and used inside :func:`mlffbench.backends.jax.precision.float64_scope` (the backend's
    ``precision``); this never switches 64-bit JAX on. ``model`` names the plugin in errors."""
    if not isinstance(config, config_class):
        raise ConfigError(f"{model}: expected a {config_class.__name__}, got {type(config).__name__}")
    if int(n_species) < 1:
        raise ConfigError(f"{model}: the dataset statistics name no species")
    return module_class(n_species=int(n_species), config=config, sorted_receivers=sorted_receivers)


@functools.lru_cache(maxsize=32)
def _compiled_init(module):
    return jax.jit(module.init)


def init_params(module, seed: int | jax.Array = 0):
    """Fresh parameters (the module's own initialisers) for a module from a plugin's
    ``make_model``.

    The jitted initialiser is cached per module definition (compiling it takes seconds).
    """
    key = jax.random.PRNGKey(seed) if isinstance(seed, int) else seed
    return _compiled_init(module)(key, example_graph(module.n_species, param_dtype(module.config)))["params"]


def param_shapes(module) -> dict[str, tuple[int, ...]]:
    """Flat ``path → shape`` of the parameters of ``module`` (no computation)."""
    dtype = param_dtype(module.config)
    abstract = jax.eval_shape(module.init, jax.random.PRNGKey(0), example_graph(module.n_species, dtype))
    flat = jax.tree_util.tree_flatten_with_path(abstract["params"])[0]
    return {"/".join(k.key for k in path): tuple(leaf.shape) for path, leaf in flat}


def reference_energies(stats: ModelStats, n_species: int, enabled: bool, model: str) -> np.ndarray:
    """The per-species reference energies (eV) of a potential: ``stats.reference_energies``
    (checked: ``n_species`` finite values) when ``enabled``, else zeros.

    In float64 inside a float64 scope (:func:`mlffbench.backends.jax.precision.float64_scope`),
    else float32. ``model`` names the plugin in errors.
    """
    dtype = float_dtype()
    if enabled:
        ref = np.asarray(stats.reference_energies, dtype=np.float64)
        if ref.shape != (n_species,) or not np.all(np.isfinite(ref)):
            raise ConfigError(
                f"{model}: reference_energies must hold {n_species} finite values (one per species), "
                f"got shape {ref.shape}"
            )
    else:
        ref = np.zeros(n_species)
    return ref.astype(dtype)
