"""A trained model: the one type every command gets a model through.

:class:`TrainedModel` holds a model's spec, configuration, dataset statistics, backend and
state, and (where it was made on a dataset) the data it was trained on (:class:`ModelData`)
and the record of its run directory (:class:`mlffbench.runs.directory.RunRecord`). It is made by

* :meth:`TrainedModel.fresh`: parameters from a seed (``mlffbench check MODEL``, the
  conformance suite, a plugin's tests);
* :meth:`TrainedModel.from_weights`: released weights the plugin imports
  (``check --init-from``);
* :meth:`TrainedModel.from_run`: a run directory, from its files alone (config, statistics,
  best or last checkpoint; the checkpoint holds the output scale, so no data is read unless
  ``with_data``) — ``check RUN``, ``md``, ``scan``, the ASE calculator, ``bench --run``,
  ``compare``, ``tune``'s speed objective;
* :meth:`TrainedModel.on_split` / :meth:`TrainedModel.on_dataset`: the model a run builds on
  its data before training (``run``/``evaluate``; ``bench MODEL``), built exactly as the
  training loop builds it.

Predictions go one way, through the backend's ``predict``/``predict_with_stress``: on the
model's data (:meth:`TrainedModel.predictions`) or on plain configurations
(:meth:`TrainedModel.predictor`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, cast

import numpy as np

from mlffbench.backends.base import get_backend_class
from mlffbench.backends.predictor import Configuration, graph_batch
from mlffbench.data.loading import default_cache_dir, limit_configs, load_dataset
from mlffbench.data.stats import DatasetStats, compute_stats
from mlffbench.data.user import card_of_run, resolve_card
from mlffbench.errors import ConfigError, RunError
from mlffbench.graph.batching import GraphBatcher
from mlffbench.graph.neighbors import compute_neighbors
from mlffbench.plugin.manager import get_registry
from mlffbench.plugin.registry import Config
from mlffbench.runs.directory import RunRecord
from mlffbench.training import checkpoint as ckpt
from mlffbench.training.config import TrainConfig, from_dict

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    from mlffbench.backends.base import Backend
    from mlffbench.backends.jax.trainer import TrainState
    from mlffbench.backends.predictor import Predictor
    from mlffbench.backends.torch.trainer import TorchState
    from mlffbench.data.splits import Split
    from mlffbench.data.structures import StructureSet
    from mlffbench.graph.batching import GraphBatch
    from mlffbench.graph.neighbors import NeighborTable
    from mlffbench.plugin.registry import DatasetCard, ModelSpec

    BackendState = TrainState | TorchState

CHECKPOINTS = ("best", "last")


@dataclass
class ModelData:
    """The data of a model made on a dataset: its card, the (possibly limited) dataset, the
    split, the neighbour lists and the batcher of the model's cutoff and species."""

    card: DatasetCard
    dataset: StructureSet
    split: Split
    neighbors: NeighborTable
    batcher: GraphBatcher


@dataclass
class TrainedModel(Generic[Config]):
    """A model ready to predict, time, check, save and train on.

    ``model_config``: the plugin's configuration (an instance of ``spec.config_class``).
    ``state``: the backend's state (parameters and optimizer); None only between
    :meth:`on_split` and the training loop's initialisation. ``source``: where the parameters
    came from (a run directory, a weights file, "seed N"); ``dataset_name``: the dataset it
    was made on ("" if none). ``data`` and ``run`` are there where the model was made on a
    dataset / restored from a run directory.
    """

    spec: ModelSpec[Config]
    model_config: Config
    train_config: TrainConfig
    stats: DatasetStats
    backend: Backend
    state: BackendState | None
    label: str
    source: str = ""
    dataset_name: str = ""
    data: ModelData | None = None
    run: RunRecord | None = None

    # ----------------------------------------------------------- properties
    @property
    def species(self) -> tuple[int, ...]:
        return tuple(int(z) for z in self.stats.species)

    @property
    def reference_energies(self) -> tuple[float, ...]:
        return tuple(float(e) for e in self.stats.reference_energies)

    @property
    def cutoff(self) -> float:
        return float(self.spec.cutoff(self.model_config))

    @property
    def hard_cutoff(self) -> bool:
        """What the model declares (``ModelSpec.hard_cutoff``): its energy jumps at the cutoff."""
        declared = self.spec.hard_cutoff
        return bool(declared(self.model_config)) if declared is not None else False

    @property
    def dtype(self) -> str:
        return self.train_config.dtype

    @property
    def run_dir(self) -> Path | None:
        return self.run.run_dir if self.run is not None else None

    @property
    def metrics(self) -> dict[str, Any] | None:
        return self.run.metrics if self.run is not None else None

    @property
    def history(self) -> list[dict[str, Any]] | None:
        return self.run.history if self.run is not None else None

    def require_data(self) -> ModelData:
        """The model's data (RunError where it was made without a dataset)."""
        if self.data is None:
            raise RunError(f"model '{self.label}' ({self.source or 'no source'}) was made without its dataset")
        return self.data

    # ---------------------------------------------------------- prediction
    def predictor(self) -> Predictor:
        """This model on plain configurations (:class:`mlffbench.backends.predictor.Predictor`)."""
        return self.backend.predictor(self._state(), self.species, self.cutoff)

    def predictions(self, indices, batch_size: int | None = None, stress: bool = False) -> dict[str, np.ndarray]:
        """Energies and forces of configurations ``indices`` of the model's dataset, with the references.

        Returns ``config`` (C,), ``energy_pred``/``energy_ref`` (C,) eV, ``n_atoms`` (C,),
        ``force_pred``/``force_ref`` (A, 3) eV/Å and ``atom_config`` (A,) (position in ``config``);
        with ``stress`` also ``stress_pred``/``stress_ref`` (C, 3, 3) eV/Å³ and ``stress_mask`` (C,)
        (periodic configurations with a reference stress).
        """
        data, state = self.require_data(), self._state()
        idx = np.asarray(indices, dtype=np.int64)
        size = batch_size or self.train_config.eval_batch_size
        keys = ("config", "energy_pred", "energy_ref", "n_atoms", "force_pred", "force_ref", "atom_config")
        out: dict[str, list] = {k: [] for k in keys + (("stress_pred", "stress_ref", "stress_mask") if stress else ())}
        done = 0
        for batch in data.batcher.batches(idx, batch_size=size):
            graphs, atoms = np.asarray(batch.graph_mask), np.asarray(batch.atom_mask)
            if stress:
                energy, forces, sigma = self.backend.predict_with_stress(state, batch)
                out["stress_pred"].append(sigma[graphs])
                out["stress_ref"].append(batch.stress[graphs])
                out["stress_mask"].append(batch.stress_mask[graphs])
            else:
                energy, forces = self.backend.predict(state, batch)
            n = int(graphs.sum())
            out["config"].append(batch.config_index[graphs])
            out["energy_pred"].append(np.asarray(energy)[graphs])
            out["energy_ref"].append(batch.energy[graphs])
            out["n_atoms"].append(batch.n_atoms[graphs])
            out["force_pred"].append(np.asarray(forces)[atoms])
            out["force_ref"].append(batch.forces[atoms])
            out["atom_config"].append(done + batch.graph_index[atoms])
            done += n
        return {k: np.concatenate(v) if v else np.zeros(0) for k, v in out.items()}

    # --------------------------------------------------------------- state
    def _state(self) -> BackendState:
        if self.state is None:
            raise RunError(f"model '{self.label}' has no state yet (it is initialised by training)")
        return self.state

    def state_bytes(self) -> bytes:
        """The serialised state (parameters, optimizer, output scale), as checkpoints hold it."""
        return self.backend.state_to_bytes(self._state())

    def with_state_bytes(self, data: bytes) -> TrainedModel:
        """The model with its state replaced by serialised state bytes (a checkpoint's)."""
        with self.backend.precision(self.dtype):
            state = self.backend.state_from_bytes(self._state(), data)
        return dataclasses.replace(self, state=state)

    def reseeded(self, seed: int) -> TrainedModel:
        """The same architecture, backend and output scale with parameters from ``seed``:
        models differing in parameters only share the backend's compiled functions."""
        potential = self.backend.potential
        scale = potential.output_scale
        state = self.backend.init(int(seed), example_batch(self.species, self.cutoff))
        potential.output_scale = scale
        return dataclasses.replace(self, state=state, source=f"seed {seed}")

    # -------------------------------------------------------- constructors
    @classmethod
    def fresh(
        cls,
        spec: ModelSpec,
        model_config: Any,
        species,
        *,
        reference_energies=None,
        train_config: TrainConfig | None = None,
        seed: int | None = None,
        params: Any = None,
        example: GraphBatch | None = None,
        stats: DatasetStats | None = None,
        source: str = "",
        dataset_name: str = "",
    ) -> TrainedModel:
        """``spec``'s model for ``species``, parameters from ``seed`` (default: the training
        seed), or ``params`` (parameters in the backend's form) when given.

        ``example``: the batch the backend initialises on (default: a small molecule with every
        species; the output calibration, where on, uses it). ``stats``: the statistics to build
        on (default: only ``species`` and ``reference_energies``, zeros unless given).
        """

        train_config = train_config or TrainConfig()
        stats = stats or species_stats(species, reference_energies)
        backend_class = get_backend_class(spec.backend)
        with backend_class.build_scope(train_config.dtype):  # e.g. 64-bit JAX for a float64 build, for it only
            potential = spec.build(model_config, stats)
        # force_rms: the training statistics' force scale, which an output calibration targets
        backend = backend_class(potential, train_config, force_rms=stats.force_rms)
        example = example_batch(stats.species, spec.cutoff(model_config)) if example is None else example
        state = backend.init(train_config.seed if seed is None else int(seed), example)
        if params is not None:
            state = backend.with_params(state, params)
        return cls(
            spec,
            model_config,
            train_config,
            stats,
            backend,
            state,
            label=spec.name,
            source=source or (f"seed {train_config.seed if seed is None else seed}" if params is None else ""),
            dataset_name=dataset_name,
        )

    @classmethod
    def from_weights(
        cls, spec: ModelSpec, model_config: Any, species, weights: Path, **fresh_options: Any
    ) -> TrainedModel:
        """``spec``'s model with released ``weights`` (a file the plugin's ``import_weights``
        reads, ordered for ``species``); used as published (no output calibration).
        ``fresh_options``: those of :meth:`fresh`."""
        if spec.import_weights is None:
            raise ConfigError(f"model '{spec.name}' cannot import weights")
        dtype = (fresh_options.get("train_config") or TrainConfig()).dtype
        with _build_scope(spec, dtype):
            params = spec.import_weights(Path(weights), model_config, species=tuple(int(z) for z in species))
        fresh_options.setdefault("source", str(weights))
        return cls.fresh(spec, model_config, species, params=params, **fresh_options)

    @classmethod
    def from_run(
        cls,
        run_dir: Path,
        checkpoint: str = "best",
        dtype: str | None = None,
        *,
        with_data: bool = False,
        data_dir: Path | None = None,
        download: bool = True,
        registry=None,
    ) -> TrainedModel:
        """The model of a run directory with the parameters of its ``best`` or ``last``
        checkpoint, restored from the run's files alone (see :class:`mlffbench.runs.directory.RunRecord`).

        The plugin builds the potential from ``config.json`` and ``stats.json``; the checkpoint
        replaces the state (with the output scale it holds); energy offsets fitted after
        force-only training are applied. A run evaluated without training (``mlffbench
        evaluate``, no checkpoint) is rebuilt from the weights it names (``init_from``).
        ``dtype``: evaluate in this precision instead of the run's (e.g. "float64" for checks).
        ``with_data``: also load the run's dataset (``data_dir``, else the run's), check its
        fingerprint against the split and attach it (:class:`ModelData`).
        """

        if checkpoint not in CHECKPOINTS:
            raise ConfigError(f"checkpoint must be one of {', '.join(CHECKPOINTS)}, got '{checkpoint}'")
        record = RunRecord.read(Path(run_dir))
        run_dir = record.run_dir
        spec = (registry or get_registry()).model(record.model)
        model_config = from_dict(spec.config_class, record.model_config, f"{spec.name} model")
        train_config = record.train
        if dtype is not None:
            model_config = with_dtype(model_config, dtype)
            train_config = dataclasses.replace(train_config, dtype=dtype)
        stats, init_from = record.stats, record.init_from
        path = record.checkpoint(checkpoint)
        weights = init_from if init_from is not None and init_from.is_file() else None
        if not path.is_file() and weights is None:
            what = f"and its imported weights '{init_from}' are gone" if init_from else "and no imported weights"
            raise RunError(f"run '{run_dir}' has no checkpoint '{path.name}' {what}")
        options: dict[str, Any] = {
            "train_config": train_config,
            "stats": stats,
            "source": str(run_dir),
            "dataset_name": record.dataset,
        }
        if weights is not None:
            model = cls.from_weights(spec, model_config, stats.species, weights, **options)
        else:
            model = cls.fresh(spec, model_config, stats.species, **options)
        if path.is_file():
            _, blob = ckpt.load(path)
            if train_config.calibrate_output and init_from is None and model.backend.saved_output_scale(blob) is None:
                # a checkpoint of an older state format (JAX format 1) lacks the output scale:
                # recompute it on the first training batch, as training did (reads the data)
                first = _first_training_batch(record, spec, model_config, train_config)
                model = dataclasses.replace(model, state=model.backend.init(train_config.seed, first))
            model = model.with_state_bytes(blob)
        if (
            stats.energy_offsets
        ):  # fitted after force-only training (mlffbench.runs.experiment.fit_offsets_after_training)
            model.backend.add_energy_offsets(np.asarray(stats.energy_offsets))
        model.run = record
        if with_data:
            model.data = _run_data(record, spec, model_config, train_config, data_dir, download)
        return model

    @classmethod
    def on_split(
        cls,
        spec: ModelSpec,
        card: DatasetCard,
        ds: StructureSet,
        split: Split,
        model_config: Any,
        train_config: TrainConfig,
    ) -> TrainedModel:
        """The model a run trains, before its state: neighbour lists (cached), training
        statistics, potential, backend and batcher on ``split``. The training loop (or
        :meth:`on_dataset`) initialises the state on the first training batch."""

        neighbors = compute_neighbors(ds, spec.cutoff(model_config), cache_dir=default_cache_dir() / "neighbors")
        stats = compute_stats(ds, split.train, neighbors)
        backend_class = get_backend_class(spec.backend)
        with backend_class.build_scope(train_config.dtype):
            potential = spec.build(model_config, stats)
        backend = backend_class(potential, train_config, force_rms=stats.force_rms)
        batcher = GraphBatcher(ds, neighbors, stats.species, train_config.batch_size)
        data = ModelData(card, ds, split, neighbors, batcher)
        return cls(
            spec, model_config, train_config, stats, backend, None, label=spec.name, dataset_name=card.name, data=data
        )

    @classmethod
    def on_dataset(
        cls,
        model: str,
        dataset: str,
        model_params: dict[str, Any] | None = None,
        train_params: dict[str, Any] | None = None,
        data_dir: Path | None = None,
        init_from: Path | None = None,
        download: bool = True,
    ) -> TrainedModel:
        """``model`` with its default (or given) configuration on the split a new run on
        ``dataset`` would use, initialised as the training loop does (seed, first training
        batch) or with the released weights ``init_from``."""
        from mlffbench.runs.experiment import resolve_configs, run_split

        spec, card = get_registry().model(model), resolve_card(dataset)
        model_config, train_config = resolve_configs(
            spec, card, model_params or {}, train_params or {}, from_weights=init_from is not None
        )
        ds = load_data(card, data_dir, train_config.max_configs, download=download)
        split = run_split(ds, card, train_config)
        if init_from is not None and spec.import_weights is None:
            raise ConfigError(f"model '{spec.name}' cannot import weights (--init-from)")
        made = cls.on_split(spec, card, ds, split, model_config, train_config)
        train_idx = np.asarray(split.train)
        if train_idx.size == 0:
            raise RunError(f"the training part of the split of '{card.name}' is empty")
        size = train_config.batch_size
        example = next(
            iter(made.require_data().batcher.batches(train_idx[:size], batch_size=size))
        )  # as the training loop does
        state = made.backend.init(train_config.seed, example)
        if init_from is not None:
            assert spec.import_weights is not None  # checked above: init_from needs import_weights
            with _build_scope(spec, train_config.dtype):
                params = spec.import_weights(Path(init_from), model_config, species=made.stats.species)
            state = made.backend.with_params(state, params)
        made.state = state
        made.source = str(init_from) if init_from is not None else f"seed {train_config.seed}"
        return made


# ------------------------------------------------------------------ helpers
def _build_scope(spec: ModelSpec, dtype: str):
    return get_backend_class(spec.backend).build_scope(dtype)


def species_stats(species, reference_energies=None, force_rms: float = 1.0) -> DatasetStats:
    """Statistics naming only a species table (and per-species reference energies, zeros
    unless given): what a model built without a dataset is built on."""
    species = tuple(int(z) for z in species)
    refs = tuple(float(e) for e in (np.zeros(len(species)) if reference_energies is None else reference_energies))
    return DatasetStats(
        species=species,
        reference_energies=refs,
        energy_per_atom_mean=0.0,
        energy_per_atom_std=0.0,
        force_rms=float(force_rms),
        mean_neighbors=0.0,
        max_atoms=0,
    )


def with_dtype(model_config: Any, dtype: str | None) -> Any:
    """``model_config`` with its ``dtype`` field (where it has one) set to ``dtype``."""
    if dtype is None or not dataclasses.is_dataclass(model_config):
        return model_config
    if "dtype" not in {f.name for f in dataclasses.fields(model_config)}:
        return model_config
    return dataclasses.replace(cast("DataclassInstance", model_config), dtype=dtype)  # an instance, not a class


def example_batch(species, cutoff: float) -> GraphBatch:
    """A small free molecule with one atom of each species (1.2 Å apart on a zigzag): enough
    for a backend to create parameters of the right shapes."""

    n = len(species)
    pos = np.array([[1.2 * i, 0.4 * (i % 2), 0.0] for i in range(max(n, 2))])
    numbers = [species[i % n] for i in range(max(n, 2))]
    return graph_batch([Configuration.of(numbers, pos)], species, max(cutoff, 2.0))


_DATASETS: dict[tuple, StructureSet] = {}


def load_data(card: DatasetCard, data_dir: Path | None, max_configs: int = 0, download: bool = True) -> StructureSet:
    """The dataset of ``card`` (first ``max_configs`` configurations when > 0), kept in memory."""

    key = (card.name, repr(card.to_dict()), str(data_dir or ""), int(max_configs or 0))
    if key not in _DATASETS:
        ds = load_dataset(card, data_dir=data_dir, download=download)
        ds = limit_configs(ds, card, max_configs)
        _DATASETS[key] = ds
    return _DATASETS[key]


def _run_data(
    record: RunRecord,
    spec: ModelSpec,
    model_config: Any,
    train_config: TrainConfig,
    data_dir: Path | None,
    download: bool,
) -> ModelData:
    """The data of a run: its dataset (fingerprint checked against the split), neighbour lists and batcher."""

    card = card_of_run(record.config)
    ds = load_data(card, data_dir or record.data_dir, train_config.max_configs, download=download)
    if record.split.dataset_fingerprint != ds.fingerprint():
        raise RunError(
            f"run '{record.run_dir}' was made on other data than dataset '{card.name}' here (dataset fingerprints differ)"
        )
    neighbors = compute_neighbors(ds, spec.cutoff(model_config), cache_dir=default_cache_dir() / "neighbors")
    batcher = GraphBatcher(ds, neighbors, record.stats.species, train_config.batch_size)
    return ModelData(card, ds, record.split, neighbors, batcher)


def _first_training_batch(
    record: RunRecord, spec: ModelSpec, model_config: Any, train_config: TrainConfig
) -> GraphBatch:
    """The batch the training loop initialised the model on (it set the output scale); only
    for checkpoints of a state format without the scale."""

    card = card_of_run(record.config)
    ds = limit_configs(load_dataset(card, data_dir=record.data_dir, download=False), card, train_config.max_configs)
    neighbors = compute_neighbors(ds, spec.cutoff(model_config))
    batcher = GraphBatcher(ds, neighbors, record.stats.species, train_config.batch_size)
    return batcher.make_batch(np.asarray(record.split.train)[: train_config.batch_size])
