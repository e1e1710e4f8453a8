"""NeuralIL (Montes-Campos, Carrete et al. 2022): spherical Bessel descriptors + MLP, in Flax.

Written from docs/models/neuralil.md (basis §1, descriptor §2, model §4); parameter paths equal the
released checkpoint's, so its weights load 1:1 (:mod:`mlffbench_neuralil.weights`). How the
descriptor is computed here (one pass over the edges, numerical safeguards): §6 there.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from mlffbench.backends.jax.models import init_params, make_module, param_shapes, reference_energies  # noqa: F401
from mlffbench.backends.jax.models import param_dtype as _param_dtype
from mlffbench.backends.jax.potential import EdgeGraph, Potential
from mlffbench.data.stats import ModelStats
from mlffbench_neuralil.config import NeuralilConfig

LAYERNORM_EPS = 1e-6
MORSE_FLOOR = 0.01  # a, b, d = 0.01 + v² (docs/models/neuralil.md §4)


# --------------------------------------------------------------------------- tables (numpy)
@functools.cache
def bessel_roots(l: int, count: int) -> tuple[float, ...]:
    """The first ``count`` positive zeros of j_l (float64): u_{0,n} = (n+1)π; the zeros of
    j_l interlace those of j_{l-1}, so each is bracketed by two consecutive zeros of j_{l-1}."""
    if l == 0:
        return tuple(float((n + 1) * math.pi) for n in range(count))
    from scipy.optimize import brentq
    from scipy.special import spherical_jn

    prev = bessel_roots(l - 1, count + 1)
    return tuple(
        float(brentq(lambda x: spherical_jn(l, x), prev[n], prev[n + 1], xtol=1e-15, rtol=4 * np.finfo(float).eps))
        for n in range(count)
    )


@functools.cache
def basis_tables(n_max: int) -> tuple[dict[str, np.ndarray], ...]:
    """Per angular order l: ``roots`` (n_l + 1,), ``c1``, ``c2`` (n_l,), ``T`` (n_l, n_l),
    with n_l = n_max - l + 1 functions, in float64. (The original computes roots and c¹/c² in
    float32; rounding them so was tried and matches the original's float64 and float32
    reference numbers worse, so the tables are exact.)"""
    from scipy.special import spherical_jn

    out = []
    for l in range(n_max + 1):
        n_l = n_max - l + 1
        u = np.asarray(bessel_roots(l, n_l + 1), np.float64)
        norm = np.sqrt(2.0 / (u[:-1] ** 2 + u[1:] ** 2))
        c1 = u[1:] / spherical_jn(l + 1, u[:-1]) * norm
        c2 = u[:-1] / spherical_jn(l + 1, u[1:]) * norm
        # orthogonalisation: d_0 = 1, g_0 = f_0; g_n = (f_n + sqrt(e_n/d_{n-1}) g_{n-1}) / sqrt(d_n)
        w = u**2
        t = np.zeros((n_l, n_l))
        t[0, 0] = 1.0
        d_prev = 1.0
        for n in range(1, n_l):
            e = w[n - 1] * w[n + 1] / ((w[n - 1] + w[n]) * (w[n] + w[n + 1]))
            d = 1.0 - e / d_prev
            t[n] = math.sqrt(e / d_prev) * t[n - 1]
            t[n, n] += 1.0
            t[n] /= math.sqrt(d)
            d_prev = d
        out.append({"roots": u, "c1": c1, "c2": c2, "T": t})
    return tuple(out)


def _double_factorial(n: int) -> int:
    return math.prod(range(n, 0, -2)) if n > 0 else 1


# --------------------------------------------------------------------------- special functions
def _series_terms(l: int) -> int:
    """Terms of the j_l power series for x < max(l, 1): until the next term's bound there is
    below 1e-18 of the first (at least 8)."""
    x0 = max(l, 1)
    bound, k = 1.0, 0
    while bound > 1e-18 or k < 8:
        k += 1
        bound *= 0.5 * x0 * x0 / (k * (2 * l + 2 * k + 1))
    return k + 1


def _series_coefficients(ls: np.ndarray) -> np.ndarray:
    """(terms, K): a_k = 1 / (k! (2l+2k+1)!!) for the column orders ``ls``."""
    terms = max(_series_terms(int(l)) for l in ls)
    return np.asarray(
        [[1.0 / (math.factorial(k) * _double_factorial(2 * int(l) + 2 * k + 1)) for l in ls] for k in range(terms)]
    )


def spherical_jn_columns(x: jax.Array, ls) -> jax.Array:
    """j_{ls[k]}(x[..., k]) for x ≥ 0 (one order per column, ``ls`` static): finite, with
    finite derivatives of any order, everywhere including x = 0.

    x < max(l, 1): the power series x^l Σ_k (-x²/2)^k / (k! (2l+2k+1)!!) (no cancellation,
    exact at 0). Otherwise: j_0 = sin x / x, j_1 = j_0/x - cos x / x and the upward
    recurrence j_{m+1} = (2m+1)/x j_m - j_{m-1}, stable for x ≥ l. The branches are
    selected with the "double where": each sees only arguments where it is accurate.
    All orders are evaluated together (few operations, quick to compile).
    """
    ls = np.asarray(ls, dtype=int).reshape(-1)
    l_max = int(ls.max())
    x0 = np.maximum(ls, 1).astype(np.float64)
    small = x < x0
    xs = jnp.where(small, x, 0.0)
    xb = jnp.where(small, x0, x)
    # series, Horner form in y = -x²/2, times x^l
    coeffs = _series_coefficients(ls)
    y = -0.5 * xs * xs
    acc = jnp.broadcast_to(jnp.asarray(coeffs[-1], x.dtype), x.shape)
    for c in coeffs[-2::-1]:
        acc = acc * y + jnp.asarray(c, x.dtype)
    power = jnp.ones_like(xs)
    for p in range(1, l_max + 1):
        power = jnp.where(ls >= p, power * xs, power)
    series = acc * power
    # upward recurrence
    inv = 1.0 / xb
    j_prev = jnp.sin(xb) * inv
    large = j_prev
    if l_max >= 1:
        j_cur = (j_prev - jnp.cos(xb)) * inv
        large = jnp.where(ls == 1, j_cur, large)
        for m in range(1, l_max):
            j_prev, j_cur = j_cur, (2 * m + 1) * inv * j_cur - j_prev
            large = jnp.where(ls == m + 1, j_cur, large)
    return jnp.where(small, series, large)


def spherical_jn(l: int, x: jax.Array) -> jax.Array:
    """j_l(x) for x ≥ 0 (see :func:`spherical_jn_columns`)."""
    return spherical_jn_columns(jnp.asarray(x)[..., None], [l])[..., 0]


def real_spherical_harmonics(unit: jax.Array, l_max: int) -> list[jax.Array]:
    """Real orthonormal Y_lm of (E, 3) unit vectors: a list over l of (E, 2l+1) arrays.

    Y_lm ∝ Q_l^|m|(z) · Re/Im (x + iy)^|m| with Q_l^m = P_l^m / (1-z²)^{m/2} (a polynomial),
    so any vector is fine (a zero vector gives finite values; its radial factor is what
    vanishes). The normalisation makes Σ_m Y_lm(u) Y_lm(v) = (2l+1)/(4π) P_l(u·v).
    """
    x, y, z = unit[..., 0], unit[..., 1], unit[..., 2]
    cos_m, sin_m = [jnp.ones_like(x)], [jnp.zeros_like(x)]
    for _ in range(l_max):
        c, s = cos_m[-1], sin_m[-1]
        cos_m.append(x * c - y * s)
        sin_m.append(x * s + y * c)
    # q[l][m] = Q_l^m(z), m ≤ l
    q: list[list[Any]] = [[None] * (l + 1) for l in range(l_max + 1)]
    for m in range(l_max + 1):
        q[m][m] = jnp.full_like(z, float(_double_factorial(2 * m - 1)))
        if m + 1 <= l_max:
            q[m + 1][m] = (2 * m + 1) * z * q[m][m]
        for l in range(m + 2, l_max + 1):
            q[l][m] = ((2 * l - 1) * z * q[l - 1][m] - (l + m - 1) * q[l - 2][m]) / (l - m)
    out = []
    for l in range(l_max + 1):
        base = (2 * l + 1) / (4 * math.pi)
        cols = []
        for m in range(-l, l + 1):
            am = abs(m)
            if m == 0:
                cols.append(math.sqrt(base) * q[l][0])
                continue
            norm = math.sqrt(2 * base * math.factorial(l - am) / math.factorial(l + am))
            cols.append(norm * q[l][am] * (cos_m[am] if m > 0 else sin_m[am]))
        out.append(jnp.stack(cols, axis=-1))
    return out


# --------------------------------------------------------------------------- descriptors
@functools.cache
def _radial_layout(n_max: int, cutoff: float):
    """Static arrays for evaluating all radial functions at once: the Bessel arguments'
    scales u/r_c and orders per column, the two columns and coefficients of each f_{l,n},
    and the block-diagonal orthogonalisation matrix (l-major, then n)."""
    scales: list[float]
    lo: list[int]
    hi: list[int]
    scales, orders, lo, hi, c1, c2 = [], [], [], [], [], []
    blocks = []
    for l, tab in enumerate(basis_tables(n_max)):
        first = len(scales)
        scales.extend(tab["roots"] / cutoff)
        orders.extend([l] * len(tab["roots"]))
        n_l = len(tab["c1"])
        lo.extend(range(first, first + n_l))
        hi.extend(range(first + 1, first + n_l + 1))
        c1.extend(tab["c1"] * cutoff**-1.5)
        c2.extend(tab["c2"] * cutoff**-1.5)
        blocks.append(tab["T"])
    n = sum(b.shape[0] for b in blocks)
    t = np.zeros((n, n))
    k = 0
    for b in blocks:
        t[k : k + b.shape[0], k : k + b.shape[0]] = b
        k += b.shape[0]
    index = functools.partial(np.asarray, dtype=np.int32)  # int32: valid index arrays with and without x64
    return (np.asarray(scales), np.asarray(orders), index(lo), index(hi), np.asarray(c1), np.asarray(c2), t)


def radial_basis_flat(r: jax.Array, config: NeuralilConfig) -> jax.Array:
    """g(r) in coefficient order (l-major, then n): (..., n_coeffs), exactly 0 for r ≥ r_c."""
    rc = config.cutoff
    scales, orders, lo, hi, c1, c2, t = _radial_layout(config.n_max, rc)
    inside = r < rc
    rs = jnp.where(inside, r, 0.0)
    j = spherical_jn_columns(rs[..., None] * jnp.asarray(scales, r.dtype), orders)
    f = jnp.asarray(c1, r.dtype) * j[..., lo] - jnp.asarray(c2, r.dtype) * j[..., hi]
    g = jnp.einsum("...m,nm->...n", f, jnp.asarray(t, r.dtype))
    return jnp.where(inside[..., None], g, 0.0)


def species_pairs(n_species: int) -> tuple[np.ndarray, np.ndarray]:
    """Upper-triangle species pairs a ≤ b, row-major."""
    a, b = np.triu_indices(n_species)
    return a.astype(np.int32), b.astype(np.int32)


def _edge_geometry(graph: EdgeGraph, cutoff: float):
    """Edge lengths and unit vectors; edges beyond r_c (and padding edges) are flagged out.

    A zero-length edge (two atoms on one point) gets r = 0 with zero gradient and a zero
    direction, like the original's custom square root."""
    vec = graph.vectors
    r2 = jnp.sum(vec * vec, axis=-1)
    inside = graph.edge_mask & (r2 < cutoff * cutoff)
    positive = inside & (r2 > 0)
    r = jnp.sqrt(jnp.where(positive, r2, 1.0))
    unit = jnp.where(positive[:, None], vec / r[:, None], 0.0)
    r = jnp.where(positive, r, jnp.where(inside, 0.0, cutoff))
    return r, unit, inside, positive


def descriptors(graph: EdgeGraph, n_species: int, config: NeuralilConfig, sorted_receivers: bool = False) -> jax.Array:
    """Power-spectrum descriptors (N, n_pairs, n_coeffs) of every atom (receivers) from its
    incoming edges (senders = neighbours)."""
    n_atoms = graph.species.shape[0]
    r, unit, inside, _ = _edge_geometry(graph, config.cutoff)
    g = radial_basis_flat(r, config)  # (E, n_coeffs)
    y = jnp.concatenate(real_spherical_harmonics(unit, config.n_max), axis=-1)  # (E, (n_max+1)²)
    # per edge: g_{l,n}(r) Y_lm(r̂) for every (l, n, m)
    q_index, lm_index, _ = _feature_layout(config.n_max)
    feats = jnp.where(inside[:, None], g[:, q_index] * y[:, lm_index], 0.0)  # (E, n_feats)
    neigh_species = jnp.where(graph.edge_mask, graph.species[graph.senders], 0)
    segment = graph.receivers * n_species + neigh_species
    c = jax.ops.segment_sum(feats, segment, num_segments=n_atoms * n_species, indices_are_sorted=False).reshape(
        n_atoms, n_species, -1
    )
    ia, ib = species_pairs(n_species)
    prod = c[:, ia, :] * c[:, ib, :]  # (N, n_pairs, n_feats)
    return jnp.einsum("npf,fq->npq", prod, jnp.asarray(_feature_layout(config.n_max)[2], prod.dtype))


@functools.cache
def _feature_layout(n_max: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every (l, n, m): its coefficient index q = (l, n), its index l² + l + m into the
    concatenated Y_lm, and the 0/1 matrix that sums the features over m into q."""
    lm_index: list[int]
    q_index, lm_index, q = [], [], 0
    for l in range(n_max + 1):
        for _n in range(n_max - l + 1):
            q_index.extend([q] * (2 * l + 1))
            lm_index.extend(range(l * l, (l + 1) * (l + 1)))
            q += 1
    m_sum = np.zeros((len(q_index), q))
    m_sum[np.arange(len(q_index)), q_index] = 1.0
    return np.asarray(q_index, np.int32), np.asarray(lm_index, np.int32), m_sum


# --------------------------------------------------------------------------- modules
class Core(nn.Module):
    """Inlet Dense → swish; Stage_k Dense → LayerNorm → swish; Outlet Dense(1) → swish."""

    widths: tuple[int, ...]
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        pdt = self.param_dtype
        x = nn.swish(nn.Dense(self.widths[0], param_dtype=pdt, name="Inlet")(x))
        for k, width in enumerate(self.widths[1:], start=1):
            x = nn.Dense(width, param_dtype=pdt, name=f"Stage_{k}")(x)
            x = nn.LayerNorm(epsilon=LAYERNORM_EPS, param_dtype=pdt, name=f"LayerNorm_{k - 1}")(x)
            x = nn.swish(x)
        return nn.swish(nn.Dense(1, param_dtype=pdt, name="Outlet")(x))


def _bump(t):
    """φ(t) = exp(-1/t) for t > 0, else 0 (with finite derivatives everywhere)."""
    pos = t > 0
    return jnp.where(pos, jnp.exp(-1.0 / jnp.where(pos, t, 1.0)), 0.0)


def switch(r: jax.Array, r_switch: jax.Array, cutoff: float) -> jax.Array:
    """s(r) = 1 - g((r² - r_sw²)/(r_c² - r_sw²)), g(t) = φ(t)/(φ(t) + φ(1-t)): 1 below r_sw,
    0 from r_c on, infinitely differentiable."""
    t = (r * r - r_switch**2) / (cutoff * cutoff - r_switch**2)
    a, b = _bump(t), _bump(1.0 - t)
    return 1.0 - a / (a + b)


class Morse(nn.Module):
    """Per-atom repulsive Morse energies (N,) of ``NeuralILwithMorse`` (docs/models/neuralil.md §4)."""

    n_species: int
    cutoff: float
    param_dtype: Any = jnp.float32
    sorted_receivers: bool = False

    @nn.compact
    def __call__(self, graph: EdgeGraph, r, positive):
        v = nn.Embed(self.n_species, 3, param_dtype=self.param_dtype, name="embed")(
            jnp.where(graph.atom_mask, graph.species, 0)
        )
        w = self.param("switch_param", nn.initializers.lecun_normal(), (1, 1), self.param_dtype)
        abd = MORSE_FLOOR + v * v  # (N, 3): a, b, d
        a_i, b_i, d_i = (abd[graph.receivers, k] for k in range(3))
        a_j, b_j, d_j = (abd[graph.senders, k] for k in range(3))
        rho = (a_j * r + 0.25 * jnp.log(a_i * d_i / (a_j * d_j)) + 0.5 * (a_i * b_i - a_j * b_j)) / (a_i + a_j)
        contribution = d_i * jnp.exp(-2.0 * a_i * (2.0 * rho - b_i))
        r_switch = 0.5 * (1.0 + jax.nn.sigmoid(w[0, 0])) * self.cutoff
        pair = jnp.where(positive, switch(r, r_switch, self.cutoff) * contribution, 0.0)
        return 0.5 * jax.ops.segment_sum(
            pair, graph.receivers, num_segments=graph.species.shape[0], indices_are_sorted=self.sorted_receivers
        )


class NeuralilModel(nn.Module):
    """Per-atom energies (N,) from an :class:`EdgeGraph` (the JAX backend contract).

    ``sorted_receivers``: promise that ``graph.receivers`` is non-decreasing (the core's
    batches keep it); lets the Morse segment sum take the sorted path.
    """

    n_species: int
    config: NeuralilConfig
    sorted_receivers: bool = False

    def setup(self):
        cfg = self.config
        pdt = _param_dtype(cfg)
        self.embed = nn.Embed(self.n_species, cfg.embed_d, param_dtype=pdt)
        self.core_model = Core(widths=cfg.core_widths, param_dtype=pdt)
        self.denormalizer = nn.Dense(1, param_dtype=pdt)
        if cfg.morse:
            self.morse = Morse(self.n_species, cfg.cutoff, param_dtype=pdt, sorted_receivers=self.sorted_receivers)

    def __call__(self, graph: EdgeGraph) -> jax.Array:
        return self.energies(graph)[0]

    def energies(self, graph: EdgeGraph):
        """(total per-atom energies, Morse part or None, descriptors)."""
        cfg = self.config
        species = jnp.where(graph.atom_mask, graph.species, 0)
        p = descriptors(graph, self.n_species, cfg, self.sorted_receivers)
        x = jnp.concatenate([p.reshape(p.shape[0], -1), self.embed(species).astype(p.dtype)], axis=-1)
        e = self.denormalizer(self.core_model(x))[:, 0]
        morse = None
        if cfg.morse:
            r, _, _, positive = _edge_geometry(graph, cfg.cutoff)
            morse = self.morse(graph, r, positive)
            e = e + morse
        mask = graph.atom_mask.astype(e.dtype)
        return e * mask, (None if morse is None else morse * mask), p


def make_model(config: NeuralilConfig, n_species: int, sorted_receivers: bool = False) -> NeuralilModel:
    return make_module(NeuralilModel, NeuralilConfig, "neuralil", config, n_species, sorted_receivers)


def build(config: NeuralilConfig, stats: ModelStats) -> Potential:
    """The backend-level potential for ``config`` and the training statistics ``stats``.

    ``stats`` needs ``species`` (atomic numbers, the dataset's species order) and
    ``reference_energies`` (eV, one per species); the latter are used only when
    ``config.species_energy_shift`` is on (the faithful model has none, docs/models/training.md §7).
    The core's batches sort edges by receiver, which the model is told.
    """
    species = tuple(int(z) for z in stats.species)
    module = make_model(config, len(species), sorted_receivers=True)
    return Potential(module, reference_energies(stats, len(species), config.species_energy_shift, "neuralil"))
