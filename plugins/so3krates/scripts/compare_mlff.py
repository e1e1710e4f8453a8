"""The authors' SO3krates (mlff v1.0) against mlffbench's so3krates with the same weights (float64).

Not part of the package or the tests: it needs the authors' code, which is not a dependency.
Run it in a scratch environment with the project's packages and mlff v1.0 on the path, e.g.::

    python -m venv /tmp/mlffvenv
    echo /path/to/repo/.venv/lib/python3.11/site-packages > /tmp/mlffvenv/lib/python3.11/site-packages/zz.pth
    /tmp/mlffvenv/bin/pip install --no-deps e3x clu jaxopt portpicker jaxtyping wadler_lindig more_itertools
    # mlff v1.0 checked out in /tmp/mlff1 (git archive of tag v1.0); an empty wandb.py stub in /tmp/stubs
    PYTHONPATH=/tmp/mlff1:/tmp/stubs:REPO:REPO/plugins/so3krates MLFFBENCH_DATA_DIR=... \\
        /tmp/mlffvenv/bin/python plugins/so3krates/scripts/compare_mlff.py [default|variant]

For EAN configuration 0 and rMD17 aspirin configuration 0 it feeds the authors' model the core's
neighbour pairs as displacements (centre i = receiver, j = sender), takes their forces as
−∂E/∂positions through those displacements, imports their random parameters with
``mlffbench_so3krates.weights.from_mlff`` and prints the largest per-atom energy and force
differences (docs/models/so3krates.md §4).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp
import numpy as np
from mlff.nn.representation.so3krates_sparse import init_so3krates_sparse

from mlffbench.backends.jax.testing import Evaluator
from mlffbench.data import load_dataset
from mlffbench.testing import ean_config
from mlffbench_so3krates.config import So3kratesConfig
from mlffbench_so3krates.model import build
from mlffbench_so3krates.weights import from_mlff

THEIRS = {
    "default": {"cutoff_fn": "cosine", "radial_basis_fn": "physnet", "num_radial_basis_fn": 32},
    "variant": {
        "cutoff_fn": "exponential",
        "radial_basis_fn": "bernstein",
        "num_radial_basis_fn": 16,
        "residual_mlp_1": True,
        "residual_mlp_2": True,
        "qk_non_linearity": "silu",
        "energy_activation_fn": "silu",
        "num_layers": 3,
        "num_features": 120,
        "degrees": [1, 2, 3],
        "energy_learn_atomic_type_scales": True,
        "energy_learn_atomic_type_shifts": True,
    },
}
OURS = {
    "default": {},
    "variant": {
        "cutoff_fn": "exponential",
        "radial_basis": "bernstein",
        "n_rbf": 16,
        "residual_mlp_1": True,
        "residual_mlp_2": True,
        "qk_nonlinearity": "silu",
        "energy_activation": "silu",
        "n_layers": 3,
        "features": 120,
        "max_degree": 3,
        "atomic_scale_shift": True,
    },
}


def _inputs(displacements, numbers, idx_i, idx_j, n):
    return {
        "displacements": displacements,
        "atomic_numbers": jnp.asarray(numbers),
        "idx_i": jnp.asarray(idx_i),
        "idx_j": jnp.asarray(idx_j),
        "cell": None,
        "cell_offset": None,
        "batch_segments": jnp.zeros(n, int),
        "node_mask": jnp.ones(n, bool),
        "graph_mask": jnp.ones(1, bool),
        "total_charge": None,
        "num_unpaired_electrons": None,
    }


def main(variant: str) -> dict:
    theirs = {
        "num_layers": 2,
        "num_features": 128,
        "num_heads": 4,
        "degrees": [1, 2, 3, 4],
        "qk_non_linearity": "identity",
        "residual_mlp_1": False,
        "residual_mlp_2": False,
        "output_is_zero_at_init": False,
        "input_convention": "displacements",
        **THEIRS[variant],
    }
    net = init_so3krates_sparse(**theirs)
    object.__setattr__(net.observables[0], "output_convention", "per_atom")
    config = So3kratesConfig(output_zero_init=False, dtype="float64", **OURS[variant])
    data_dir = os.environ.get("MLFFBENCH_DATA_DIR", "../shared/data")
    cache = Path("/tmp/so3krates-compare-cache")
    results = {}
    for name in ("ean", "rmd17-aspirin"):
        ds = load_dataset(name, data_dir=data_dir, cache_dir=cache, download=False)
        numbers, pos, cell, pbc = ean_config(ds, 0)
        species = tuple(sorted({int(z) for z in ds.numbers}))
        two = _inputs(jnp.asarray([[1.0, 0, 0], [-1.0, 0, 0]]), numbers[:2], [0, 1], [1, 0], 2)
        p = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), net.init(jax.random.PRNGKey(3), two))
        if variant == "variant":  # non-trivial per-element scales and shifts
            obs = dict(p["params"]["observables_0"])
            obs["atomic_scales"] = 1.0 + 0.1 * jax.random.normal(jax.random.PRNGKey(7), (119,))
            obs["energy_offset"] = 0.1 * jax.random.normal(jax.random.PRNGKey(8), (119,))
            p = {"params": {**p["params"], "observables_0": obs}}
        ev = Evaluator(build, config, species, from_mlff(p, config, species))
        batch, n_edges = ev.batch([(numbers, pos, cell, pbc)])
        _, forces, atomic = ev.evaluate(batch)
        mask = np.asarray(batch.edge_mask)
        recv, send = np.asarray(batch.receivers)[mask], np.asarray(batch.senders)[mask]
        shifts = np.asarray(batch.shifts)[mask].astype(np.float64) @ np.asarray(batch.cell)[0]
        n = len(numbers)

        def atomic_ref(positions, recv=recv, send=send, shifts=shifts, numbers=numbers, n=n, p=p):
            r_ij = positions[send] - positions[recv] - shifts  # r_j − r_i
            return net.apply(p, _inputs(r_ij, numbers, recv, send, n))["energy"]

        x = jnp.asarray(pos, jnp.float64)
        a_ref = np.asarray(atomic_ref(x))
        f_ref = -np.asarray(jax.grad(lambda q: atomic_ref(q).sum())(x))
        results[name] = {
            "n_atoms": n,
            "n_pairs": n_edges,
            "atomic_max_abs": float(np.max(np.abs(a_ref))),
            "atomic_max_diff": float(np.max(np.abs(a_ref - np.asarray(atomic)))),
            "force_max_abs": float(np.max(np.abs(f_ref))),
            "force_max_diff": float(np.max(np.abs(f_ref - np.asarray(forces)))),
        }
        print(name, json.dumps(results[name]))
    return results


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "default")
