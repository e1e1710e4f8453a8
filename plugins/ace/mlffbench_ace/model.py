"""ACE descriptors in JAX and the two models built on them (docs/models/ace.md).

For atom i with neighbours j within the cutoff r_c (edge vector r_ij from the core's
neighbour lists, centre = sender):

* radial basis: R_n(r) = sqrt(2/r_c) · sin(nπ r/r_c) / r · f_c(r), n = 1..n_radial, with the
  cosine cutoff f_c(r) = ½(cos(πr/r_c) + 1) for r < r_c (0 beyond): value and slope vanish at r_c;
* atomic base: A_{i,znlm} = Σ_{j: Z_j = z} R_n(r_ij) Y_lm(r̂_ij), one channel k = (z, n) per
  neighbour species z and radial function n; Y_lm are e3nn's real spherical harmonics
  ("component" normalisation);
* invariants: ν = 1 (2-body) B_k = A_{k00}; ν = 2 (3-body) B_{kk'l} = Σ_m A_{klm} A_{k'lm}
  (k ≤ k'); ν = 3 (4-body) B = Σ_{m1m2m3} C^{l1l2l3}_{m1m2m3} A_{k1l1m1} A_{k2l2m2} A_{k3l3m3}
  over sorted triples of (k, l) with l1 + l2 + l3 even and the triangle condition, C being
  e3nn's real Clebsch–Gordan (Wigner 3j) tensor, the invariant of l1 ⊗ l2 ⊗ l3.

The centre species enters through the per-species coefficients (ace-linear) or the
species embedding (ace-gnn), so every (centre, neighbour) species pair has its own radial
coefficients. Forces and stress come from the framework's autodiff of these energies.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import e3nn_jax as e3nn
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from mlffbench.backends.jax.models import make_module, param_dtype, reference_energies
from mlffbench.backends.jax.potential import EdgeGraph, Potential
from mlffbench_ace.config import AceConfig


@dataclass(frozen=True)
class Basis:
    """The invariants' index tables (static, from the config and the species count)."""

    n_channels: int  # K = n_species × n_radial
    pairs: np.ndarray  # (P2, 2) channel pairs k ≤ k' of the 3-body invariants
    triples: tuple[tuple[tuple[int, int, int], np.ndarray], ...]  # ((l1, l2, l3), (T, 3) channels)
    size: int  # invariants per atom

    @classmethod
    def of(cls, config: AceConfig, n_species: int) -> Basis:
        k = n_species * config.n_radial
        pairs = np.asarray([(a, b) for a in range(k) for b in range(a, k)], np.int32).reshape(-1, 2)
        triples: dict[tuple[int, int, int], list[tuple[int, int, int]]] = {}
        if config.body_order >= 4:
            n_high, l_high = min(config.n_radial_high, config.n_radial), min(config.l_max_high, config.l_max)
            channels = [z * config.n_radial + n for z in range(n_species) for n in range(n_high)]
            items = [(c, lv) for c in channels for lv in range(l_high + 1)]
            for a, b, c in itertools.combinations_with_replacement(items, 3):
                ls = (a[1], b[1], c[1])
                if sum(ls) % 2 or not abs(ls[0] - ls[1]) <= ls[2] <= ls[0] + ls[1]:
                    continue
                triples.setdefault(ls, []).append((a[0], b[0], c[0]))
        grouped = tuple((ls, np.asarray(t, np.int32)) for ls, t in sorted(triples.items()))
        size = k
        if config.body_order >= 3:
            size += len(pairs) * (config.l_max + 1)
        size += sum(len(t) for _, t in grouped)
        return cls(k, pairs, grouped, size)

    def coefficient_mask(self, config: AceConfig, n_species: int) -> np.ndarray:
        """(n_species, size) 1/0: which coefficients of ace-linear exist. The 2-body term of centre
        species s and neighbour channel z sums the same pairs as that of centre z and channel s
        (Σ_{i∈s} A_{i,zn00} = Σ_{i∈z} A_{i,sn00}), so only z ≥ s carries a coefficient: the
        others could never be told apart by any data."""
        mask = np.ones((n_species, self.size))
        for s in range(n_species):
            for z in range(s):
                mask[s, z * config.n_radial : (z + 1) * config.n_radial] = 0.0
        return mask


def radial_basis(r: jax.Array, config: AceConfig) -> jax.Array:
    """(E, n_radial): Bessel functions times the cosine cutoff, 0 at and beyond r_c."""
    rc = config.cutoff
    inside = r < rc
    safe = jnp.where(inside, r, 0.5 * rc)
    n = jnp.arange(1, config.n_radial + 1, dtype=r.dtype)
    bessel = jnp.sqrt(2.0 / rc) * jnp.sin(n * jnp.pi * safe[:, None] / rc) / safe[:, None]
    envelope = 0.5 * (jnp.cos(jnp.pi * safe / rc) + 1.0)
    return jnp.where(inside[:, None], bessel * envelope[:, None], 0.0)


def atomic_base(graph: EdgeGraph, config: AceConfig, n_species: int) -> jax.Array:
    """A_{i,k,lm}: (N, K, (l_max+1)²), channels k = z · n_radial + n."""
    vec = graph.vectors
    r = jnp.sqrt(jnp.sum(vec * vec, axis=-1))
    radial = radial_basis(r, config) * graph.edge_mask[:, None]
    ylm = e3nn.spherical_harmonics(
        e3nn.Irreps.spherical_harmonics(config.l_max), vec, normalize=True, normalization="component"
    ).array
    phi = radial[:, :, None] * ylm[:, None, :]  # (E, n, LM)
    n_atoms = graph.species.shape[0]
    segment = graph.senders * n_species + graph.species[graph.receivers]
    a = jax.ops.segment_sum(phi, segment, num_segments=n_atoms * n_species)
    return a.reshape(n_atoms, n_species * config.n_radial, -1)


def invariants(a: jax.Array, basis: Basis, config: AceConfig) -> jax.Array:
    """B_i: (N, basis.size), the 2-, 3- and 4-body invariants of the atomic base."""
    parts = [a[:, :, 0]]
    if config.body_order >= 3:
        for lv in range(config.l_max + 1):
            block = a[:, :, lv * lv : (lv + 1) * (lv + 1)]
            gram = jnp.einsum("nkm,nqm->nkq", block, block)
            parts.append(gram[:, basis.pairs[:, 0], basis.pairs[:, 1]])
    for (l1, l2, l3), chans in basis.triples:
        cg = jnp.asarray(e3nn.clebsch_gordan(l1, l2, l3), a.dtype)
        a1 = a[:, chans[:, 0], l1 * l1 : (l1 + 1) * (l1 + 1)]
        a2 = a[:, chans[:, 1], l2 * l2 : (l2 + 1) * (l2 + 1)]
        a3 = a[:, chans[:, 2], l3 * l3 : (l3 + 1) * (l3 + 1)]
        parts.append(jnp.einsum("abc,nta,ntb,ntc->nt", cg, a1, a2, a3))
    return jnp.concatenate(parts, axis=1)


class AceDescriptor(nn.Module):
    """Per-atom ACE invariants (no parameters)."""

    n_species: int
    config: AceConfig

    @nn.compact
    def __call__(self, graph: EdgeGraph) -> jax.Array:
        basis = Basis.of(self.config, self.n_species)
        return invariants(atomic_base(graph, self.config, self.n_species), basis, self.config)


class AceLinear(nn.Module):
    """E_i = Σ_k c_{Z_i, k} B_{i,k}: linear (hence fitted in closed form) in ``coefficients``."""

    n_species: int
    config: AceConfig
    sorted_receivers: bool = False

    @nn.compact
    def __call__(self, graph: EdgeGraph) -> jax.Array:
        basis = Basis.of(self.config, self.n_species)
        b = invariants(atomic_base(graph, self.config, self.n_species), basis, self.config)
        dtype = param_dtype(self.config)
        coefficients = self.param(
            "coefficients",
            nn.initializers.normal(stddev=1e-2 / np.sqrt(basis.size), dtype=dtype),
            (self.n_species, basis.size),
        )
        mask = jnp.asarray(basis.coefficient_mask(self.config, self.n_species), dtype)
        return jnp.sum((coefficients * mask)[graph.species] * b.astype(dtype), axis=-1)


class AceGnn(nn.Module):
    """ACE invariants as node features, then message passing over the normalised adjacency
    (edges weighted by the cutoff envelope, D^{-1/2} W D^{-1/2} with self loops), Xavier init."""

    n_species: int
    config: AceConfig
    sorted_receivers: bool = False

    @nn.compact
    def __call__(self, graph: EdgeGraph) -> jax.Array:
        cfg, dtype = self.config, param_dtype(self.config)
        b = AceDescriptor(self.n_species, cfg)(graph).astype(dtype)
        b = jnp.sign(b) * jnp.log1p(jnp.abs(b))  # tame the products' range
        xavier = nn.initializers.xavier_uniform()
        embed = nn.Embed(self.n_species, cfg.hidden, embedding_init=xavier, param_dtype=dtype)(graph.species)
        h = nn.Dense(cfg.hidden, kernel_init=xavier, param_dtype=dtype)(b) + embed
        r = jnp.sqrt(jnp.sum(graph.vectors**2, axis=-1))
        w = jnp.where(r < cfg.cutoff, 0.5 * (jnp.cos(jnp.pi * jnp.minimum(r, cfg.cutoff) / cfg.cutoff) + 1.0), 0.0)
        w = w * graph.edge_mask
        n_atoms = graph.species.shape[0]
        degree = jax.ops.segment_sum(w, graph.senders, num_segments=n_atoms) + 1.0
        norm = w / jnp.sqrt(degree[graph.senders] * degree[graph.receivers])
        for _ in range(cfg.n_layers):
            msg = jax.ops.segment_sum(norm[:, None] * h[graph.receivers], graph.senders, num_segments=n_atoms)
            h = h + nn.silu(nn.Dense(cfg.hidden, kernel_init=xavier, param_dtype=dtype)(msg + h / degree[:, None]))
        h = nn.silu(nn.Dense(cfg.hidden, kernel_init=xavier, param_dtype=dtype)(h))
        return nn.Dense(1, kernel_init=xavier, param_dtype=dtype)(h)[:, 0]


def make_linear(config: AceConfig, n_species: int, sorted_receivers: bool = False) -> AceLinear:
    return make_module(AceLinear, AceConfig, "ace-linear", config, n_species, sorted_receivers)


def make_gnn(config: AceConfig, n_species: int, sorted_receivers: bool = False) -> AceGnn:
    return make_module(AceGnn, AceConfig, "ace-gnn", config, n_species, sorted_receivers)


def build_linear(config: AceConfig, stats) -> Potential:
    module = make_linear(config, len(stats.species))
    return Potential(module, reference_energies(stats, len(stats.species), True, "ace-linear"))


def build_gnn(config: AceConfig, stats) -> Potential:
    module = make_gnn(config, len(stats.species))
    return Potential(module, reference_energies(stats, len(stats.species), True, "ace-gnn"))
