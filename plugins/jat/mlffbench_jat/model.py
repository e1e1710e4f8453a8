"""JAT: sparse GATv2-style graph attention network potential (Hödl 2022), in Flax.

Written from the specification in MODELS.md §3. Parameter paths equal the released
checkpoint's (``embed``, ``core_model/jat_layers_k/DenseGeneral_0..3``, ``LayerNorm_0``,
``core_model/Dense_0..4``, ``core_model/LayerNorm_0..3``, ``denormalizer``), so released
weights load 1:1 (see :mod:`mlffbench_jat.weights`).

One JAT layer (H heads, width D), for each receiver r over its incoming edges s → r and
its self loop r → r (q = 0):

    Q = h·W_s, K = h·W_r                                    (N, H, D), heads mixed
    z_e = swish(Q[s] + K[r]) ‖ q_e^(k+1) for head k         (E, H, D+1), q = |d|²
    l_e = a·z_e                                             (E, H), heads mixed
    α_e = f_e exp(l_e) / Σ_{e'→r} f_e' exp(l_e')           segment softmax per head
    h'_r = swish(Σ_e α_e Q[s_e]) + skip(h_r), then LayerNorm (not in the last layer)

with f ≡ 1 for the original hard cutoff, or the cosine envelope (documented deviation).
Self loops are not materialised as edges: their logits and messages are added per node,
which keeps the core's edge arrays (and their ordering) untouched.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from mlffbench.backends.jax.potential import EdgeGraph, Potential
from mlffbench.errors import ConfigError
from mlffbench_jat.config import JatConfig

LAYERNORM_EPS = 1e-6
# Attention-layer kernels: orthogonal on the kernel flattened to (fan_in, fan_out), column
# axis -2 (flax DenseGeneral passes the flattened shape to the initialiser), gain 1.
_ORTHO = nn.initializers.orthogonal(column_axis=-2)


def _round_to_float32(x):
    return jax.lax.reduce_precision(x, exponent_bits=8, mantissa_bits=23)


def _param_dtype(config: JatConfig):
    return jnp.float64 if config.dtype == "float64" else jnp.float32


class JatLayer(nn.Module):
    """One attention layer; node states (N, H_in, D_in) → (N, H, D)."""

    n_head: int
    width: int
    last: bool
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, h, feat, valid, weight, senders, receivers, atom_mask, sorted_receivers=False):
        n = h.shape[0]
        shape = (self.n_head, self.width)

        def dense(features, name):
            return nn.DenseGeneral(
                features, axis=(-2, -1), use_bias=False, kernel_init=_ORTHO, param_dtype=self.param_dtype, name=name
            )

        w_send = dense(shape, "DenseGeneral_0")
        w_recv = dense(shape, "DenseGeneral_1")
        attention = dense((self.n_head, 1), "DenseGeneral_2")

        query = w_send(h)  # (N, H, D): sender projection, doubles as the message value
        key = w_recv(h)  # (N, H, D)

        z = nn.swish(query[senders] + key[receivers])  # (E, H, D)
        logits = attention(jnp.concatenate([z, feat[:, :, None].astype(z.dtype)], axis=-1))[..., 0]  # (E, H)
        z_self = nn.swish(query + key)
        logits_self = attention(jnp.concatenate([z_self, jnp.zeros_like(z_self[..., :1])], axis=-1))[..., 0]

        # Segment softmax over each receiver's incoming edges plus its self loop, per head.
        # The maximum only stabilises the exponentials; the result does not depend on it.
        neg_inf = jnp.asarray(-jnp.inf, logits.dtype)
        top = jax.ops.segment_max(
            jnp.where(valid[:, None], logits, neg_inf),
            receivers,
            num_segments=n,
            indices_are_sorted=sorted_receivers,
        )
        top = jnp.maximum(top, jnp.where(atom_mask[:, None], logits_self, neg_inf))
        top = jax.lax.stop_gradient(jnp.where(jnp.isfinite(top), top, 0.0))
        w = jnp.exp(jnp.where(valid[:, None], logits - top[receivers], neg_inf))  # (E, H)
        if weight is not None:
            w = w * weight[:, None]
        w_self = jnp.exp(jnp.where(atom_mask[:, None], logits_self - top, neg_inf))  # (N, H)

        den = jax.ops.segment_sum(w, receivers, num_segments=n, indices_are_sorted=sorted_receivers) + w_self
        num = (
            jax.ops.segment_sum(
                w[:, :, None] * query[senders], receivers, num_segments=n, indices_are_sorted=sorted_receivers
            )
            + w_self[:, :, None] * query
        )
        agg = num / jnp.where(den > 0, den, 1.0)[:, :, None]

        if h.shape[-1] == self.width:
            skip = h  # (N, 1, D) broadcasts over the heads in the first layer
        else:
            skip = dense(shape, "DenseGeneral_3")(h)
        out = nn.swish(agg) + skip
        if not self.last:
            out = nn.LayerNorm(epsilon=LAYERNORM_EPS, param_dtype=self.param_dtype, name="LayerNorm_0")(out)
        return out


class JatCore(nn.Module):
    """The JAT layers and the readout MLP (``core_model`` in the checkpoint)."""

    layer_dims: tuple[int, ...]
    n_head: int
    readout_dims: tuple[int, ...]
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, h, feat, valid, weight, senders, receivers, atom_mask, sorted_receivers=False):
        n_layers = len(self.layer_dims)
        for t, width in enumerate(self.layer_dims):
            h = JatLayer(
                n_head=self.n_head,
                width=width,
                last=t == n_layers - 1,
                param_dtype=self.param_dtype,
                name=f"jat_layers_{t}",
            )(h, feat, valid, weight, senders, receivers, atom_mask, sorted_receivers)
        x = h.reshape(h.shape[0], -1)  # (N, H·D)
        for i, width in enumerate(self.readout_dims):
            x = nn.Dense(width, use_bias=False, param_dtype=self.param_dtype, name=f"Dense_{i}")(x)
            x = nn.LayerNorm(epsilon=LAYERNORM_EPS, param_dtype=self.param_dtype, name=f"LayerNorm_{i}")(x)
            x = nn.swish(x)
        x = nn.Dense(1, use_bias=False, param_dtype=self.param_dtype, name=f"Dense_{len(self.readout_dims)}")(x)
        return nn.swish(x)  # (N, 1)


class JatModel(nn.Module):
    """Per-atom energies (N,) from an :class:`EdgeGraph` (the JAX backend contract).

    ``sorted_receivers``: promise that ``graph.receivers`` is non-decreasing (lets the
    segment reductions use the sorted fast path); leave False unless the batcher sorts.
    """

    n_species: int
    config: JatConfig
    sorted_receivers: bool = False

    @nn.compact
    def __call__(self, graph: EdgeGraph) -> jax.Array:
        cfg = self.config
        pdt = _param_dtype(cfg)
        species = jnp.where(graph.atom_mask, graph.species, 0)
        h = nn.Embed(self.n_species, cfg.embed_d, param_dtype=pdt, name="embed")(species)
        h = h[:, None, :]  # (N, 1, embed_d): singleton head axis

        vectors = graph.vectors
        q = jnp.sum(vectors * vectors, axis=-1)  # squared length: no sqrt, finite gradients
        if cfg.edge_feature_float32:
            # the original's float32 edge cast; reduce_precision, because XLA may drop a
            # float64 -> float32 -> float64 round trip of converts as "excess precision"
            q = _round_to_float32(q)
        valid = graph.edge_mask & (q < cfg.cutoff**2)  # strict hard cutoff, as the original
        q = jnp.where(valid, q, 0.0)
        feat = jnp.stack([q ** (k + 1) for k in range(cfg.n_head)], axis=-1)  # (E, H): q^(k+1)
        weight = None
        if cfg.cutoff_envelope == "cosine":
            positive = valid & (q > 0)  # (coincident atoms: f = 1 without a 0/0 gradient)
            d = jnp.sqrt(jnp.where(positive, q, 1.0))
            f = jnp.where(positive, 0.5 * (jnp.cos(jnp.pi * d / cfg.cutoff) + 1.0), 1.0)
            weight = jnp.where(valid, f, 0.0)

        s = JatCore(
            layer_dims=cfg.layer_dims,
            n_head=cfg.n_head,
            readout_dims=cfg.readout_dims,
            param_dtype=pdt,
            name="core_model",
        )(h, feat, valid, weight, graph.senders, graph.receivers, graph.atom_mask, self.sorted_receivers)
        e = nn.Dense(1, param_dtype=pdt, name="denormalizer")(s)  # e_i = a·s_i + b, one map for all
        return e[:, 0]


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


def make_model(config: JatConfig, n_species: int, sorted_receivers: bool = False) -> JatModel:
    if not isinstance(config, JatConfig):
        raise ConfigError(f"jat: expected a JatConfig, got {type(config).__name__}")
    if int(n_species) < 1:
        raise ConfigError("jat: the dataset statistics name no species")
    if config.dtype == "float64" and not jax.config.jax_enable_x64:
        jax.config.update("jax_enable_x64", True)  # as the JAX backend does for float64 training
    return JatModel(n_species=int(n_species), config=config, sorted_receivers=sorted_receivers)


@functools.lru_cache(maxsize=16)
def _compiled_init(module: JatModel):
    return jax.jit(module.init)


def init_params(module: JatModel, seed: int | jax.Array = 0):
    """Fresh parameters (the original initialisers) for a module from :func:`make_model`.

    The jitted initialiser is cached per module definition (compiling it takes seconds).
    """
    key = jax.random.PRNGKey(seed) if isinstance(seed, int) else seed
    dtype = _param_dtype(module.config)
    return _compiled_init(module)(key, example_graph(module.n_species, dtype))["params"]


def param_shapes(module: JatModel) -> dict[str, tuple[int, ...]]:
    """Flat ``path → shape`` of the parameters of ``module`` (no computation)."""
    dtype = _param_dtype(module.config)
    abstract = jax.eval_shape(module.init, jax.random.PRNGKey(0), example_graph(module.n_species, dtype))
    flat = jax.tree_util.tree_flatten_with_path(abstract["params"])[0]
    return {"/".join(k.key for k in path): tuple(leaf.shape) for path, leaf in flat}


def build(config: JatConfig, stats: Any) -> Potential:
    """The backend-level potential for ``config`` and the training statistics ``stats``.

    ``stats`` needs ``species`` (atomic numbers, the dataset's species order) and
    ``reference_energies`` (eV, one per species); the latter are used only when
    ``config.species_energy_shift`` is on (the faithful model has none, MODELS.md §2.7).

    The model is told that receivers are sorted: the core's batches
    (:class:`mlffbench.graph.batching.GraphBatcher`) order edges by receiver and point
    padding edges at the last atom. Feed it only such batches (or use :func:`make_model`).
    """
    species = tuple(int(z) for z in stats.species)
    module = make_model(config, len(species), sorted_receivers=True)
    dtype = np.float64 if jax.config.jax_enable_x64 else np.float32
    if config.species_energy_shift:
        ref = np.asarray(stats.reference_energies, dtype=np.float64)
        if ref.shape != (len(species),) or not np.all(np.isfinite(ref)):
            raise ConfigError(
                f"jat: reference_energies must hold {len(species)} finite values (one per species), "
                f"got shape {ref.shape}"
            )
    else:
        ref = np.zeros(len(species))
    return Potential(module, ref.astype(dtype))
