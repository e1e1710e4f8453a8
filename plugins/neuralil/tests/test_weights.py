"""Importing the released checkpoint: 1:1 paths, species order (embeddings and the Inlet
rows of the descriptor pairs), dtype, and one-line errors for everything that does not fit."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mlffbench.backends.jax.potential import EdgeGraph
from mlffbench.backends.jax.testing import flat_params
from mlffbench.errors import ConfigError, DataError
from mlffbench.graph.neighbors import neighbor_list
from mlffbench.testing import tampered_npz
from mlffbench_neuralil.config import NeuralilConfig
from mlffbench_neuralil.model import descriptors, init_params, make_model
from mlffbench_neuralil.weights import load_weights


def test_loads_every_parameter_one_to_one(weights_path):
    params = load_weights(weights_path, NeuralilConfig())
    flat = flat_params(params)
    raw = np.load(weights_path)
    assert set(flat) == {k.removeprefix("params/") for k in raw.files}
    assert jax.tree_util.tree_structure(params) == jax.tree_util.tree_structure(
        init_params(make_model(NeuralilConfig(), 4))
    )
    reordered = ("embed/embedding", "morse/embed/embedding", "core_model/Inlet/kernel")
    for key, value in flat.items():
        assert value.dtype == np.float32
        if key not in reordered:
            assert np.array_equal(value, raw[f"params/{key}"])
    assert flat["denormalizer/kernel"][0, 0] == pytest.approx(-1.3132, abs=1e-4)
    # mlffbench order H, C, N, O from the original's C, H, N, O
    for key in ("embed/embedding", "morse/embed/embedding"):
        assert np.array_equal(flat[key], raw[f"params/{key}"][[1, 0, 2, 3]])


_descriptors = jax.jit(descriptors, static_argnums=(1, 2))


def _first_layer(ean, species, params):
    """Inlet pre-activations of the reference configuration for a species order."""
    sl = ean.atoms_of(0)
    numbers, pos, cell, pbc = ean.numbers[sl], ean.positions[sl], ean.cell[0], ean.pbc[0]
    s, r, shifts = neighbor_list(pos, cell, pbc, 3.5)
    types = np.asarray([species.index(int(z)) for z in numbers])
    graph = EdgeGraph(
        species=jnp.asarray(types, jnp.int32),
        atom_mask=jnp.ones(len(numbers), bool),
        vectors=jnp.asarray(pos[r] - pos[s] + shifts @ cell),
        senders=jnp.asarray(s),
        receivers=jnp.asarray(r),
        edge_mask=jnp.ones(len(s), bool),
        graph_index=jnp.zeros(len(numbers), jnp.int32),
        n_graphs=1,
    )
    p = np.asarray(_descriptors(graph, len(species), NeuralilConfig(dtype="float64")))
    x = np.concatenate([p.reshape(len(numbers), -1), np.asarray(params["embed"]["embedding"])[types]], axis=1)
    return x @ np.asarray(params["core_model"]["Inlet"]["kernel"])


def test_any_species_order_gives_the_same_network_input(weights_path, ean, x64):
    """The Inlet rows follow the species pairs: the first layer sees the same numbers
    whatever order the dataset gives its species."""
    config = NeuralilConfig(dtype="float64")
    ref = _first_layer(ean, [1, 6, 7, 8], load_weights(weights_path, config, species=(1, 6, 7, 8)))
    for order in ([6, 1, 7, 8], [8, 1, 7, 6]):
        other = _first_layer(ean, order, load_weights(weights_path, config, species=order))
        assert np.abs(other - ref).max() < 1e-10 * np.abs(ref).max()


def test_species_subsets_and_missing_elements(weights_path):
    subset = load_weights(weights_path, NeuralilConfig(), species=(8, 1, 6))
    raw = np.load(weights_path)
    assert np.array_equal(subset["embed"]["embedding"], raw["params/embed/embedding"][[3, 1, 0]])
    assert subset["core_model"]["Inlet"]["kernel"].shape == (6 * 15 + 2, 64)
    # pair (O, O) of the subset is the original's last pair block (O, O)
    assert np.array_equal(subset["core_model"]["Inlet"]["kernel"][:15], raw["params/core_model/Inlet/kernel"][135:150])
    with pytest.raises(ConfigError, match="no parameters for element F"):
        load_weights(weights_path, NeuralilConfig(), species=(1, 6, 9))


def test_float64_cast(weights_path, x64):
    params = load_weights(weights_path, NeuralilConfig(dtype="float64"))
    assert all(x.dtype == np.float64 for x in jax.tree_util.tree_leaves(params))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"n_max": 3}, "checkpoint has n_max=4 but the model config has n_max=3"),
        ({"cutoff": 4.0}, "checkpoint has cutoff=3.5 but the model config has cutoff=4.0"),
        ({"embed_d": 4}, "embed_d=2 but the model config has embed_d=4"),
        ({"core_widths": (64, 32, 16)}, "core_widths="),
        ({"morse": False}, "checkpoint has morse=True but the model config has morse=False"),
    ],
)
def test_config_that_does_not_match_the_checkpoint(weights_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_weights(weights_path, NeuralilConfig(**overrides))


def test_mismatches_name_the_first_bad_path(tmp_path, weights_path):
    outlet = "params/core_model/Outlet/kernel"

    def drop(raw):
        del raw[outlet]

    def extra(raw):
        raw["params/core_model/Stage_5/kernel"] = np.zeros((16, 16), np.float32)

    def reshape(raw):
        raw[outlet] = np.zeros((16, 2), np.float32)

    def nan(raw):
        raw[outlet] = np.full((16, 1), np.nan, np.float32)

    def unprefixed(raw):
        raw["core_model/Outlet/kernel"] = raw.pop(outlet)

    def inlet(raw):
        raw["params/core_model/Inlet/kernel"] = np.zeros((140, 64), np.float32)

    def no_embedding(raw):
        del raw["params/embed/embedding"]

    cases = [
        (drop, ConfigError, "missing parameter 'params/core_model/Outlet/kernel'"),
        (extra, ConfigError, "unexpected parameter 'params/core_model/Stage_5/kernel'"),
        (reshape, ConfigError, r"'params/core_model/Outlet/kernel' has shape \(16, 2\), the model expects \(16, 1\)"),
        (nan, DataError, "'params/core_model/Outlet/kernel' holds non-finite values"),
        (unprefixed, ConfigError, "'core_model/Outlet/kernel' is not a flax parameter path"),
        (inlet, ConfigError, r"'params/core_model/Inlet/kernel' has shape \(140, 64\)"),
        (no_embedding, ConfigError, "missing parameter 'params/embed/embedding'"),
    ]
    for change, error, message in cases:
        with pytest.raises(error, match=message) as info:
            load_weights(tampered_npz(tmp_path, weights_path, change, keep_metadata=True), NeuralilConfig())
        assert "\n" not in str(info.value)
    # without metadata nothing says n_max: a n_max = 3 model meets n_max = 4 weights
    bare = tampered_npz(tmp_path, weights_path, lambda raw: None, keep_metadata=False)
    with pytest.raises(
        ConfigError, match=r"'params/core_model/Inlet/kernel' has shape \(152, 64\), the model expects \(102, 64\)"
    ):
        load_weights(bare, NeuralilConfig(n_max=3))
    with pytest.raises(ConfigError, match="cannot map 4 embedding rows onto 3 species"):
        load_weights(bare, NeuralilConfig(), species=(1, 6, 8))


def test_bad_metadata_and_unreadable_or_missing_files(tmp_path, weights_path):
    with pytest.raises(ConfigError, match="weights file not found: .*nothing.npz"):
        load_weights(tmp_path / "nothing.npz", NeuralilConfig())
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip archive")
    with pytest.raises(DataError, match="garbage.npz"):
        load_weights(garbage, NeuralilConfig())
    path = tampered_npz(tmp_path, weights_path, lambda raw: None, keep_metadata=True)
    meta = json.loads(path.with_suffix(".json").read_text())
    path.with_suffix(".json").write_text(json.dumps({**meta, "sorted_elements": ["C", "H", "N"]}))
    with pytest.raises(ConfigError, match="metadata names 3 elements but the embedding has 4 rows"):
        load_weights(path, NeuralilConfig())
    path.with_suffix(".json").write_text("{not json")
    with pytest.raises(DataError, match="cannot read checkpoint metadata"):
        load_weights(path, NeuralilConfig())
    with pytest.raises(ConfigError, match="expected a NeuralilConfig"):
        load_weights(weights_path, {"n_max": 4})
