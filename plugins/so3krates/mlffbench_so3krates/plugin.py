"""Entry point of the SO3krates plugin: registers the ``so3krates`` model spec (JAX backend)."""

from mlffbench import hookimpl
from mlffbench.plugin.registry import ModelSpec
from mlffbench_so3krates.config import MODEL_DEFAULTS, SEARCH_SPACE, TRAIN_DEFAULTS, So3kratesConfig

DESCRIPTION = (
    "SO3krates (Frank, Unke, Müller, Chmiela 2022/2024): equivariant transformer on invariant features "
    "and Euclidean variables (spherical-harmonic coordinates, degrees 1..L), attention filters on radial "
    "basis and per-degree invariants, no tensor products, smooth cutoff; imports mlff 1.0 parameter trees."
)


def _build(config, stats):
    from mlffbench_so3krates.model import build  # jax/flax are imported only when a model is built

    return build(config, stats)


def _load_weights(path, config, species=None):
    from mlffbench_so3krates.weights import load_weights

    return load_weights(path, config, species=species)


def _cutoff(config: So3kratesConfig) -> float:
    return config.cutoff


SPEC = ModelSpec(
    name="so3krates",
    backend="jax",
    config_class=So3kratesConfig,
    build=_build,
    cutoff=_cutoff,
    description=DESCRIPTION,
    model_defaults=dict(MODEL_DEFAULTS),
    train_defaults=dict(TRAIN_DEFAULTS),
    search_space=SEARCH_SPACE,
    import_weights=_load_weights,
)


@hookimpl
def mlffbench_models(register):
    """Registers the SO3krates model spec."""
    register(SPEC)
