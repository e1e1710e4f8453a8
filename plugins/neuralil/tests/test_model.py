"""Components of the NeuralIL model: special functions and their safeguards, the radial
basis, the descriptor against an independent brute-force evaluation of the original
formula (with more neighbours than the original's max_neighbors = 35: nothing is
truncated), coincident atoms, the Morse switch, parameters and determinism."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import eval_legendre
from scipy.special import spherical_jn as scipy_jn

from mlffbench.backends.jax.potential import EdgeGraph
from mlffbench.graph.neighbors import neighbor_list
from mlffbench_neuralil.config import NeuralilConfig
from mlffbench_neuralil.model import (
    basis_tables,
    descriptors,
    init_params,
    make_model,
    param_shapes,
    radial_basis_flat,
    real_spherical_harmonics,
    spherical_jn,
    switch,
)
from mlffbench_neuralil.weights import load_weights

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests"))
from brute_force import brute_force_neighbors


def test_spherical_bessel_against_scipy(x64):
    x = np.concatenate([np.linspace(0.0, 25.0, 5001), [1e-12, 1e-6, 0.999999, 1.0, 3.999999, 4.0]])
    for l in range(13):  # every order up to the largest n_max the config allows
        ref = scipy_jn(l, x)
        assert np.abs(np.asarray(spherical_jn(l, jnp.asarray(x))) - ref).max() < 5e-15
        if l <= 8:
            got32 = np.asarray(spherical_jn(l, jnp.asarray(x, jnp.float32)))
            assert np.abs(got32 - ref).max() < 3e-7


def test_spherical_bessel_derivatives_at_zero_and_at_the_branch_switch(x64):
    """j_0(0) = 1, j_l(0) = 0 for l ≥ 1; first and second derivatives finite and exact at 0
    (j_0'' = −1/3, j_1' = 1/3, j_2'' = 2/15) and continuous where the series hands over."""
    expected = {0: (1.0, 0.0, -1 / 3), 1: (0.0, 1 / 3, 0.0), 2: (0.0, 0.0, 2 / 15), 3: (0.0, 0.0, 0.0)}
    for l, values in expected.items():
        f = lambda t, l=l: spherical_jn(l, t)
        got = (f(0.0), jax.grad(f)(0.0), jax.grad(jax.grad(f))(0.0))
        assert np.allclose(got, values, atol=1e-15)
        x0 = float(max(l, 1))
        for x in (x0 - 1e-9, x0 + 1e-9):
            assert float(jax.grad(f)(x)) == pytest.approx(scipy_jn(l, x, derivative=True), abs=1e-12)


def test_real_spherical_harmonics_addition_theorem(x64):
    rng = np.random.default_rng(0)
    u, v = (w / np.linalg.norm(w, axis=1, keepdims=True) for w in rng.normal(size=(2, 40, 3)))
    yu, yv = real_spherical_harmonics(jnp.asarray(u), 6), real_spherical_harmonics(jnp.asarray(v), 6)
    for l in range(7):
        lhs = np.sum(np.asarray(yu[l]) * np.asarray(yv[l]), axis=1)
        rhs = (2 * l + 1) / (4 * math.pi) * eval_legendre(l, np.sum(u * v, axis=1))
        assert np.abs(lhs - rhs).max() < 1e-13


def test_radial_basis_orthonormal_and_vanishing_at_cutoff(x64):
    config = NeuralilConfig()
    r = np.linspace(0.0, config.cutoff, 20001)
    g = np.asarray(radial_basis_flat(jnp.asarray(r), config))
    offset = 0
    for l in range(config.n_max + 1):
        n = config.n_max - l + 1
        gl = g[:, offset : offset + n]
        gram = np.trapezoid(gl[:, :, None] * gl[:, None, :] * r[:, None, None] ** 2, r, axis=0)
        assert np.abs(gram - np.eye(n)).max() < 1e-6
        offset += n
    # g and g' vanish at r_c; beyond it everything is exactly 0, with zero gradient
    dg = jax.jit(jax.jacfwd(lambda t: radial_basis_flat(t, config)))(jnp.asarray(config.cutoff - 1e-6))
    assert np.abs(g[-2]).max() < 1e-10 and np.abs(np.asarray(dg)).max() < 1e-9
    assert np.all(np.asarray(radial_basis_flat(jnp.asarray([3.5, 3.6, 1000.0]), config)) == 0)


def _brute_force_descriptor(numbers, pos, cell, pbc, species, atoms, config):
    """The original's definition (docs/models/neuralil.md §2), written independently: a double sum over
    all neighbour pairs (j, k) incl. j = k with Legendre polynomials, scipy Bessel functions."""
    tables = basis_tables(config.n_max)
    rc = config.cutoff
    pairs = [(a, b) for a in range(len(species)) for b in range(a, len(species))]
    triples = np.asarray(sorted(brute_force_neighbors(pos, cell, pbc, rc)))
    senders, receivers, shifts = triples[:, 0], triples[:, 1], triples[:, 2:]
    out = {}
    for i in atoms:
        mine = receivers == i
        vecs = pos[i] - pos[senders[mine]] + shifts[mine] @ cell
        types = [species.index(int(z)) for z in numbers[senders[mine]]]
        dist = np.linalg.norm(vecs, axis=1)
        gs = []
        for l, tab in enumerate(tables):
            j = scipy_jn(l, dist[:, None] * tab["roots"][None, :] / rc)
            f = (tab["c1"] * j[:, :-1] - tab["c2"] * j[:, 1:]) / rc**1.5
            gs.append((f @ tab["T"].T, l))
        cos = (vecs @ vecs.T) / np.outer(dist, dist)
        desc = np.zeros((len(pairs), config.n_coeffs))
        onehot = np.eye(len(species))[types]
        q = 0
        for g, l in gs:
            kernel = (2 * l + 1) / (4 * math.pi) * eval_legendre(l, np.clip(cos, -1, 1))
            for n in range(g.shape[1]):
                big = onehot * g[:, n : n + 1]  # G_j[a]
                full = big.T @ kernel @ big  # [a, b]
                desc[:, q] = [full[a, b] for a, b in pairs]
                q += 1
        out[i] = (desc, len(vecs))
    return out


def test_descriptor_equals_brute_force_double_sum_without_truncation(ean, x64):
    """A compressed EAN box (×0.72 lengths, ≈80 neighbours within 3.5 Å, far above the
    original's max_neighbors = 35): every neighbour enters."""
    config = NeuralilConfig(dtype="float64")
    species = [1, 6, 7, 8]
    sl = ean.atoms_of(2)
    numbers, pos, cell, pbc = ean.numbers[sl], ean.positions[sl] * 0.72, ean.cell[2] * 0.72, ean.pbc[2]
    s, r, shifts = neighbor_list(pos, cell, pbc, config.cutoff)
    vec = pos[r] - pos[s] + shifts @ cell
    graph = EdgeGraph(
        species=jnp.asarray(np.searchsorted(species, numbers), jnp.int32),
        atom_mask=jnp.ones(len(numbers), bool),
        vectors=jnp.asarray(vec),
        senders=jnp.asarray(s),
        receivers=jnp.asarray(r),
        edge_mask=jnp.ones(len(s), bool),
        graph_index=jnp.zeros(len(numbers), jnp.int32),
        n_graphs=1,
    )
    ours = np.asarray(jax.jit(descriptors, static_argnums=(1, 2))(graph, len(species), config))
    atoms = (0, 4, 150, 224)
    expected = _brute_force_descriptor(numbers, pos, cell, pbc, species, atoms, config)
    counts = np.bincount(r, minlength=len(numbers))
    assert counts.max() > 60
    for i in atoms:
        desc, n_neigh = expected[i]
        assert n_neigh == counts[i] > 35
        assert np.abs(ours[i] - desc).max() < 1e-11 * max(1.0, np.abs(desc).max())


def _tiny_system(positions, species, config, params=None, seed=0):
    """A free cluster as an EdgeGraph function of positions, and parameters for it."""
    n = len(species)
    s, r = np.nonzero(~np.eye(n, dtype=bool))
    module = make_model(config, 4)
    params = init_params(module, seed) if params is None else params

    def energy(p, pos):
        graph = EdgeGraph(
            species=jnp.asarray(species, jnp.int32),
            atom_mask=jnp.ones(n, bool),
            vectors=pos[r] - pos[s],
            senders=jnp.asarray(s, jnp.int32),
            receivers=jnp.asarray(r, jnp.int32),
            edge_mask=jnp.ones(len(s), bool),
            graph_index=jnp.zeros(n, jnp.int32),
            n_graphs=1,
        )
        return module.apply({"params": p}, graph).sum()

    return jnp.asarray(positions), params, energy


def test_coincident_atoms_give_finite_energy_forces_and_training_gradients(weights_path, x64):
    """Two atoms on one point (distance exactly 0): the original's safeguards (sinc at 0,
    custom sqrt) keep energy, forces and the second-order training gradient finite."""
    config = NeuralilConfig(dtype="float64")
    pos = [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [1.0, 0.2, 0.1], [0.3, 1.4, -0.5]]
    params = load_weights(weights_path, config)
    pos, params, energy = _tiny_system(pos, [0, 0, 3, 1], config, params)

    @jax.jit
    def everything(p):
        def loss(p):
            e, grad = jax.value_and_grad(energy, argnums=1)(p, pos)
            return jnp.sum(grad**2), (e, -grad)

        grads, (e, f) = jax.grad(loss, has_aux=True)(p)
        return e, f, grads

    e, f, grads = everything(params)
    assert np.isfinite(float(e)) and np.all(np.isfinite(np.asarray(f)))
    assert all(np.all(np.isfinite(np.asarray(g))) for g in jax.tree_util.tree_leaves(grads))
    assert np.abs(np.asarray(f).sum(axis=0)).max() < 1e-10


def test_morse_switch_is_one_below_r_switch_and_zero_from_r_c(x64):
    r = jnp.linspace(0.0, 4.0, 4001)
    s = np.asarray(switch(r, jnp.asarray(2.5), 3.5))
    rr = np.asarray(r)
    assert np.all(s[rr <= 2.5] == 1.0) and np.all(s[rr >= 3.5] == 0.0)
    assert np.all(np.diff(s) <= 1e-15) and 0 < s[np.searchsorted(rr, 3.0)] < 1
    ds = np.asarray(jax.vmap(jax.grad(lambda t: switch(t, jnp.asarray(2.5), 3.5)))(r))
    assert np.all(np.isfinite(ds)) and abs(ds[0]) == 0 and abs(ds[-1]) == 0


def test_parameters_match_the_released_layout_and_are_deterministic(weights_path):
    import json

    meta = json.loads(weights_path.with_suffix(".json").read_text())
    module = make_model(NeuralilConfig(), 4)
    shapes = param_shapes(module)
    assert {f"params/{k}": list(v) for k, v in shapes.items()} == meta["param_shapes"]
    assert sum(math.prod(v) for v in shapes.values()) == meta["n_params"] == 13_144
    a, b, c = init_params(module, 1), init_params(module, 1), init_params(module, 2)
    leaves = lambda t: [np.asarray(x) for x in jax.tree_util.tree_leaves(t)]
    assert all(np.array_equal(x, y) for x, y in zip(leaves(a), leaves(b)))
    assert not all(np.array_equal(x, y) for x, y in zip(leaves(a), leaves(c)))
    plain = param_shapes(make_model(NeuralilConfig(morse=False, n_max=3, embed_d=4), 3))
    assert "morse/switch_param" not in plain and plain["core_model/Inlet/kernel"] == (6 * 10 + 4, 64)
