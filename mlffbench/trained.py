"""A model ready to predict and to time: freshly initialised on a dataset, or restored from a
run directory (its configuration, split and best checkpoint).

Used by ``mlffbench bench``, ``compare`` and ``tune``. A fresh model is built exactly as
:func:`mlffbench.experiment.train_and_evaluate` builds it (same configuration resolution,
split, statistics and initial state); a restored one comes from
:func:`mlffbench.restore.load_run` (the one way to restore a run), with the run's data added.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlffbench import runs
from mlffbench.errors import RunError
from mlffbench.experiment import Prepared


@dataclass
class ModelHandle(Prepared):
    """What a run assembles (:class:`mlffbench.experiment.Prepared`) plus a name and a state."""

    label: str
    state: Any
    run_dir: Path | None = None
    metrics: dict[str, Any] | None = None
    history: list[dict[str, Any]] | None = None


_DATASETS: dict[tuple, Any] = {}


def load_data(card, data_dir: Path | None, max_configs: int = 0, download: bool = True):
    """The dataset of ``card`` (first ``max_configs`` configurations when > 0), kept in memory."""
    from mlffbench.datasets.loading import load_dataset

    from mlffbench.datasets.loading import limit_configs

    key = (card.name, repr(card.to_dict()), str(data_dir or ""), int(max_configs or 0))
    if key not in _DATASETS:
        ds = load_dataset(card, data_dir=data_dir, download=download)
        ds = limit_configs(ds, card, max_configs)
        _DATASETS[key] = ds
    return _DATASETS[key]


def _assemble(label, spec, card, ds, split, model_config, train_config, initial=None):
    from mlffbench.experiment import assemble

    p = assemble(spec, card, ds, split, model_config, train_config)
    train_idx = np.asarray(split.train)
    if train_idx.size == 0:
        raise RunError(f"the training part of the split of '{card.name}' is empty")
    size = train_config.batch_size
    example = next(iter(p.batcher.batches(train_idx[:size], batch_size=size)))  # as the training loop does
    state = p.backend.init(train_config.seed, example)
    if initial is not None:
        state = p.backend.with_params(state, initial)
    return ModelHandle(**vars(p), label=label, state=state)


def fresh_model(
    model: str,
    dataset: str,
    model_params: dict[str, Any] | None = None,
    train_params: dict[str, Any] | None = None,
    data_dir: Path | None = None,
    init_from: Path | None = None,
    download: bool = True,
) -> ModelHandle:
    """``model`` with its default (or given) configuration, built on the statistics of the
    training part of the split a new run would use; parameters from the seed or ``init_from``."""
    from mlffbench.experiment import resolve_configs, run_split
    from mlffbench.errors import ConfigError
    from mlffbench.plugins import get_registry

    registry = get_registry()
    from mlffbench.datasets.user import resolve_card

    spec, card = registry.model(model), resolve_card(dataset)
    model_config, train_config = resolve_configs(spec, card, model_params or {}, train_params or {}, from_weights=init_from is not None)
    ds = load_data(card, data_dir, train_config.max_configs, download=download)
    split = run_split(ds, card, train_config)
    initial = None
    if init_from is not None:
        if spec.import_weights is None:
            raise ConfigError(f"model '{spec.name}' cannot import weights (--init-from)")
        from mlffbench.stats import compute_stats

        species = compute_stats(ds, split.train).species
        initial = spec.import_weights(Path(init_from), model_config, species=species)
    return _assemble(spec.name, spec, card, ds, split, model_config, train_config, initial=initial)


def from_run(run_dir: Path, data_dir: Path | None = None, download: bool = True) -> ModelHandle:
    """The best state of a finished run (see :func:`mlffbench.restore.load_run`), with its
    dataset, split and batches."""
    from mlffbench.graph.batching import GraphBatcher
    from mlffbench.graph.neighbors import compute_neighbors
    from mlffbench.datasets.loading import default_cache_dir
    from mlffbench.restore import load_run
    from mlffbench.splits import Split
    from mlffbench.stats import compute_stats

    run_dir = runs.existing_run_dir(Path(run_dir))
    model = load_run(run_dir)
    saved = runs.read_json(run_dir / runs.CONFIG)
    from mlffbench.datasets.user import card_of_run

    spec, card = model.spec, card_of_run(saved)
    data_dir = data_dir or (Path(saved["data_dir"]) if saved.get("data_dir") else None)
    ds = load_data(card, data_dir, model.train_config.max_configs, download=download)
    split = Split.load(run_dir / runs.SPLIT)
    if split.dataset_fingerprint != ds.fingerprint():
        raise RunError(f"run '{run_dir}' was made on other data than dataset '{card.name}' here (dataset fingerprints differ)")
    neighbors = compute_neighbors(ds, model.cutoff, cache_dir=default_cache_dir() / "neighbors")
    stats = compute_stats(ds, split.train, neighbors)
    batcher = GraphBatcher(ds, neighbors, model.species, model.train_config.batch_size)
    handle = ModelHandle(spec=spec, card=card, dataset=ds, split=split, neighbors=neighbors, stats=stats,
                         model_config=model.model_config, train_config=model.train_config, batcher=batcher,
                         backend=model.backend, label=spec.name, state=model.state, run_dir=run_dir)
    if (run_dir / runs.METRICS).is_file():
        handle.metrics = runs.read_json(run_dir / runs.METRICS)
    if (run_dir / runs.HISTORY).is_file():
        handle.history = runs.read_json(run_dir / runs.HISTORY)
    return handle


def predictions(handle: ModelHandle, indices, batch_size: int | None = None, stress: bool = False) -> dict[str, np.ndarray]:
    """Energies and forces of ``indices`` predicted by the model, with the references.

    Returns ``config`` (C,), ``energy_pred``/``energy_ref`` (C,) eV, ``n_atoms`` (C,),
    ``force_pred``/``force_ref`` (A, 3) eV/Å and ``atom_config`` (A,) (position in ``config``);
    with ``stress`` also ``stress_pred``/``stress_ref`` (C, 3, 3) eV/Å³ and ``stress_mask`` (C,)
    (periodic configurations with a reference stress).
    """
    idx = np.asarray(indices, dtype=np.int64)
    size = batch_size or handle.train_config.eval_batch_size
    keys = ("config", "energy_pred", "energy_ref", "n_atoms", "force_pred", "force_ref", "atom_config")
    out: dict[str, list] = {k: [] for k in keys + (("stress_pred", "stress_ref", "stress_mask") if stress else ())}
    done = 0
    for batch in handle.batcher.batches(idx, batch_size=size):
        if stress:
            energy, forces, sigma = handle.backend.predict_with_stress(handle.state, batch)
            graphs = np.asarray(batch.graph_mask)
            out["stress_pred"].append(sigma[graphs])
            out["stress_ref"].append(batch.stress[graphs])
            out["stress_mask"].append(batch.stress_mask[graphs])
        else:
            energy, forces = handle.backend.predict(handle.state, batch)
        graphs, atoms = np.asarray(batch.graph_mask), np.asarray(batch.atom_mask)
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
