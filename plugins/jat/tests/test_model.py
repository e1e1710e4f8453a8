"""Architecture, parameter layout and initialisation of the JAT modules (docs/models/jat.md §3-6),
checked against the released checkpoint's inventory and an independent numpy forward pass."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mlffbench.backends.jax.potential import EdgeGraph
from mlffbench.data.stats import SpeciesStats, compute_stats
from mlffbench.errors import ConfigError
from mlffbench.graph.neighbors import neighbor_list
from mlffbench_jat.config import ANI1_MODEL, JatConfig
from mlffbench_jat.model import build, init_params, make_model, param_shapes


def test_parameter_inventory_equals_released_checkpoint(checkpoint_meta):
    shapes = param_shapes(make_model(JatConfig(), n_species=4))
    released = {k.removeprefix("params/"): tuple(v) for k, v in checkpoint_meta["param_shapes"].items()}
    assert shapes == released
    assert sum(int(np.prod(s)) for s in shapes.values()) == checkpoint_meta["n_params"] == 39_529


def test_four_heads_and_skip_projection_shapes():
    shapes = param_shapes(make_model(JatConfig(**{**ANI1_MODEL, "embed_d": 32}), n_species=4))
    layer0, layer1, last = (f"core_model/jat_layers_{k}" for k in (0, 1, 4))
    assert shapes[f"{layer0}/DenseGeneral_0/kernel"] == (1, 32, 4, 48)  # embedding has one head
    assert shapes[f"{layer0}/DenseGeneral_3/kernel"] == (1, 32, 4, 48)  # skip projection 32 -> 48
    assert shapes[f"{layer1}/DenseGeneral_1/kernel"] == (4, 48, 4, 48)  # heads mixed
    assert shapes[f"{layer1}/DenseGeneral_2/kernel"] == (4, 49, 4, 1)
    assert f"{layer1}/DenseGeneral_3/kernel" not in shapes
    assert f"{layer1}/LayerNorm_0/scale" in shapes and f"{last}/LayerNorm_0/scale" not in shapes
    assert shapes["core_model/Dense_0/kernel"] == (4 * 48, 64)
    assert "core_model/jat_layers_5/DenseGeneral_0/kernel" not in shapes


@pytest.mark.parametrize(
    "config", [JatConfig(), JatConfig(layer_dims=(24, 24, 24), n_head=2, embed_d=24)], ids=["ean", "2-heads"]
)
def test_initialisation_follows_the_original(config):
    params = init_params(make_model(config, n_species=4), seed=0)
    core = params["core_model"]
    n_layers, n_head, width = len(config.layer_dims), config.n_head, config.layer_dims[0]
    for k in range(n_layers):
        layer = core[f"jat_layers_{k}"]
        for name in ("DenseGeneral_0", "DenseGeneral_1"):
            kernel = np.asarray(layer[name]["kernel"])
            flat = kernel.reshape(-1, n_head * width)  # (fan_in, fan_out) as flax initialises it
            # semi-orthogonal: orthonormal along the smaller dimension
            gram = flat.T @ flat if flat.shape[0] >= flat.shape[1] else flat @ flat.T
            assert np.abs(gram - np.eye(len(gram))).max() < 1e-5
        att = np.asarray(layer["DenseGeneral_2"]["kernel"]).reshape(n_head * (width + 1), n_head)
        assert np.abs(att.T @ att - np.eye(n_head)).max() < 1e-5  # unit-norm orthogonal columns
        if k < n_layers - 1:
            assert np.all(np.asarray(layer["LayerNorm_0"]["scale"]) == 1)
            assert np.all(np.asarray(layer["LayerNorm_0"]["bias"]) == 0)
    emb = np.asarray(params["embed"]["embedding"])
    assert emb.shape == (4, config.embed_d)
    assert 0.7 < emb.std() * np.sqrt(config.embed_d) < 1.3  # N(0, 1/embed_d)
    dense0 = np.asarray(core["Dense_0"]["kernel"])  # lecun normal: std 1/sqrt(fan_in)
    assert 0.9 < dense0.std() * np.sqrt(dense0.shape[0]) < 1.1
    assert np.asarray(params["denormalizer"]["bias"]).tolist() == [0.0]
    again = init_params(make_model(config, n_species=4), seed=0)
    other = init_params(make_model(config, n_species=4), seed=1)
    leaves = jax.tree_util.tree_leaves
    assert all(np.array_equal(a, b) for a, b in zip(leaves(params), leaves(again)))
    assert not np.array_equal(params["embed"]["embedding"], other["embed"]["embedding"])


# --------------------------------------------------------------- independent numpy forward
def _swish(x):
    return x / (1.0 + np.exp(-x))


def _layer_norm(x, p):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + 1e-6) * p["scale"] + p["bias"]


def numpy_atomic_energies(params, config, species, senders, receivers, vectors):
    """docs/models/jat.md §4 written out with explicit per-receiver softmax (self loops as edges)."""
    p = jax.tree_util.tree_map(np.asarray, params)
    n = len(species)
    s = np.concatenate([senders, np.arange(n)])
    r = np.concatenate([receivers, np.arange(n)])
    q = np.concatenate([(vectors**2).sum(1), np.zeros(n)])
    n_head = config.n_head
    h = p["embed"]["embedding"][species][:, None, :]
    for t, width in enumerate(config.layer_dims):
        lp = p["core_model"][f"jat_layers_{t}"]
        query = np.einsum("nid,idhk->nhk", h, lp["DenseGeneral_0"]["kernel"])
        key = np.einsum("nid,idhk->nhk", h, lp["DenseGeneral_1"]["kernel"])
        z = _swish(query[s] + key[r])
        powers = np.stack([q ** (k + 1) for k in range(n_head)], axis=1)  # head k: q^(k+1)
        attention = lp["DenseGeneral_2"]["kernel"][..., 0]  # (H, D+1, H)
        logits = np.einsum("eid,idh->eh", np.concatenate([z, powers[:, :, None]], -1), attention)
        alpha = np.zeros_like(logits)
        for atom in range(n):
            sel = r == atom
            w = np.exp(logits[sel] - logits[sel].max(0))
            alpha[sel] = w / w.sum(0)
        agg = np.zeros((n, n_head, width))
        np.add.at(agg, r, alpha[:, :, None] * query[s])
        skip = h if h.shape[-1] == width else np.einsum("nid,idhk->nhk", h, lp["DenseGeneral_3"]["kernel"])
        h = _swish(agg) + skip
        if t < len(config.layer_dims) - 1:
            h = _layer_norm(h, lp["LayerNorm_0"])
    x = h.reshape(n, -1)
    for i in range(len(config.readout_dims)):
        x = _swish(_layer_norm(x @ p["core_model"][f"Dense_{i}"]["kernel"], p["core_model"][f"LayerNorm_{i}"]))
    x = _swish(x @ p["core_model"][f"Dense_{len(config.readout_dims)}"]["kernel"])
    return (x @ p["denormalizer"]["kernel"] + p["denormalizer"]["bias"])[:, 0]


def _random_params(module, seed):
    """Random values for every parameter (LayerNorm scales/biases and the denormaliser bias
    too, so that none of them can hide behind its initial value)."""
    rng = np.random.default_rng(seed)
    params: dict = {}
    for path, shape in param_shapes(module).items():
        *parents, leaf = path.split("/")
        node = params
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = (1.0 if leaf == "scale" else 0.0) + 0.3 * rng.normal(size=shape)
    return params


def _graph(species, senders, receivers, vectors):
    return EdgeGraph(
        species=jnp.asarray(species, jnp.int32),
        atom_mask=jnp.ones(len(species), bool),
        vectors=jnp.asarray(vectors),
        senders=jnp.asarray(senders, jnp.int32),
        receivers=jnp.asarray(receivers, jnp.int32),
        edge_mask=jnp.ones(len(senders), bool),
        graph_index=jnp.zeros(len(species), jnp.int32),
        n_graphs=1,
    )


def test_flax_model_equals_independent_numpy_forward(datasets, x64):
    """Four heads (edge features q, q², q³, q⁴), a skip projection, cutoff 3 Å, on an rMD17
    aspirin configuration with randomised parameters; also with the edge list shuffled."""
    ds = datasets("rmd17-aspirin")
    sl = ds.atoms_of(5)
    pos = ds.positions[sl]
    species = np.searchsorted([1, 6, 8], ds.numbers[sl])
    senders, receivers, _ = neighbor_list(pos, np.zeros((3, 3)), [False] * 3, 3.0)
    assert 0 < len(senders) < len(pos) * (len(pos) - 1)  # the cutoff removes some pairs
    vectors = pos[receivers] - pos[senders]
    config = JatConfig(layer_dims=(16, 16, 16), n_head=4, embed_d=8, cutoff=3.0, readout_dims=(12, 8), dtype="float64")
    module = make_model(config, n_species=3)
    params = _random_params(module, seed=4)
    expected = numpy_atomic_energies(params, config, species, senders, receivers, vectors)
    apply = jax.jit(module.apply)
    got = np.asarray(apply({"params": params}, _graph(species, senders, receivers, vectors)))
    assert got.shape == (len(pos),)
    assert np.abs(got - expected).max() < 1e-10 * np.abs(expected).max()
    order = np.random.default_rng(0).permutation(len(senders))
    shuffled = np.asarray(apply({"params": params}, _graph(species, senders[order], receivers[order], vectors[order])))
    assert np.abs(shuffled - expected).max() < 1e-10 * np.abs(expected).max()


def test_species_energy_shift(datasets, x64):
    """Faithful: the statistics' reference energies are ignored; with the switch they are
    added per atom by the backend."""
    ds = datasets("rmd17-aspirin")
    sl = ds.atoms_of(0)
    pos, numbers = ds.positions[sl], ds.numbers[sl]
    species = np.searchsorted([1, 6, 8], numbers)
    s, r, _ = neighbor_list(pos, np.zeros((3, 3)), [False] * 3, 4.0)
    from mlffbench.backends.jax.potential import Batch

    batch = Batch(
        positions=jnp.asarray(pos),
        species=jnp.asarray(species, jnp.int32),
        atom_mask=jnp.ones(len(pos), bool),
        graph_index=jnp.zeros(len(pos), jnp.int32),
        senders=jnp.asarray(s),
        receivers=jnp.asarray(r),
        shifts=jnp.zeros((len(s), 3)),
        edge_mask=jnp.ones(len(s), bool),
        cell=jnp.zeros((1, 3, 3)),
        energy=jnp.zeros(1),
        forces=jnp.zeros((len(pos), 3)),
        graph_mask=jnp.ones(1, bool),
        n_atoms=jnp.asarray([len(pos)], jnp.int32),
    )
    stats = compute_stats(ds, np.arange(0, 2000, 10))  # the core's training statistics
    assert stats.species == (1, 6, 8) and np.all(np.asarray(stats.reference_energies) != 0)
    small = {"layer_dims": (8, 8), "embed_d": 8, "readout_dims": (8,), "cutoff": 4.0, "dtype": "float64"}
    plain = build(JatConfig(**small), stats)
    shifted = build(JatConfig(**small, species_energy_shift=True), stats)
    params = init_params(plain.module, seed=0)
    assert np.array_equal(np.asarray(plain.reference_energies), np.zeros(3))
    both = jax.jit(lambda p, b: (plain.energy(p, b)[0], shifted.energy(p, b)[0]))
    e_plain, e_shift = (float(e) for e in both(params, batch))
    expected_shift = float(np.asarray(stats.reference_energies)[species].sum())
    assert abs((e_shift - e_plain) - expected_shift) < 1e-8
    assert abs(e_plain) < 100.0  # no reference energies in the faithful model
    with pytest.raises(ConfigError, match="reference_energies"):
        bad = SpeciesStats(species=(1, 6, 8), reference_energies=(0.0,))
        build(JatConfig(**small, species_energy_shift=True), bad)
