"""Entry point of the JAT plugin: registers the ``jat`` model spec (JAX backend)."""

from mlffbench import hookimpl
from mlffbench.plugin.registry import ModelSpec
from mlffbench_jat.config import MODEL_DEFAULTS, PRESETS, TRAIN_DEFAULTS, JatConfig, search_space

DESCRIPTION = (
    "JAT (Hödl 2022): sparse GATv2-style graph attention network with squared-distance edge "
    "features, self loops, hard cutoff and a global affine energy map; loads the released "
    "EAN 7x48 checkpoint."
)


def _build(config, stats):
    from mlffbench_jat.model import build  # jax/flax are imported only when a model is built

    return build(config, stats)


def _load_weights(path, config, species=None):
    from mlffbench_jat.weights import load_weights

    return load_weights(path, config, species=species)


def _cutoff(config: JatConfig) -> float:
    return config.cutoff


def _hard_cutoff(config: JatConfig) -> bool:
    """The faithful model cuts attention at r_c: the energy jumps there (docs/models/checks.md §3)."""
    return config.cutoff_envelope == "none"


SPEC = ModelSpec(
    name="jat",
    backend="jax",
    config_class=JatConfig,
    build=_build,
    cutoff=_cutoff,
    description=DESCRIPTION,
    presets=PRESETS,
    model_defaults=dict(MODEL_DEFAULTS),
    train_defaults=dict(TRAIN_DEFAULTS),
    search_space=search_space,
    import_weights=_load_weights,
    hard_cutoff=_hard_cutoff,
)


@hookimpl
def mlffbench_models(register):
    """Registers the JAT model spec."""
    register(SPEC)
