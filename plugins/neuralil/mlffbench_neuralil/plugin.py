"""Entry point of the NeuralIL plugin: registers the ``neuralil`` model spec (JAX backend)."""

from mlffbench import hookimpl
from mlffbench.plugin.registry import ModelSpec
from mlffbench_neuralil.config import EAN_TRAIN, PRESETS, NeuralilConfig, search_space

DESCRIPTION = (
    "NeuralIL (Montes-Campos et al. 2022): orthogonalised spherical Bessel power-spectrum "
    "descriptors per species pair + MLP with LayerNorm and a switched repulsive Morse term; "
    "loads the released EAN checkpoint (OPTAX_2B25114)."
)


def _build(config, stats):
    from mlffbench_neuralil.model import build  # jax/flax are imported only when a model is built

    return build(config, stats)


def _load_weights(path, config, species=None):
    from mlffbench_neuralil.weights import load_weights

    return load_weights(path, config, species=species)


def _cutoff(config: NeuralilConfig) -> float:
    return config.cutoff


SPEC = ModelSpec(
    name="neuralil",
    backend="jax",
    config_class=NeuralilConfig,
    build=_build,
    cutoff=_cutoff,
    description=DESCRIPTION,
    presets=PRESETS,
    train_defaults=dict(EAN_TRAIN),
    search_space=search_space,
    import_weights=_load_weights,
)


@hookimpl
def mlffbench_models(register):
    """Registers the NeuralIL model spec."""
    register(SPEC)
