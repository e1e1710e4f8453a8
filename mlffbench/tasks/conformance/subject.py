"""The model under test of a model plugin: a :class:`mlffbench.runs.trained.TrainedModel` wrapped for
the suite, with a save/load round trip through a checkpoint file and seeded re-initialisation."""

from __future__ import annotations

from pathlib import Path

from mlffbench.plugin.manager import get_registry
from mlffbench.runs.trained import TrainedModel, with_dtype
from mlffbench.tasks.conformance.checks import ModelUnderTest
from mlffbench.training import checkpoint
from mlffbench.training.config import TrainConfig


def model_under_test(model: TrainedModel, name: str | None = None, seed: int = 0) -> ModelUnderTest:
    """The suite's view of ``model`` (its hard cutoff as its spec declares)."""

    def fresh(s: int) -> TrainedModel:
        # the same backend (architecture, output scale), new parameters: nothing to recompile
        return model.reseeded(s)

    def save_load(folder: Path):
        path = Path(folder) / "roundtrip.ckpt"
        checkpoint.save(path, {"model": model.spec.name}, model.state_bytes())
        other = fresh(seed + 1000)  # other parameters until the checkpoint replaces them
        _, blob = checkpoint.load(path)
        return other.with_state_bytes(blob).predictor()

    return ModelUnderTest(
        predictor=model.predictor(),
        name=name or model.spec.name,
        hard_cutoff=model.hard_cutoff,
        save_load=save_load,
        from_seed=lambda s: fresh(s).predictor(),
    )


def plugin_model(
    model_name: str,
    model_config=None,
    species=(1, 6, 7, 8),
    weights: Path | None = None,
    seed: int = 0,
    dtype: str = "float64",
    reference_energies=None,
    **config_values,
) -> ModelUnderTest:
    """The model ``model_name`` of an installed plugin (found through the registry), built
    for ``species`` from ``model_config`` (or the spec's config class with ``config_values``)
    in ``dtype``, initialised from ``seed`` or loaded from released ``weights``."""
    import dataclasses

    spec = get_registry().model(model_name)
    config = model_config if model_config is not None else spec.config_class(**config_values)
    config = with_dtype(config, dtype)
    train = dataclasses.replace(TrainConfig(), dtype=dtype, seed=seed)
    if weights is not None:
        model = TrainedModel.from_weights(
            spec, config, species, weights, reference_energies=reference_energies, train_config=train
        )
    else:
        model = TrainedModel.fresh(
            spec, config, species, reference_energies=reference_energies, train_config=train, seed=seed
        )
    return model_under_test(model, seed=seed)
