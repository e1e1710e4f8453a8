"""Entry point of the SchNet plugin: registers the ``schnet`` model spec (PyTorch backend)."""

from mlffbench import hookimpl
from mlffbench.plugin.registry import ModelSpec
from mlffbench_schnet.config import PRESETS, TRAIN, SchnetConfig, search_space

DESCRIPTION = (
    "SchNet (Schütt et al. 2017) from torch-geometric's layers (Gaussian smearing, continuous-filter "
    "interaction blocks, shifted softplus) on the core's periodic neighbour lists (no truncation), "
    "per-species energy shift; PyTorch."
)


def _build(config, stats):
    from mlffbench_schnet.model import build  # torch is imported only when a model is built

    return build(config, stats)


def _load_weights(path, config, species=None):
    from mlffbench_schnet.pyg import load_pyg_weights

    return load_pyg_weights(path, config, species=species)


def _cutoff(config: SchnetConfig) -> float:
    return config.cutoff


SPEC = ModelSpec(
    name="schnet",
    backend="torch",
    config_class=SchnetConfig,
    build=_build,
    cutoff=_cutoff,
    description=DESCRIPTION,
    presets=PRESETS,
    train_defaults=dict(TRAIN),
    search_space=search_space,
    import_weights=_load_weights,
)


@hookimpl
def mlffbench_models(register):
    """Registers the SchNet model spec."""
    register(SPEC)
