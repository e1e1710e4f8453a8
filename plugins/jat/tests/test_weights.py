"""Importing the released checkpoint: 1:1 paths, species order, dtype, and clear errors."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from mlffbench.backends.jax.testing import flat_params
from mlffbench.errors import ConfigError, DataError
from mlffbench.testing import tampered_npz
from mlffbench_jat.config import JatConfig
from mlffbench_jat.model import init_params, make_model
from mlffbench_jat.weights import load_weights


def test_loads_every_parameter_one_to_one(weights_path):
    params = load_weights(weights_path, JatConfig())
    flat = flat_params(params)
    raw = np.load(weights_path)
    assert set(flat) == {k.removeprefix("params/") for k in raw.files}
    reference_tree = jax.tree_util.tree_structure(init_params(make_model(JatConfig(), 4)))
    assert jax.tree_util.tree_structure(params) == reference_tree
    for key, value in flat.items():
        assert value.dtype == np.float32
        if key != "embed/embedding":
            assert np.array_equal(value, raw[f"params/{key}"])
    assert flat["denormalizer/kernel"][0, 0] == pytest.approx(1.8192146, abs=1e-6)


def test_embedding_rows_follow_the_requested_species(weights_path, checkpoint_meta):
    raw = np.load(weights_path)["params/embed/embedding"]
    assert checkpoint_meta["sorted_elements"] == ["C", "H", "N", "O"]  # the original's row order
    default = np.asarray(load_weights(weights_path, JatConfig())["embed"]["embedding"])
    assert np.array_equal(default, raw[[1, 0, 2, 3]])  # mlffbench order: H, C, N, O
    subset = np.asarray(load_weights(weights_path, JatConfig(), species=(8, 1, 6))["embed"]["embedding"])
    assert np.array_equal(subset, raw[[3, 1, 0]])
    with pytest.raises(ConfigError, match="no embedding for element F"):
        load_weights(weights_path, JatConfig(), species=(1, 6, 9))


def test_float64_cast(weights_path, x64):
    params = load_weights(weights_path, JatConfig(dtype="float64"))
    assert all(x.dtype == np.float64 for x in jax.tree_util.tree_leaves(params))


def test_config_that_does_not_match_the_checkpoint(weights_path):
    with pytest.raises(ConfigError, match="layer_dims"):
        load_weights(weights_path, JatConfig(layer_dims=(48,) * 6))
    with pytest.raises(ConfigError, match="n_head"):
        load_weights(weights_path, JatConfig(n_head=4))
    with pytest.raises(ConfigError, match="cutoff=5.0 but the model config has cutoff=4.0"):
        load_weights(weights_path, JatConfig(cutoff=4.0))


def test_mismatches_name_the_first_bad_path(tmp_path, weights_path):
    dense4 = "params/core_model/Dense_4/kernel"

    def drop(raw):
        del raw[dense4]

    def extra(raw):
        raw["params/core_model/Dense_5/kernel"] = np.zeros((1, 1), np.float32)

    def reshape(raw):
        raw[dense4] = np.zeros((16, 2), np.float32)

    def nan(raw):
        raw[dense4] = np.full((16, 1), np.nan, np.float32)

    def unprefixed(raw):
        raw["core_model/Dense_4/kernel"] = raw.pop(dense4)

    cases = [
        (drop, ConfigError, "missing parameter 'params/core_model/Dense_4/kernel'"),
        (extra, ConfigError, "unexpected parameter 'params/core_model/Dense_5/kernel'"),
        (reshape, ConfigError, r"'params/core_model/Dense_4/kernel' has shape \(16, 2\)"),
        (nan, DataError, "'params/core_model/Dense_4/kernel' holds non-finite values"),
        (unprefixed, ConfigError, "'core_model/Dense_4/kernel' is not a flax parameter path"),
    ]
    for change, error, message in cases:
        with pytest.raises(error, match=message):
            load_weights(tampered_npz(tmp_path, weights_path, change, keep_metadata=True), JatConfig())
    # without metadata, a 6-layer config meets a 7-layer checkpoint: layer 5 is the last one
    # there (no LayerNorm), so its LayerNorm is the first surplus path
    plain = tampered_npz(tmp_path, weights_path, lambda raw: None, keep_metadata=False)
    with pytest.raises(ConfigError, match="unexpected parameter 'params/core_model/jat_layers_5/LayerNorm_0/bias'"):
        load_weights(plain, JatConfig(layer_dims=(48,) * 6))


def test_unreadable_or_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="weights file not found: .*nothing.npz"):
        load_weights(tmp_path / "nothing.npz", JatConfig())
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip archive")
    with pytest.raises(DataError, match="garbage.npz"):
        load_weights(garbage, JatConfig())
