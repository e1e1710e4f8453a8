"""A trained or released model, ready to predict: from a run directory, or from a model name,
its configuration, a seed and (optionally) released weights.

The one way the ``check``, ``md`` and ``scan`` commands, the ASE calculator and the
conformance suite get a model. A run directory is restored as the training loop would resume
it: the plugin builds the potential from ``config.json`` and ``stats.json``, the backend
initialises a state from the run's seed (on the run's first training batch when the output
was calibrated, since that sets the output scale), imported weights reset the scale as in
training, and the checkpoint (``best`` or ``last``) replaces the state. A run evaluated
without training (``mlffbench evaluate``, no checkpoint) is rebuilt from the weights it
names (``init_from``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from mlffbench import runs
from mlffbench.errors import ConfigError, RunError
from mlffbench.predictor import Configuration, make_predictor, new_backend, precision_scope
from mlffbench.training.config import TrainConfig, from_dict

CHECKPOINTS = ("best", "last")


@dataclass
class LoadedModel:
    """A model with fixed parameters: its spec, configuration, species, backend and state."""

    spec: Any
    model_config: Any
    species: tuple[int, ...]
    reference_energies: tuple[float, ...]
    train_config: TrainConfig
    backend: Any
    state: Any
    source: str = ""
    dataset: str = ""

    @property
    def cutoff(self) -> float:
        return float(self.spec.cutoff(self.model_config))

    @property
    def hard_cutoff(self) -> bool:
        """What the model declares (``ModelSpec.hard_cutoff``): its energy jumps at the cutoff."""
        declared = getattr(self.spec, "hard_cutoff", None)
        return bool(declared(self.model_config)) if declared is not None else False

    @property
    def dtype(self) -> str:
        return self.train_config.dtype

    def predictor(self):
        """A :class:`mlffbench.predictor.Predictor` of this model."""
        return make_predictor(self.backend, self.state, self.species, self.cutoff)

    def state_bytes(self) -> bytes:
        return self.backend.state_to_bytes(self.state)


def with_dtype(model_config: Any, dtype: str | None) -> Any:
    """``model_config`` with its ``dtype`` field (where it has one) set to ``dtype``."""
    if dtype is None or not dataclasses.is_dataclass(model_config):
        return model_config
    if "dtype" not in {f.name for f in dataclasses.fields(model_config)}:
        return model_config
    return dataclasses.replace(model_config, dtype=dtype)


def example_batch(species, cutoff: float):
    """A small free molecule with one atom of each species (1.2 Å apart on a zigzag): enough
    for a backend to create parameters of the right shapes."""
    from mlffbench.predictor import graph_batch

    n = len(species)
    pos = np.array([[1.2 * i, 0.4 * (i % 2), 0.0] for i in range(max(n, 2))])
    numbers = [species[i % n] for i in range(max(n, 2))]
    return graph_batch([Configuration.of(numbers, pos)], species, max(cutoff, 2.0))


def build_model(
    spec,
    model_config,
    species,
    reference_energies=None,
    train_config: TrainConfig | None = None,
    seed: int | None = None,
    weights: Path | None = None,
    params=None,
    example=None,
    source: str = "",
    dataset: str = "",
    potential=None,
    force_rms: float = 1.0,
) -> LoadedModel:
    """A freshly initialised model (``seed``), with released ``weights`` (a file the plugin
    imports) or ``params`` (parameters in the backend's form) when given.

    ``potential``: reuse this potential (built by ``spec.build`` for the same configuration and
    species) instead of building one: parameters live in the state, so models that differ in
    parameters only can share it (and its compiled functions). Its output scale is kept.
    """
    train_config = train_config or TrainConfig()
    species = tuple(int(z) for z in species)
    refs = tuple(float(e) for e in (np.zeros(len(species)) if reference_energies is None else reference_energies))
    stats = SimpleNamespace(species=species, reference_energies=np.asarray(refs))
    if potential is not None:
        kept_scale = potential.output_scale
        model = build_model(spec, model_config, species, refs, train_config, seed, weights, params, example, source, dataset,
                            force_rms=force_rms)
        model.backend.potential = potential
        potential.output_scale = kept_scale
        return model
    with precision_scope(spec.backend, train_config.dtype):  # a float64 build must not switch 64-bit JAX on for good
        potential = spec.build(model_config, stats)
    # force_rms: the training statistics' force scale, which an output calibration targets
    backend = new_backend(spec.backend, potential, train_config, force_rms)
    example = example_batch(species, spec.cutoff(model_config)) if example is None else example
    with precision_scope(spec.backend, train_config.dtype):
        state = backend.init(train_config.seed if seed is None else int(seed), example)
        if weights is not None:
            if spec.import_weights is None:
                raise ConfigError(f"model '{spec.name}' cannot import weights")
            params = spec.import_weights(Path(weights), model_config, species=species)
        if params is not None:
            state = backend.with_params(state, params)
    return LoadedModel(spec, model_config, species, refs, train_config, backend, state, source or str(weights or ""), dataset)


def restore_state(model: LoadedModel, data: bytes) -> LoadedModel:
    """The model with its state replaced by serialised state bytes (a checkpoint's)."""
    with precision_scope(model.spec.backend, model.train_config.dtype):
        state = model.backend.state_from_bytes(model.state, data)
    return dataclasses.replace(model, state=state)


def load_run(run_dir: Path, checkpoint: str = "best", dtype: str | None = None, registry=None) -> LoadedModel:
    """The model of a run directory with the parameters of its ``best`` or ``last`` checkpoint.

    ``dtype``: evaluate in this precision instead of the run's (e.g. "float64" for checks).
    """
    from mlffbench.plugins import get_registry
    from mlffbench.stats import DatasetStats
    from mlffbench.training import checkpoint as ckpt
    from mlffbench.training.loop import BEST, LAST

    if checkpoint not in CHECKPOINTS:
        raise ConfigError(f"checkpoint must be one of {', '.join(CHECKPOINTS)}, got '{checkpoint}'")
    run_dir = runs.existing_run_dir(run_dir)
    saved = runs.read_json(run_dir / runs.CONFIG)
    registry = registry or get_registry()
    try:
        spec = registry.model(saved["model"])
        stats = DatasetStats.from_dict(runs.read_json(run_dir / runs.STATS))
        model_config = from_dict(spec.config_class, saved["model_config"], f"{spec.name} model")
        train_config = from_dict(TrainConfig, saved["train"], "training")
    except KeyError as exc:
        raise RunError(f"'{run_dir / runs.CONFIG}' lacks the field {exc}") from None
    if dtype is not None:
        model_config = with_dtype(model_config, dtype)
        train_config = dataclasses.replace(train_config, dtype=dtype)
    init_from = Path(saved["init_from"]) if saved.get("init_from") else None
    path = run_dir / runs.CHECKPOINTS / (BEST if checkpoint == "best" else LAST)
    if not path.is_file() and (init_from is None or not init_from.is_file()):
        what = f"and its imported weights '{init_from}' are gone" if init_from else "and no imported weights"
        raise RunError(f"run '{run_dir}' has no checkpoint '{path.name}' {what}")
    example = _first_training_batch(run_dir, saved, spec, model_config, train_config, stats) if train_config.calibrate_output else None
    model = build_model(
        spec, model_config, stats.species, stats.reference_energies, train_config, example=example,
        weights=init_from if init_from is not None and init_from.is_file() else None,
        source=str(run_dir), dataset=str(saved.get("dataset", "")), force_rms=stats.force_rms,
    )
    if path.is_file():
        _, blob = ckpt.load(path)
        model = restore_state(model, blob)
    if stats.energy_offsets:  # fitted after force-only training (mlffbench.experiment.fit_offsets_after_training)
        with precision_scope(spec.backend, train_config.dtype):
            model.backend.add_energy_offsets(np.asarray(stats.energy_offsets))
    return model


def _first_training_batch(run_dir, saved, spec, model_config, train_config, stats):
    """The batch the training loop initialised the model on (it set the output scale)."""
    from mlffbench.datasets.loading import load_dataset
    from mlffbench.graph.batching import GraphBatcher
    from mlffbench.datasets.loading import limit_configs
    from mlffbench.datasets.user import card_of_run
    from mlffbench.graph.neighbors import compute_neighbors
    from mlffbench.splits import Split

    card = card_of_run(saved)
    ds = load_dataset(card, data_dir=saved.get("data_dir"), download=False)
    ds = limit_configs(ds, card, train_config.max_configs)
    split = Split.load(run_dir / runs.SPLIT)
    neighbors = compute_neighbors(ds, spec.cutoff(model_config))
    batcher = GraphBatcher(ds, neighbors, stats.species, train_config.batch_size)
    return batcher.make_batch(np.asarray(split.train)[: train_config.batch_size])
