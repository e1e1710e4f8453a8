"""Entry point of the MACE plugin: registers the ``mace`` model spec (PyTorch backend)."""

from mlffbench import hookimpl
from mlffbench.plugin.registry import ModelSpec
from mlffbench_mace.config import PRESETS, TRAIN, MaceConfig, search_space

DESCRIPTION = (
    "MACE (Batatia et al. 2022) from mace-torch's own blocks (Bessel radial embedding, spherical "
    "harmonics, residual interaction blocks, symmetric-contraction products, linear + MLP readouts) "
    "on the core's periodic neighbour lists, per-species reference energies; PyTorch."
)


def _build(config, stats):
    from mlffbench_mace.model import build  # torch and mace are imported only when a model is built

    return build(config, stats)


def _cutoff(config: MaceConfig) -> float:
    return config.r_max


SPEC = ModelSpec(
    name="mace",
    backend="torch",
    config_class=MaceConfig,
    build=_build,
    cutoff=_cutoff,
    description=DESCRIPTION,
    presets=PRESETS,
    train_defaults=dict(TRAIN),
    search_space=search_space,
)


@hookimpl
def mlffbench_models(register):
    """Registers the MACE model spec."""
    register(SPEC)
