"""JAT: sparse GATv2-style graph attention network potential (Hödl 2022), in Flax.

Written from docs/models/jat.md (the layer §4, the readout §5); parameter paths equal the released
checkpoint's, so its weights load 1:1 (:mod:`mlffbench_jat.weights`). The order in which the
sums are evaluated (self loops per node, the first layer per species pair): docs/models/jat.md §13.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn

from mlffbench.backends.jax.models import init_params, make_module, param_shapes, reference_energies  # noqa: F401
from mlffbench.backends.jax.models import param_dtype as _param_dtype
from mlffbench.backends.jax.potential import EdgeGraph, Potential
from mlffbench.data.stats import ModelStats
from mlffbench.errors import ConfigError
from mlffbench_jat.config import JatConfig

LAYERNORM_EPS = 1e-6
# Attention-layer kernels: orthogonal on the kernel flattened to (fan_in, fan_out), column
# axis -2 (flax DenseGeneral passes the flattened shape to the initialiser), gain 1.
_ORTHO = nn.initializers.orthogonal(column_axis=-2)


def _round_to_float32(x):
    return jax.lax.reduce_precision(x, exponent_bits=8, mantissa_bits=23)


def _contract(x, kernel):
    """(M, H, D) · (H, D, K) -> (M, K)."""
    k = kernel.astype(x.dtype)
    return jnp.sum(x[..., None] * k[None], axis=(1, 2))


class _AttentionKernel(nn.Module):
    """The attention vector, stored and initialised exactly as flax ``DenseGeneral`` over
    the (head, feature) axes of [z ‖ q] would: kernel (H, D+1, H, 1), orthogonal init on the
    flattened (H·(D+1), H) matrix."""

    n_head: int
    width: int
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self):
        shape = (self.n_head, self.width + 1, self.n_head, 1)

        def init(key, shape, dtype):
            flat = _ORTHO(key, (shape[0] * shape[1], shape[2] * shape[3]), dtype)
            return jnp.reshape(flat, shape)

        return self.param("kernel", init, shape, self.param_dtype)


class JatLayer(nn.Module):
    """One attention layer; node states (N, H_in, D_in) → (N, H, D)."""

    n_head: int
    width: int
    last: bool
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(
        self, h, feat, basis, valid, weight, senders, receivers, atom_mask, sorted_receivers=False, species=None
    ):
        """``species`` (first layer only): ``(species, table)`` when h = table[species], the
        species embedding; then everything before the distance terms is computed per pair of
        species (S² rows) instead of per edge (same sums, far fewer (E, H, D) passes)."""
        n = h.shape[0]
        shape = (self.n_head, self.width)

        def dense(features, name):
            return nn.DenseGeneral(
                features, axis=(-2, -1), use_bias=False, kernel_init=_ORTHO, param_dtype=self.param_dtype, name=name
            )

        w_send = dense(shape, "DenseGeneral_0")
        w_recv = dense(shape, "DenseGeneral_1")
        # The attention vector a acts on [z ‖ q] (H, D+1 -> H); it is applied as a·z + a_q·q
        # so that the (E, H, D+1) concatenation is never materialised (same parameter).
        a = _AttentionKernel(self.n_head, self.width, self.param_dtype, name="DenseGeneral_2")()
        a_z, a_q = a[:, :-1, :, 0], a[:, -1, :, 0]  # (H, D, H), (H, H)
        distance_logits = _contract(feat[:, :, None], a_q[:, None, :])  # (E, H)

        by_species = species is not None and basis is None
        if by_species:
            kinds, table = species
            n_kinds = table.shape[0]
            query_of, key_of = w_send(table), w_recv(table)  # (S, H, D)
            query, key = query_of[kinds], key_of[kinds]  # (N, H, D)
            z_pairs = nn.swish(query_of[:, None] + key_of[None, :])  # (S, S, H, D): sender, receiver
            pair_logits = _contract(z_pairs.reshape(n_kinds * n_kinds, *shape), a_z)  # (S², H)
            sender_kinds = kinds[senders]
            logits = pair_logits[sender_kinds * n_kinds + kinds[receivers]] + distance_logits
        else:
            query = w_send(h)  # (N, H, D): sender projection, doubles as the message value
            key = w_recv(h)  # (N, H, D)
            pre = query[senders] + key[receivers]  # (E, H, D)
            if basis is not None:  # radial-basis edge term in the pre-activation (deviation)
                w_edge = self.param(
                    "edge_basis",
                    nn.initializers.lecun_normal(),
                    (basis.shape[-1], self.n_head * self.width),
                    self.param_dtype,
                )
                pre = pre + (basis @ w_edge.astype(basis.dtype)).reshape(pre.shape)
            logits = _contract(nn.swish(pre), a_z) + distance_logits  # (E, H)
        z_self = nn.swish(query + key)  # self loop: q = 0
        logits_self = _contract(z_self, a_z)  # (N, H)

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

        def edge_sum(x):
            return jax.ops.segment_sum(x, receivers, num_segments=n, indices_are_sorted=sorted_receivers)

        den = edge_sum(w) + w_self
        if by_species:  # Σ_e w_e Q[s_e] = Σ_k (Σ_{e: s_e of kind k} w_e) Q_k
            one_hot = (sender_kinds[:, None] == jnp.arange(n_kinds)).astype(w.dtype)  # (E, S)
            by_kind = edge_sum(w[:, None, :] * one_hot[:, :, None])  # (N, S, H)
            num = jnp.einsum("nsh,shd->nhd", by_kind, query_of)
        else:
            num = edge_sum(w[:, :, None] * query[senders])
        num = num + w_self[:, :, None] * query
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
    def __call__(
        self, h, feat, basis, valid, weight, senders, receivers, atom_mask, sorted_receivers=False, species=None
    ):
        """``species``: ``(species, table)`` when h is the species embedding (see JatLayer)."""
        n_layers = len(self.layer_dims)
        for t, width in enumerate(self.layer_dims):
            h = JatLayer(
                n_head=self.n_head,
                width=width,
                last=t == n_layers - 1,
                param_dtype=self.param_dtype,
                name=f"jat_layers_{t}",
            )(
                h,
                feat,
                basis,
                valid,
                weight,
                senders,
                receivers,
                atom_mask,
                sorted_receivers,
                species if t == 0 else None,
            )
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
        embed = nn.Embed(self.n_species, cfg.embed_d, param_dtype=pdt, name="embed")
        h = embed(species)[:, None, :]  # (N, 1, embed_d): singleton head axis
        table = embed.embedding[:, None, :].astype(h.dtype)  # (S, 1, embed_d): h = table[species]

        vectors = graph.vectors
        q = jnp.sum(vectors * vectors, axis=-1)  # squared length: no sqrt, finite gradients
        if cfg.edge_feature_float32:
            # the original's float32 edge cast; reduce_precision, because XLA may drop a
            # float64 -> float32 -> float64 round trip of converts as "excess precision"
            q = _round_to_float32(q)
        valid = graph.edge_mask & (q < cfg.cutoff**2)  # strict hard cutoff, as the original
        q = jnp.where(valid, q, 0.0)
        feat = jnp.stack([q ** (k + 1) for k in range(cfg.n_head)], axis=-1)  # (E, H): q^(k+1)
        basis = None
        if cfg.edge_basis:
            d = jnp.sqrt(jnp.where(valid & (q > 0), q, 1.0))
            centers = jnp.linspace(0.0, cfg.cutoff, cfg.edge_basis, dtype=d.dtype)
            width = cfg.cutoff / cfg.edge_basis
            envelope = jnp.where(valid, 0.5 * (jnp.cos(jnp.pi * d / cfg.cutoff) + 1.0), 0.0)
            basis = jnp.exp(-(((d[:, None] - centers) / width) ** 2)) * envelope[:, None]  # (E, n)
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
        )(
            h,
            feat,
            basis,
            valid,
            weight,
            graph.senders,
            graph.receivers,
            graph.atom_mask,
            self.sorted_receivers,
            (species, table),
        )
        e = nn.Dense(1, param_dtype=pdt, name="denormalizer")(s)  # e_i = a·s_i + b, one map for all
        return e[:, 0]


def make_model(config: JatConfig, n_species: int, sorted_receivers: bool = False) -> JatModel:
    return make_module(JatModel, JatConfig, "jat", config, n_species, sorted_receivers)


def build(config: JatConfig, stats: ModelStats) -> Potential:
    """The backend-level potential for ``config`` and the training statistics ``stats``.

    ``stats`` needs ``species`` (atomic numbers, the dataset's species order) and
    ``reference_energies`` (eV, one per species); the latter are used only when
    ``config.species_energy_shift`` is on (the faithful model has none, docs/models/training.md §7).

    The model is told that receivers are sorted: the core's batches
    (:class:`mlffbench.graph.batching.GraphBatcher`) order edges by receiver and point
    padding edges at the last atom. Feed it only such batches (or use :func:`make_model`).
    """
    species = tuple(int(z) for z in stats.species)
    if len(species) == 1:
        # every message is the sender's species projection; the attention only weights them, so with one
        # element each layer averages identical vectors: E = N × a constant, F = 0 (docs/models/jat.md)
        raise ConfigError(
            f"jat: the data has one element (Z={species[0]}); JAT's messages carry only the sender's "
            "element, so its energy would not depend on the positions (forces 0): use a model with "
            "distance-dependent messages (neuralil, schnet, mace, ...)"
        )
    module = make_model(config, len(species), sorted_receivers=True)
    return Potential(module, reference_energies(stats, len(species), config.species_energy_shift, "jat"))
