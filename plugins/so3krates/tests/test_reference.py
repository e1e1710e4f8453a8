"""The flax model against an independent numpy evaluation of the same equations
(docs/models/so3krates.md §1), with the same parameters, in float64.

The numpy stand-in builds its own neighbour lists (all periodic images within r_c), its own
real spherical harmonics (Cartesian formulas, orthonormal on the sphere; any orthonormal
basis of each degree gives the same energies, since the Euclidean variables enter the
energy only through per-degree inner products) and evaluates every block with plain loops
over the layers. Per-atom energies must agree to 1e-9 eV; forces (numpy: central
differences of its own energy, h = 1e-4 Å) to 1e-6 eV/Å, on EAN configuration 0
(periodic, 225 atoms; forces on one atom) and rMD17 aspirin configuration 0 (forces on 2 atoms).

The authors' own code (mlff 1.0) agreed with this model to 2e-16 eV per atom and 1e-17 eV/Å
on the same two configurations (docs/models/so3krates.md §4); it is not a test dependency.
"""

from __future__ import annotations

import itertools
import math

import jax
import numpy as np
import pytest

from mlffbench.backends.jax.testing import Evaluator, flat_params
from mlffbench.testing import ean_config
from mlffbench_so3krates.config import So3kratesConfig
from mlffbench_so3krates.model import BERNSTEIN_GAMMA, build, init_params, make_model

TOL_ATOMIC = 1e-9
TOL_FORCE = 1e-6


def _config(**kw):
    base = {
        "n_layers": 2,
        "features": 24,
        "n_heads": 2,
        "max_degree": 3,
        "n_rbf": 8,
        "regression_dim": 16,
        "residual_mlp_1": True,
        "residual_mlp_2": True,
        "layer_norm_1": True,
        "qk_nonlinearity": "silu",
        "energy_activation": "silu",
        "output_zero_init": False,
        "atomic_scale_shift": True,
        "dtype": "float64",
    }
    return So3kratesConfig(**{**base, **kw})


CASES = {
    "ean": _config(),  # PhysNet basis, cosine cutoff
    "rmd17-aspirin": _config(radial_basis="bernstein", cutoff_fn="exponential", layer_norm_2=True),
}


# ---------------------------------------------------------------- numpy stand-in
def real_sph(u: np.ndarray, lv: int) -> np.ndarray:
    """Orthonormal real spherical harmonics of degree ``lv`` (1..3) of unit vectors u (E, 3)."""
    x, y, z = u[:, 0], u[:, 1], u[:, 2]
    pi = math.pi
    if lv == 1:
        return math.sqrt(3 / (4 * pi)) * np.stack([y, z, x], axis=1)
    if lv == 2:
        return np.stack(
            [
                0.5 * math.sqrt(15 / pi) * x * y,
                0.5 * math.sqrt(15 / pi) * y * z,
                0.25 * math.sqrt(5 / pi) * (3 * z**2 - 1),
                0.5 * math.sqrt(15 / pi) * x * z,
                0.25 * math.sqrt(15 / pi) * (x**2 - y**2),
            ],
            axis=1,
        )
    if lv == 3:
        return np.stack(
            [
                0.25 * math.sqrt(35 / (2 * pi)) * y * (3 * x**2 - y**2),
                0.5 * math.sqrt(105 / pi) * x * y * z,
                0.25 * math.sqrt(21 / (2 * pi)) * y * (5 * z**2 - 1),
                0.25 * math.sqrt(7 / pi) * (5 * z**3 - 3 * z),
                0.25 * math.sqrt(21 / (2 * pi)) * x * (5 * z**2 - 1),
                0.25 * math.sqrt(105 / pi) * (x**2 - y**2) * z,
                0.25 * math.sqrt(35 / (2 * pi)) * x * (x**2 - 3 * y**2),
            ],
            axis=1,
        )
    raise ValueError(lv)


def neighbours(pos, cell, pbc, radius):
    """(i, j, shift vectors) of every pair within ``radius``, all periodic images (brute force)."""
    n = len(pos)
    reach = [
        int(np.ceil(radius / (abs(np.linalg.det(cell)) / np.linalg.norm(np.cross(*np.delete(cell, a, 0)))))) if p else 0
        for a, p in enumerate(pbc)
    ]
    ii, jj, ss = [], [], []
    for s in itertools.product(*[range(-m, m + 1) for m in reach]):
        shift = np.asarray(s, float) @ cell if any(s) else np.zeros(3)
        d = pos[None, :, :] + shift - pos[:, None, :]  # (i, j)
        ok = np.linalg.norm(d, axis=-1) < radius
        if not any(s):
            ok &= ~np.eye(n, dtype=bool)
        i, j = np.nonzero(ok)
        ii.append(i), jj.append(j), ss.append(np.broadcast_to(shift, (len(i), 3)))
    return np.concatenate(ii), np.concatenate(jj), np.concatenate(ss)


def silu(x):
    return x / (1.0 + np.exp(-x))


def dense(p, x):
    return x @ p["kernel"] + p["bias"]


def layer_norm(p, x, eps=1e-6):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * p["scale"] + p["bias"]


def numpy_atomic_energies(params, cfg: So3kratesConfig, species_index, pos, pairs):
    """Atomic energies; ``pairs`` = (i, j, shift) from :func:`neighbours` with a radius ≥ r_c
    (pairs beyond r_c drop out: the cutoff function is 0 there)."""
    p = jax.tree_util.tree_map(np.asarray, params)
    degrees = cfg.degrees
    sizes = [2 * lv + 1 for lv in degrees]
    idx = np.cumsum([0, *sizes])
    i, j, shift = pairs
    r_all = pos[j] + shift - pos[i]
    keep = np.linalg.norm(r_all, axis=1) < cfg.cutoff
    i, j, r_ij = i[keep], j[keep], r_all[keep]
    r = np.linalg.norm(r_ij, axis=1)
    rc, k = cfg.cutoff, cfg.n_rbf
    if cfg.radial_basis == "physnet":
        mu = np.linspace(np.exp(-rc), 1.0, k)
        beta = (2.0 / k * (1 - np.exp(-rc))) ** -2
        rbf = np.exp(-beta * (np.exp(-r)[:, None] - mu) ** 2)
    else:
        x = np.exp(-BERNSTEIN_GAMMA * r)[:, None]
        n = np.arange(k)
        binom = np.asarray([math.comb(k - 1, m) for m in n], float)
        rbf = binom * x**n * (1 - x) ** (k - 1 - n)
    if cfg.cutoff_fn == "cosine":
        cut = 0.5 * (np.cos(np.pi * r / rc) + 1)
    else:
        cut = np.exp(-(r**2) / (rc**2 - r**2))
    unit = r_ij / r[:, None]
    ylm = np.concatenate([real_sph(unit, lv) for lv in degrees], axis=1)

    def contract(v):
        return np.stack(
            [(v[:, idx[a] : idx[a + 1]] ** 2).sum(1) / math.sqrt(2 * lv + 1) for a, lv in enumerate(degrees)], 1
        )

    def rep(s):
        return np.concatenate([np.repeat(s[:, a : a + 1], sz, axis=1) for a, sz in enumerate(sizes)], axis=1)

    act = silu if cfg.qk_nonlinearity == "silu" else (lambda u: u)
    n_at, f, h, nd = len(pos), cfg.features, cfg.n_heads, len(degrees)
    xfeat = p["embed"]["embedding"][species_index]
    chi = np.zeros((n_at, idx[-1]))
    for t in range(cfg.n_layers):
        lp = p[f"layers_{t}"]
        ap = lp["attention_block"]
        dchi = contract(chi[j] - chi[i])

        def filt(kk, ap=ap, dchi=dchi):
            w = dense(ap[f"radial_filter{kk}_layer_2"], silu(dense(ap[f"radial_filter{kk}_layer_1"], rbf)))
            w += dense(ap[f"spherical_filter{kk}_layer_2"], silu(dense(ap[f"spherical_filter{kk}_layer_1"], dchi)))
            return w

        w1, w2 = filt(1).reshape(-1, h, f // h), filt(2).reshape(-1, nd, f // nd)
        x1, x2 = xfeat.reshape(n_at, h, -1), xfeat.reshape(n_at, nd, -1)
        q1 = act(np.einsum("hab,nhb->nha", ap["Wq1"], x1))
        k1 = act(np.einsum("hab,nhb->nha", ap["Wk1"], x1))
        q2 = act(np.einsum("hab,nhb->nha", ap["Wq2"], x2))
        k2 = act(np.einsum("hab,nhb->nha", ap["Wk2"], x2))
        v1 = np.einsum("hab,nhb->nha", ap["Wv1"], x1)
        a1 = (q1[i] * w1 * k1[j]).sum(-1) / math.sqrt(f // h) * cut[:, None]
        a2 = (q2[i] * w2 * k2[j]).sum(-1) / math.sqrt(f // nd) * cut[:, None]
        dx = np.zeros((n_at, h, f // h))
        np.add.at(dx, i, a1[:, :, None] * v1[j])
        dchi_att = np.zeros_like(chi)
        np.add.at(dchi_att, i, rep(a2) * ylm)
        xfeat, chi = xfeat + dx.reshape(n_at, f), chi + dchi_att
        if cfg.layer_norm_1:
            xfeat = layer_norm(lp["layer_normalization_1"], xfeat)
        if cfg.residual_mlp_1:
            xfeat = xfeat + dense(lp["res_mlp_1_layer_2"], silu(dense(lp["res_mlp_1_layer_1"], silu(xfeat))))
        y = dense(lp["exchange_block"]["mlp_layer_2"], np.concatenate([xfeat, contract(chi)], 1))
        xfeat, chi = xfeat + y[:, :f], chi + rep(y[:, f:]) * chi
        if cfg.residual_mlp_2:
            xfeat = xfeat + dense(lp["res_mlp_2_layer_2"], silu(dense(lp["res_mlp_2_layer_1"], silu(xfeat))))
        if cfg.layer_norm_2:
            xfeat = layer_norm(lp["layer_normalization_2"], xfeat)
    y = dense(p["energy_dense_regression"], xfeat)
    y = silu(y) if cfg.energy_activation == "silu" else y
    e = dense(p["energy_dense_final"], y)[:, 0]
    if cfg.atomic_scale_shift:
        e = e * p["atomic_scales"][species_index] + p["energy_offset"][species_index]
    return e


# ---------------------------------------------------------------- the test
def _perturbed(params, seed):
    """Every parameter moved by noise (zero-initialised biases and heads become non-trivial)."""
    rng = np.random.default_rng(seed)
    return jax.tree_util.tree_map(lambda a: np.asarray(a) + 0.2 * rng.normal(size=np.shape(a)), params)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_numpy_stand_in(name, datasets, x64):
    cfg = CASES[name]
    ds = datasets(name)
    numbers, pos, cell, pbc = ean_config(ds, 0)
    species = tuple(sorted({int(z) for z in ds.numbers}))
    params = _perturbed(init_params(make_model(cfg, len(species)), seed=1), seed=2)
    assert "layers_1/attention_block/Wq2" in flat_params(params)
    ev = Evaluator(build, cfg, species, params)
    batch, _ = ev.batch([(numbers, pos, cell, pbc)])
    _, forces, atomic = ev.evaluate(batch)
    index = np.searchsorted(species, numbers)
    pos, cell = np.asarray(pos, float), np.asarray(cell, float)
    pairs = neighbours(pos, cell, pbc, cfg.cutoff + 0.01)  # finite-difference steps stay within the margin
    ref = numpy_atomic_energies(params, cfg, index, pos, pairs)
    assert np.max(np.abs(np.asarray(atomic) - ref)) < TOL_ATOMIC * max(1.0, np.max(np.abs(ref)))
    atoms = (0, 13) if len(pos) < 50 else (140,)
    h = 1e-4
    for a in atoms:
        for c in range(3):
            plus, minus = pos.copy(), pos.copy()
            plus[a, c] += h
            minus[a, c] -= h
            e_plus = numpy_atomic_energies(params, cfg, index, plus, pairs).sum()
            e_minus = numpy_atomic_energies(params, cfg, index, minus, pairs).sum()
            fd = -(e_plus - e_minus) / (2 * h)
            assert abs(float(forces[a, c]) - fd) < TOL_FORCE, (a, c, float(forces[a, c]), fd)
