"""Equivariance of the Euclidean variables: rotating the input (rMD17 aspirin configuration 0)
by R rotates χ^l of every layer by the Wigner D-matrix D^l(R) of its degree, and the point
reflection −1 multiplies it by (−1)^l; the energy and the invariant features do not change.
Float64; D^l from e3nn-jax (the convention of the spherical harmonics the model uses)."""

from __future__ import annotations

import e3nn_jax as e3nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mlffbench.backends.jax.potential import EdgeGraph
from mlffbench.testing import ean_config, random_rotation
from mlffbench_so3krates.config import So3kratesConfig
from mlffbench_so3krates.model import init_params, irreps, make_model

CFG = So3kratesConfig(
    n_layers=2,
    features=24,
    n_heads=2,
    max_degree=3,
    n_rbf=8,
    regression_dim=16,
    residual_mlp_1=True,
    output_zero_init=False,
    dtype="float64",
)
TOL = 1e-10  # relative to the largest component of χ


def _graph(pos, species, cutoff):
    d = pos[None, :, :] - pos[:, None, :]
    r = np.linalg.norm(d, axis=-1)
    send, recv = np.nonzero((r < cutoff) & ~np.eye(len(pos), dtype=bool))
    order = np.argsort(recv, kind="stable")
    send, recv = send[order], recv[order]
    return EdgeGraph(
        species=jnp.asarray(species, jnp.int32),
        atom_mask=jnp.ones(len(pos), bool),
        vectors=jnp.asarray(pos[recv] - pos[send]),
        senders=jnp.asarray(send, jnp.int32),
        receivers=jnp.asarray(recv, jnp.int32),
        edge_mask=jnp.ones(len(send), bool),
        graph_index=jnp.zeros(len(pos), jnp.int32),
        n_graphs=1,
    )


@pytest.fixture(scope="module")
def aspirin(datasets):
    ds = datasets("rmd17-aspirin")
    numbers, pos, _, _ = ean_config(ds, 0)
    species = tuple(sorted({int(z) for z in ds.numbers}))
    return np.searchsorted(species, numbers), np.asarray(pos, float), len(species)


@pytest.mark.slow
def test_euclidean_variables_rotate_with_wigner_d(aspirin, x64):
    index, pos, n_species = aspirin
    model = make_model(CFG, n_species, sorted_receivers=True)
    params = init_params(model, seed=4)

    @jax.jit
    def run(graph):
        e, state = model.apply({"params": params}, graph, mutable=["intermediates"])
        ev = [state["intermediates"][f"ev_{t}"][0] for t in range(CFG.n_layers)]
        return e, ev

    centre = pos.mean(0)
    e0, ev0 = run(_graph(pos, index, CFG.cutoff))
    rng = np.random.default_rng(0)
    ir = irreps(CFG.degrees)
    wigner_d = jax.jit(ir.D_from_matrix)  # compiled once (eager: seconds per rotation)
    for rotation in (random_rotation(rng), random_rotation(rng), -np.eye(3)):
        moved = (pos - centre) @ rotation.T + centre
        e1, ev1 = run(_graph(moved, index, CFG.cutoff))
        np.testing.assert_allclose(np.asarray(e1), np.asarray(e0), rtol=0, atol=1e-12)
        d = np.asarray(wigner_d(jnp.asarray(rotation)))  # block diagonal: D^l(R) per degree
        for t in range(CFG.n_layers):
            chi0, chi1 = np.asarray(ev0[t]), np.asarray(ev1[t])
            scale = np.max(np.abs(chi0))
            assert scale > 1e-3  # non-trivial Euclidean variables
            start = 0
            for lv in CFG.degrees:
                block = slice(start, start + 2 * lv + 1)
                expected = chi0[:, block] @ d[block, block].T
                err = np.max(np.abs(chi1[:, block] - expected)) / scale
                assert err < TOL, (t, lv, err)
                if np.linalg.det(rotation) < 0:  # the point reflection: (−1)^l
                    assert np.max(np.abs(chi1[:, block] - (-1) ** lv * chi0[:, block])) / scale < TOL
                start += 2 * lv + 1
    assert e3nn.Irreps(ir).dim == sum(2 * lv + 1 for lv in CFG.degrees)
