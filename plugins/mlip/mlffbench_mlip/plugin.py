"""Entry point of the mlip plugin: registers ``mace-jax``, ``nequip-jax`` and ``visnet-jax``
(InstaDeep's mlip modules on the JAX backend). mlip itself is imported only when a model is built."""

from mlffbench import hookimpl
from mlffbench.plugin.registry import ModelSpec
from mlffbench_mlip.config import (
    MACE_SEARCH_SPACE,
    NEQUIP_SEARCH_SPACE,
    PRESETS,
    TRAIN_DEFAULTS,
    VISNET_SEARCH_SPACE,
    VISNET_TRAIN_DEFAULTS,
    MaceJaxConfig,
    NequipJaxConfig,
    VisnetJaxConfig,
)


def _build(config, stats):
    from mlffbench_mlip.model import build  # jax, flax and mlip are imported only when a model is built

    return build(config, stats)


def _cutoff(config) -> float:
    return config.cutoff


def _spec(name, config_class, description, train_defaults, search_space):
    return ModelSpec(
        name=name,
        backend="jax",
        config_class=config_class,
        build=_build,
        cutoff=_cutoff,
        description=description,
        presets=PRESETS[name],
        train_defaults=dict(train_defaults),
        search_space=search_space,
    )


SPECS = (
    _spec(
        "mace-jax",
        MaceJaxConfig,
        "MACE (Batatia et al. 2022) from InstaDeep's mlip 0.2.5 (JAX): higher-order equivariant "
        "message passing, run on mlffbench's edge graph.",
        TRAIN_DEFAULTS,
        MACE_SEARCH_SPACE,
    ),
    _spec(
        "nequip-jax",
        NequipJaxConfig,
        "NequIP (Batzner et al. 2022) from InstaDeep's mlip 0.2.5 (JAX): E(3)-equivariant "
        "interatomic potential, run on mlffbench's edge graph.",
        TRAIN_DEFAULTS,
        NEQUIP_SEARCH_SPACE,
    ),
    _spec(
        "visnet-jax",
        VisnetJaxConfig,
        "ViSNet (Wang et al. 2024) from InstaDeep's mlip 0.2.5 (JAX): vector-scalar interactive "
        "equivariant network, run on mlffbench's edge graph.",
        VISNET_TRAIN_DEFAULTS,
        VISNET_SEARCH_SPACE,
    ),
)


@hookimpl
def mlffbench_models(register):
    """Registers the three mlip model specs."""
    for spec in SPECS:
        register(spec)
