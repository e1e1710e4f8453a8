"""SO3krates in Flax (Frank, Unke, Müller 2022; Frank, Unke, Müller, Chmiela 2024).

Written from the papers and docs/models/so3krates.md. For atom i (the centre, mlffbench's
receiver) and a neighbour j within r_c (the sender), r_ij = r_j − r_i, r = |r_ij|:

* geometry: radial basis b(r) (PhysNet: exp(−β (e^{−r} − μ_k)²), K centres μ_k from e^{−r_c}
  to 1, β = (2/K · (1 − e^{−r_c}))^{−2}; or Bernstein polynomials in e^{−γ r}), a smooth
  cutoff φ(r) (cosine ½(cos πr/r_c + 1); exponential exp(−r²/(r_c² − r²)); PhysNet
  polynomial), and the real spherical harmonics Y^l(r̂_ij) of the degrees l = 1..L
  (orthonormal on the sphere: e3nn's "integral" normalisation);
* state: invariant features x_i ∈ R^F (x_i⁰ = species embedding) and Euclidean variables
  χ_i^l ∈ R^{2l+1} (χ_i⁰ = 0);
* per-degree invariants (no Clebsch–Gordan products): c^l(v) = Σ_m v_m² / √(2l+1);
* attention block (per layer): filters w_ij = MLP_rad(b(r)) + MLP_sph(c(χ_j − χ_i))
  (two of them, w¹ for the features split into H heads, w² for the Euclidean variables
  split into one head per degree); coefficients
  α_ij^h = φ(r) · Σ_f (W_q^h x_i^h)_f w_ij^{h}_f (W_k^h x_j^h)_f / √(F/H) (no softmax);
  updates x_i += Σ_j α_ij^h W_v^h x_j^h (per head) and χ_i^l += Σ_j α_ij^{(l)} Y^l(r̂_ij);
* exchange block: [a_i ‖ s_i] = Dense([x_i ‖ c(χ_i)]) (F + L outputs); x_i += a_i,
  χ_i^l += s_i^l χ_i^l;
* optional residual MLPs and layer norms (mlff 1.0 switches, off in the published model);
* atomic energy: E_i = Dense(1)(σ(Dense(R)(x_i))), then optionally a per-species scale and
  shift; mlffbench adds the per-species reference energies (config ``species_energy_shift``).

Parameter names follow the authors' mlff 1.0 modules, so their parameter trees map one to
one (:mod:`mlffbench_so3krates.weights`).
"""

from __future__ import annotations

from typing import Any

import e3nn_jax as e3nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from mlffbench.backends.jax.models import init_params, make_module, param_shapes, reference_energies  # noqa: F401
from mlffbench.backends.jax.models import param_dtype as _param_dtype
from mlffbench.backends.jax.potential import EdgeGraph, Potential
from mlffbench.data.stats import ModelStats
from mlffbench_so3krates.config import So3kratesConfig

# γ of the Bernstein basis (not trained): the authors' 0.9448630629184640, which their code
# stores as a float32 (also in a float64 model); the float32 value is used here, as theirs.
BERNSTEIN_GAMMA = float(np.float32(0.9448630629184640))


def _activation(name: str):
    return nn.silu if name == "silu" else (lambda u: u)


def irreps(degrees: tuple[int, ...]) -> e3nn.Irreps:
    """The Euclidean variables' irreps: one copy of each degree, parity (−1)^l (those of Y^l)."""
    return e3nn.Irreps("+".join(f"1x{lv}{'e' if lv % 2 == 0 else 'o'}" for lv in degrees))


def degree_index(degrees: tuple[int, ...]) -> np.ndarray:
    """(Σ 2l+1,) the degree slot (0..len-1) of every component of a Euclidean-variable vector."""
    return np.concatenate([np.full(2 * lv + 1, n) for n, lv in enumerate(degrees)]).astype(np.int32)


def contraction(v: jax.Array, degrees: tuple[int, ...]) -> jax.Array:
    """c^l(v) = Σ_m v_m² / √(2l+1) per degree: (..., Σ 2l+1) → (..., len(degrees))."""
    parts, start = [], 0
    for lv in degrees:
        block = v[..., start : start + 2 * lv + 1]
        parts.append(jnp.sum(block * block, axis=-1) / np.sqrt(2 * lv + 1))
        start += 2 * lv + 1
    return jnp.stack(parts, axis=-1)


def repeat_degrees(s: jax.Array, degrees: tuple[int, ...]) -> jax.Array:
    """(..., len(degrees)) → (..., Σ 2l+1): each degree's scalar on its 2l+1 components."""
    return s[..., degree_index(degrees)]


def radial_basis(r: jax.Array, config: So3kratesConfig) -> jax.Array:
    """(E, n_rbf) radial basis functions of the distances r (E,)."""
    k = config.n_rbf
    rc = config.cutoff
    if config.radial_basis == "physnet":
        offsets = jnp.linspace(np.exp(-rc), 1.0, k, dtype=r.dtype)
        beta = ((2.0 / k) * (1.0 - np.exp(-rc))) ** -2
        return jnp.exp(-beta * (jnp.exp(-r)[:, None] - offsets) ** 2)
    # Bernstein: C(K−1, k) x^k (1−x)^{K−1−k}, x = exp(−γ r), evaluated in logs as the authors do
    from scipy.special import gammaln

    n = np.arange(k)
    log_binom = jnp.asarray(gammaln(k) - gammaln(n + 1) - gammaln(k - n), r.dtype)
    x = jnp.exp(-BERNSTEIN_GAMMA * r)[:, None]
    inside = (x != 0) & (x != 1)
    xs = jnp.where(inside, x, 0.5)
    log_b = log_binom + jnp.where(n != 0, n * jnp.log(xs), 0.0) + jnp.where(n[::-1] != 0, n[::-1] * jnp.log1p(-xs), 0.0)
    return jnp.where(inside, jnp.exp(log_b), 0.0)


def cutoff_function(r: jax.Array, config: So3kratesConfig) -> jax.Array:
    """φ(r): 1 at r = 0, 0 with all its derivatives used here at and beyond r_c (smooth)."""
    rc = config.cutoff
    inside = r < rc
    x = jnp.where(inside, r, 0.0)
    if config.cutoff_fn == "cosine":
        f = 0.5 * (jnp.cos(x * np.pi / rc) + 1.0)
    elif config.cutoff_fn == "exponential":
        f = jnp.exp(-(x**2) / ((rc - x) * (rc + x)))
    else:  # PhysNet's polynomial
        u = x / rc
        f = 1.0 - 6.0 * u**5 + 15.0 * u**4 - 10.0 * u**3
    return jnp.where(inside, f, 0.0)


def spherical_harmonics(vectors: jax.Array, degrees: tuple[int, ...]) -> jax.Array:
    """(E, Σ 2l+1) real spherical harmonics of the unit vectors, orthonormal on the sphere."""
    return e3nn.spherical_harmonics(irreps(degrees), vectors, normalize=True, normalization="integral").array


class AttentionBlock(nn.Module):
    """Invariant and Euclidean-variable updates by attention (no tensor products)."""

    degrees: tuple[int, ...]
    n_heads: int
    qk_nonlinearity: str
    message_normalization: str
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, ev, rbf, ylm, cut, idx_i, idx_j, sorted_idx=False):
        n, f = x.shape
        n_deg = len(self.degrees)
        pdt = self.param_dtype
        qk = _activation(self.qk_nonlinearity)
        c_ij = contraction(ev[idx_j] - ev[idx_i], self.degrees)  # (E, L): ||χ_j^l − χ_i^l||² / √(2l+1)

        def dense(features, name):
            return nn.Dense(features, param_dtype=pdt, name=name)

        def filt(k):
            w = dense(f, f"radial_filter{k}_layer_2")(nn.silu(dense(f, f"radial_filter{k}_layer_1")(rbf)))
            w = w + dense(f, f"spherical_filter{k}_layer_2")(
                nn.silu(dense(f // 4, f"spherical_filter{k}_layer_1")(c_ij))
            )
            return w  # (E, F)

        w1 = filt(1).reshape(-1, self.n_heads, f // self.n_heads)
        w2 = filt(2).reshape(-1, n_deg, f // n_deg)

        def heads(name, h):
            init = nn.initializers.lecun_normal(batch_axis=(0,))
            return self.param(name, init, (h, f // h, f // h), pdt)

        wq1, wk1, wv1 = heads("Wq1", self.n_heads), heads("Wk1", self.n_heads), heads("Wv1", self.n_heads)
        wq2, wk2 = heads("Wq2", n_deg), heads("Wk2", n_deg)
        x1 = x.reshape(n, self.n_heads, -1)
        x2 = x.reshape(n, n_deg, -1)

        def proj(w, xh):
            return jnp.einsum("hij,nhj->nhi", w.astype(xh.dtype), xh)

        q1, k1 = qk(proj(wq1, x1))[idx_i], qk(proj(wk1, x1))[idx_j]
        q2, k2 = qk(proj(wq2, x2))[idx_i], qk(proj(wk2, x2))[idx_j]
        if self.message_normalization == "sqrt_num_features":
            nc1, nc2 = np.sqrt(f // self.n_heads), np.sqrt(f // n_deg)
        else:
            nc1 = nc2 = 1.0
        alpha1 = jnp.sum(q1 * w1 * k1, axis=-1) / nc1 * cut[:, None]  # (E, H)
        alpha2 = jnp.sum(q2 * w2 * k2, axis=-1) / nc2 * cut[:, None]  # (E, L)

        def segsum(v):
            return jax.ops.segment_sum(v, idx_i, num_segments=n, indices_are_sorted=sorted_idx)

        v_j = proj(wv1, x1)[idx_j]  # (E, H, F/H)
        x_att = segsum(alpha1[:, :, None] * v_j).reshape(n, f)
        ev_att = segsum(repeat_degrees(alpha2, self.degrees) * ylm)
        return x_att, ev_att


class ExchangeBlock(nn.Module):
    """Features ↔ Euclidean variables: [a ‖ s] = Dense([x ‖ c(χ)]); x += a, χ^l += s^l χ^l."""

    degrees: tuple[int, ...]
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, ev):
        f = x.shape[-1]
        y = jnp.concatenate([x, contraction(ev, self.degrees)], axis=-1)
        y = nn.Dense(f + len(self.degrees), param_dtype=self.param_dtype, name="mlp_layer_2")(y)
        return y[:, :f], repeat_degrees(y[:, f:], self.degrees) * ev


class So3kratesLayer(nn.Module):
    config: So3kratesConfig
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, ev, rbf, ylm, cut, idx_i, idx_j, sorted_idx=False):
        cfg, pdt = self.config, self.param_dtype
        f = x.shape[-1]
        x_att, ev_att = AttentionBlock(
            cfg.degrees, cfg.n_heads, cfg.qk_nonlinearity, cfg.message_normalization, pdt, name="attention_block"
        )(x, ev, rbf, ylm, cut, idx_i, idx_j, sorted_idx)
        x, ev = x + x_att, ev + ev_att
        if cfg.layer_norm_1:
            x = nn.LayerNorm(param_dtype=pdt, name="layer_normalization_1")(x)

        def residual_mlp(x, k):
            y = nn.Dense(f, param_dtype=pdt, name=f"res_mlp_{k}_layer_1")(nn.silu(x))
            return x + nn.Dense(f, param_dtype=pdt, name=f"res_mlp_{k}_layer_2")(nn.silu(y))

        if cfg.residual_mlp_1:
            x = residual_mlp(x, 1)
        x_ex, ev_ex = ExchangeBlock(cfg.degrees, pdt, name="exchange_block")(x, ev)
        x, ev = x + x_ex, ev + ev_ex
        if cfg.residual_mlp_2:
            x = residual_mlp(x, 2)
        if cfg.layer_norm_2:
            x = nn.LayerNorm(param_dtype=pdt, name="layer_normalization_2")(x)
        return x, ev


class So3kratesModel(nn.Module):
    """Per-atom energies (N,) from an :class:`EdgeGraph` (the JAX backend contract).

    ``sorted_receivers``: promise that ``graph.receivers`` is non-decreasing (the core's
    batches); the receivers are the centres i of the aggregations. The Euclidean variables
    after each layer are sown as ``intermediates/layers_{t}/ev`` (the equivariance test).
    """

    n_species: int
    config: So3kratesConfig
    sorted_receivers: bool = False

    @nn.compact
    def __call__(self, graph: EdgeGraph) -> jax.Array:
        cfg = self.config
        pdt = _param_dtype(cfg)
        species = jnp.where(graph.atom_mask, graph.species, 0)
        idx_i, idx_j = graph.receivers, graph.senders
        r_ij = -graph.vectors  # r_j − r_i (the core's vectors point from sender to receiver)
        r2 = jnp.sum(r_ij * r_ij, axis=-1)
        positive = graph.edge_mask & (r2 > 0)
        r = jnp.where(positive, jnp.sqrt(jnp.where(positive, r2, 1.0)), 2.0 * cfg.cutoff + 1.0)
        rbf = radial_basis(r, cfg)
        cut = jnp.where(graph.edge_mask, cutoff_function(r, cfg), 0.0)
        safe_vec = jnp.where(positive[:, None], r_ij, jnp.asarray([1.0, 0.0, 0.0], r_ij.dtype))
        ylm = spherical_harmonics(safe_vec, cfg.degrees)

        x = nn.Embed(self.n_species, cfg.features, param_dtype=pdt, name="embed")(species).astype(r_ij.dtype)
        ev = jnp.zeros((x.shape[0], ylm.shape[-1]), r_ij.dtype)
        for t in range(cfg.n_layers):
            x, ev = So3kratesLayer(cfg, pdt, name=f"layers_{t}")(
                x, ev, rbf, ylm, cut, idx_i, idx_j, self.sorted_receivers
            )
            self.sow("intermediates", f"ev_{t}", ev)

        final_init = nn.initializers.zeros_init() if cfg.output_zero_init else nn.initializers.lecun_normal()
        y = x
        if cfg.regression_dim:
            y = nn.Dense(cfg.regression_dim, param_dtype=pdt, name="energy_dense_regression")(y)
            y = _activation(cfg.energy_activation)(y)
        e = nn.Dense(1, kernel_init=final_init, param_dtype=pdt, name="energy_dense_final")(y)[:, 0]
        if cfg.atomic_scale_shift:
            scales = self.param("atomic_scales", nn.initializers.ones_init(), (self.n_species,), pdt)
            shifts = self.param("energy_offset", nn.initializers.zeros_init(), (self.n_species,), pdt)
            e = e * scales[species].astype(e.dtype) + shifts[species].astype(e.dtype)
        return e


def make_model(config: So3kratesConfig, n_species: int, sorted_receivers: bool = False) -> So3kratesModel:
    return make_module(So3kratesModel, So3kratesConfig, "so3krates", config, n_species, sorted_receivers)


def build(config: So3kratesConfig, stats: ModelStats) -> Potential:
    """The backend-level potential; the core's batches sort edges by receiver (the centres)."""
    species = tuple(int(z) for z in stats.species)
    module = make_model(config, len(species), sorted_receivers=True)
    return Potential(module, reference_energies(stats, len(species), config.species_energy_shift, "so3krates"))
