"""A third-party model plugin: ``pairmlp``, a pair potential whose pair energy is a small MLP.

E = Σ_i ε(Z_i) + ½ Σ_(i,j), d_ij < r_c  φ(d_ij, Z_i, Z_j) · f_c(d_ij), with φ an MLP of
Gaussians of the distance and of the (symmetric) pair of species, and the smooth cutoff
f_c(d) = ½ (cos(π d / r_c) + 1). Everything else (forces, stress, batching, training,
checkpoints) comes from mlffbench's JAX backend: the plugin only hands over a flax module
returning per-atom energies. It is registered through the entry point group "mlffbench"
and imported by nothing in mlffbench.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlffbench import hookimpl
from mlffbench.plugin.registry import ModelSpec
from mlffbench.plugin.search_space import Categorical, Float, Int, SearchSpace


@dataclass(frozen=True)
class PairConfig:
    hidden: int = 16
    n_basis: int = 8
    cutoff: float = 4.0


def build(config: PairConfig, stats):
    """The backend potential: the module below plus the per-species reference energies."""
    import flax.linen as nn
    import jax
    import jax.numpy as jnp
    import numpy as np

    from mlffbench.backends.jax.potential import Potential

    n_species = len(stats.species)

    class PairMLP(nn.Module):
        @nn.compact
        def __call__(self, graph):
            d = jnp.linalg.norm(graph.vectors, axis=-1)
            inside = graph.edge_mask & (d < config.cutoff)
            d = jnp.where(inside, d, 0.5 * config.cutoff)  # keeps padding edges finite
            centres = jnp.linspace(0.5, config.cutoff, config.n_basis, dtype=d.dtype)
            width = config.cutoff / config.n_basis
            basis = jnp.exp(-(((d[:, None] - centres) / width) ** 2))
            pair = jax.nn.one_hot(graph.species[graph.senders], n_species, dtype=d.dtype)
            pair = pair + jax.nn.one_hot(graph.species[graph.receivers], n_species, dtype=d.dtype)
            h = nn.tanh(nn.Dense(config.hidden)(jnp.concatenate([basis, pair], axis=-1)))
            phi = nn.Dense(1)(h)[:, 0]
            envelope = 0.5 * (jnp.cos(jnp.pi * d / config.cutoff) + 1.0)
            e_edge = jnp.where(inside, 0.5 * phi * envelope, 0.0)
            e_atom = jax.ops.segment_sum(e_edge, graph.receivers, num_segments=graph.species.shape[0])
            return jnp.where(graph.atom_mask, e_atom, 0.0)

    return Potential(PairMLP(), np.asarray(stats.reference_energies, np.float64))


SPEC = ModelSpec(
    name="pairmlp",
    backend="jax",
    config_class=PairConfig,
    build=build,
    cutoff=lambda config: config.cutoff,
    description="Per-pair MLP potential with a cosine cutoff (third-party example plugin).",
    search_space=SearchSpace(
        {"hidden": Categorical((8, 16, 32)), "n_basis": Int(4, 12), "cutoff": Float(3.0, 5.0)},
        description="pair MLP width, radial basis size, cutoff",
    ),
    train_defaults={
        "optimizer": "adam",
        "lr_schedule": "constant",
        "lr": (1e-3, 1e-3, 1e-3),
        "loss": "mse",
        "energy_weight": 0.01,
    },
)


@hookimpl
def mlffbench_models(register):
    register(SPEC)
