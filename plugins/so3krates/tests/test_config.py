"""SO3krates config checks, the search space, the registered spec and the weight import's paths."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mlffbench.errors import ConfigError
from mlffbench.plugin.manager import get_registry
from mlffbench_so3krates.config import SEARCH_SPACE, So3kratesConfig


def test_defaults_are_the_published_model():
    cfg = So3kratesConfig()
    assert (cfg.n_layers, cfg.features, cfg.n_heads, cfg.degrees) == (2, 128, 4, (1, 2, 3, 4))
    assert (cfg.cutoff, cfg.cutoff_fn, cfg.radial_basis, cfg.n_rbf) == (5.0, "cosine", "physnet", 32)
    assert not (cfg.residual_mlp_1 or cfg.residual_mlp_2 or cfg.layer_norm_1 or cfg.layer_norm_2)


@pytest.mark.parametrize(
    ("kw", "words"),
    [
        ({"features": 130}, "n_heads"),
        ({"features": 130, "max_degree": 4, "n_heads": 2}, "degrees"),
        ({"cutoff_fn": "hard"}, "cutoff_fn"),
        ({"max_degree": 0}, "max_degree"),
    ],
)
def test_bad_options_are_one_line_errors(kw, words):
    with pytest.raises(ConfigError, match=words):
        So3kratesConfig(**kw)


def test_search_space_gives_valid_configs():
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(40):
        trial = study.ask()
        model, train = SEARCH_SPACE.overrides(SEARCH_SPACE.sample(trial))
        study.tell(trial, 0.0)
        cfg = So3kratesConfig(**model)
        assert cfg.features % cfg.n_heads == 0 and cfg.features % cfg.max_degree == 0
        assert len(train["lr"]) == 3


def test_spec_is_registered():
    spec = get_registry().model("so3krates")
    assert spec.backend == "jax" and spec.cutoff(So3kratesConfig(cutoff=4.0)) == 4.0
    assert spec.import_weights is not None and spec.search_space is SEARCH_SPACE


def test_weight_import_paths(tmp_path):
    from mlffbench_so3krates.model import make_model, param_shapes
    from mlffbench_so3krates.weights import load_weights

    cfg = So3kratesConfig(n_layers=1, features=12, n_heads=2, max_degree=2, n_rbf=4, regression_dim=8)
    ours = param_shapes(make_model(cfg, 3))
    rng = np.random.default_rng(0)
    flat = {}
    for key, shape in ours.items():  # the authors' names for the same parameters
        if key == "embed/embedding":
            flat["params/feature_embeddings_0/Embed_0/embedding"] = rng.normal(size=(119, shape[1]))
        elif key.startswith("layers_"):
            flat[f"params/{key}"] = rng.normal(size=shape)
        else:
            flat[f"params/observables_0/{key}"] = rng.normal(size=shape)
    path = tmp_path / "mlff.npz"
    np.savez(path, **flat)
    path.with_suffix(".json").write_text(json.dumps({"cutoff": 5.0, "max_degree": 2}))
    params = load_weights(path, cfg, species=(1, 6, 8))
    np.testing.assert_array_equal(
        np.asarray(params["embed"]["embedding"]),
        flat["params/feature_embeddings_0/Embed_0/embedding"][[1, 6, 8]].astype(np.float32),
    )
    with pytest.raises(ConfigError, match="max_degree"):
        load_weights(path, So3kratesConfig(n_layers=1, features=12, n_heads=2, max_degree=3, n_rbf=4), (1, 6, 8))
    del flat["params/layers_0/attention_block/Wq1"]
    np.savez(path, **flat)
    with pytest.raises(ConfigError, match="Wq1"):
        load_weights(path, cfg, species=(1, 6, 8))
