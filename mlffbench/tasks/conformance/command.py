"""``mlffbench check``: the conformance suite on a model (fresh from a seed, or with released
weights) or on the model of a run directory."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from mlffbench.backends.predictor import Configuration
from mlffbench.data.loading import load_dataset
from mlffbench.data.user import card_of_run, resolve_card
from mlffbench.errors import ConfigError
from mlffbench.plugin.manager import get_registry
from mlffbench.runs.experiment import resolve_configs
from mlffbench.runs.trained import TrainedModel, with_dtype
from mlffbench.tasks.conformance.checks import Report, run_suite
from mlffbench.tasks.conformance.configurations import dataset_configurations, standard_configurations
from mlffbench.tasks.conformance.subject import model_under_test
from mlffbench.training.config import TrainConfig

DEFAULT_DATASET = "ean"  # species and model presets when neither a run nor --dataset says


def check_model(
    target: str,
    init_from: Path | None = None,
    dataset: str | None = None,
    data_dir: Path | None = None,
    model_params: dict | None = None,
    dtype: str = "float64",
    seed: int = 0,
    checkpoint: str = "best",
    config_indices=(0,),
    only=None,
) -> Report:
    """Run the suite. ``target``: a model name or a run directory.

    Configurations: ``config_indices`` of ``dataset`` when given, else EAN configuration 0
    and rMD17 ethanol configuration 0 (those with elements the model does not know are left
    out); for a run whose elements neither has (e.g. HfO2), the first configuration of the
    run's own dataset with only its elements. Species: the run's, else those of ``dataset``
    (default EAN).
    """

    registry = get_registry()
    path = Path(target)
    if (path / "config.json").is_file():
        if init_from is not None or model_params:
            raise ConfigError("--init-from and --param apply to a model name, not to a run directory")
        model = TrainedModel.from_run(path, checkpoint=checkpoint, dtype=dtype, registry=registry)
    else:
        if target not in registry.models and (path.exists() or "/" in target):
            raise ConfigError(f"'{target}' is neither a model name nor a run directory (no config.json)")
        spec = registry.model(target)

        card = resolve_card(dataset or DEFAULT_DATASET)
        config, _ = resolve_configs(spec, card, dict(model_params or {}), {}, from_weights=init_from is not None)
        config = with_dtype(config, dtype)
        species = _dataset_species(card, data_dir)
        train = dataclasses.replace(TrainConfig(), dtype=dtype, seed=seed)
        if init_from is not None:
            model = TrainedModel.from_weights(
                spec, config, species, init_from, train_config=train, source=str(init_from)
            )
        else:
            model = TrainedModel.fresh(spec, config, species, train_config=train, seed=seed, source=f"seed {seed}")
    return check_trained(model, dataset, data_dir, config_indices, only, seed, dtype)


def check_trained(
    model: TrainedModel,
    dataset: str | None = None,
    data_dir: Path | None = None,
    config_indices=(0,),
    only=None,
    seed: int = 0,
    dtype: str | None = None,
) -> Report:
    """The suite on ``model`` (configurations as :func:`check_model` picks them; ``dtype``:
    the tolerances' precision, default the model's)."""
    if dataset:
        configs = dataset_configurations(dataset, config_indices, data_dir)
    else:
        configs = standard_configurations(data_dir)
        known = set(model.species)
        if model.run is not None and not any({int(z) for z in c.numbers} <= known for _, c in configs):
            configs = _run_configuration(model, data_dir)
    subject = model_under_test(
        model, name=f"{model.spec.name} ({model.source})" if model.source else model.spec.name, seed=seed
    )
    return run_suite(subject, configs, dtype=dtype or model.dtype, only=only)


def _run_configuration(model: TrainedModel, data_dir) -> list[tuple[str, Configuration]]:
    """The first configuration of the run's own dataset that has only the run's elements."""

    assert model.run is not None
    card = card_of_run(model.run.config)
    ds = load_dataset(card, data_dir=data_dir or model.run.data_dir, download=False)
    known = set(model.species)
    for i in range(ds.n_configs):
        if {int(z) for z in ds.numbers[ds.atoms_of(i)]} <= known:
            return [(f"{card.name}[{i}]", Configuration.from_dataset(ds, i))]
    raise ConfigError(f"no configuration of dataset '{card.name}' has only elements the model {model.spec.name} knows")


def _dataset_species(dataset, data_dir) -> tuple[int, ...]:

    ds = load_dataset(dataset, data_dir=data_dir, download=False)
    return tuple(int(z) for z in ds.elements)
