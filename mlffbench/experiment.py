"""``train_and_evaluate``: the whole of one run, from a dataset name to ``metrics.json``.

Data path: card → StructureSet → split (persisted, fingerprinted) → neighbour lists →
training statistics → model (plugin) + backend → loop → evaluation → run record,
mirrored into MLflow. The CLI commands are thin wrappers around the functions here.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata as md
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlffbench import __version__, runs
from mlffbench.errors import ConfigError, RunError
from mlffbench.runtime import allocator
from mlffbench.training.config import TrainConfig, from_dict


@dataclass
class RunOptions:
    """What the user asked for; ``None`` means 'take it from presets / the resumed run'."""

    model: str
    dataset: str
    model_params: dict[str, Any] = field(default_factory=dict)
    train_params: dict[str, Any] = field(default_factory=dict)
    data_dir: Path | None = None
    runs_dir: Path = Path("runs")
    resume: Path | None = None
    init_from: Path | None = None
    tracking_uri: str | None = None
    tracking: bool = True
    progress: bool = True
    download: bool = True
    evaluate_split: str = ""  # evaluate only: "val", "test", "all"; training runs use val+test
    callbacks: list[Any] = field(default_factory=list)  # extra training-loop callbacks (e.g. tune's pruning)
    mlflow_parent_run_id: str | None = None  # nest the MLflow run under this one (tune: the study's run)
    mlflow_tags: dict[str, str] = field(default_factory=dict)


def resolve_configs(spec, card, model_params: dict[str, Any], train_params: dict[str, Any], from_weights: bool = False):
    """Model config and TrainConfig from: defaults < plugin defaults < family preset < user values.

    ``from_weights``: released weights will be imported, so the plugin's model defaults
    (deviations for training from scratch) are left out.
    """
    preset = spec.presets.get(card.family, {}) if card.family else {}
    model_defaults = {} if from_weights else dict(spec.model_defaults)
    model_values = {**model_defaults, **preset.get("model", {}), **model_params}
    train_values = {**spec.train_defaults, **preset.get("train", {}), **train_params}
    model_config = from_dict(spec.config_class, model_values, f"{spec.name} model")
    train_config = from_dict(TrainConfig, train_values, "training")
    return model_config, train_config


def _versions(backend_env: dict[str, str]) -> dict[str, str]:
    versions = {"python": platform.python_version(), "mlffbench": __version__, "numpy": np.__version__}
    for dist in ("jax", "jaxlib", "flax", "optax", "torch", "torch_geometric"):
        try:
            versions[dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    versions.update({k: v for k, v in backend_env.items() if k not in ("device", "backend")})
    return versions


@dataclass
class Prepared:
    spec: Any
    card: Any
    dataset: Any
    split: Any
    neighbors: Any
    stats: Any
    model_config: Any
    train_config: TrainConfig
    batcher: Any
    backend: Any


def run_split(ds, card, train_config: TrainConfig):
    """The split a new run of ``train_config`` on ``ds`` (card ``card``) uses: a pure function
    of the data, the card's split policy and the split settings of ``train_config``."""
    from mlffbench.datasets.loading import config_roles
    from mlffbench.splits import make_split

    policy = train_config.split_policy or card.split.get("policy", "random")
    fractions = tuple(train_config.split_fractions or card.split.get("fractions", (0.8, 0.1, 0.1)))
    if len(fractions) == 2:  # "files" policy: train/val within the training files
        fractions = (*fractions, 0.0)
    roles = config_roles(ds, card)
    test_origins = sorted({ds.origin_names[o] for o in np.unique(ds.origin[roles == "test"])}) if ds.origin is not None else []
    holdout = train_config.holdout or tuple(card.split.get("holdout", ()))
    return make_split(ds, policy=policy, fractions=fractions, seed=train_config.split_seed, holdout=holdout, test_origins=test_origins)


def prepare(spec, card, model_config, train_config: TrainConfig, options: RunOptions, run_dir: Path, resume: bool) -> Prepared:
    from mlffbench.datasets.loading import load_dataset
    from mlffbench.splits import Split

    ds = load_dataset(card, data_dir=options.data_dir, download=options.download)
    if train_config.max_configs:
        ds = ds.select(np.arange(min(train_config.max_configs, ds.n_configs)))
    split_path = run_dir / runs.SPLIT
    if resume:
        split = Split.load(split_path)
        if split.dataset_fingerprint != ds.fingerprint():
            raise RunError(f"dataset '{card.name}' changed since the run started (fingerprint differs from {split_path})")
    else:
        split = run_split(ds, card, train_config)
        split.save(split_path)
    prepared = assemble(spec, card, ds, split, model_config, train_config)
    runs.write_json(run_dir / runs.STATS, prepared.stats.to_dict())
    return prepared


def assemble(spec, card, ds, split, model_config, train_config: TrainConfig) -> Prepared:
    """Neighbour lists (cached), training statistics, potential, backend and batcher of a
    model on a split: everything a run needs before its state."""
    from mlffbench.datasets.loading import default_cache_dir
    from mlffbench.graph.batching import GraphBatcher
    from mlffbench.graph.neighbors import compute_neighbors
    from mlffbench.stats import compute_stats
    from mlffbench.training.backend import get_backend_class

    neighbors = compute_neighbors(ds, spec.cutoff(model_config), cache_dir=default_cache_dir() / "neighbors")
    stats = compute_stats(ds, split.train, neighbors)
    potential = spec.build(model_config, stats)
    backend = get_backend_class(spec.backend)(potential, train_config, force_rms=stats.force_rms)
    batcher = GraphBatcher(ds, neighbors, stats.species, train_config.batch_size)
    return Prepared(spec, card, ds, split, neighbors, stats, model_config, train_config, batcher, backend)


def train_and_evaluate(options: RunOptions, console=None) -> tuple[Path, dict[str, Any]]:
    """Train (or, with ``epochs=0``, only evaluate) a model and write the run record."""
    from mlffbench.plugins import get_plugins
    from mlffbench.training.callbacks import RichProgress
    from mlffbench.training.loop import evaluate, fit

    plugins = get_plugins()
    registry = plugins.registry
    if options.resume:
        run_dir = runs.existing_run_dir(options.resume)
        saved = runs.read_json(run_dir / runs.CONFIG)
        spec, card = registry.model(saved["model"]), registry.dataset(saved["dataset"])
        train_values = {**saved["train"], **{k: v for k, v in options.train_params.items() if k == "epochs"}}
        model_config = from_dict(spec.config_class, saved["model_config"], f"{spec.name} model")
        train_config = from_dict(TrainConfig, train_values, "training")
        options.init_from = Path(saved["init_from"]) if saved.get("init_from") else None
        options.data_dir = options.data_dir or (Path(saved["data_dir"]) if saved.get("data_dir") else None)
        mlflow_run_id = saved.get("mlflow_run_id")
        tracking_uri = options.tracking_uri or saved.get("tracking_uri")
        tracking = bool(tracking_uri)
    else:
        spec, card = registry.model(options.model), registry.dataset(options.dataset)
        model_config, train_config = resolve_configs(
            spec, card, options.model_params, options.train_params, from_weights=options.init_from is not None
        )
        run_dir = runs.new_run_dir(options.runs_dir, spec.name, card.name)
        mlflow_run_id = None
        tracking = options.tracking
        from mlffbench.tracking import default_tracking_uri

        tracking_uri = (options.tracking_uri or default_tracking_uri(options.runs_dir)) if tracking else None
    if options.init_from is not None and spec.import_weights is None:
        raise ConfigError(f"model '{spec.name}' cannot import weights (--init-from)")

    prepared = prepare(spec, card, model_config, train_config, options, run_dir, resume=bool(options.resume))
    backend, batcher, split, ds = prepared.backend, prepared.batcher, prepared.split, prepared.dataset
    warnings = [
        f"the {part} part has elements absent from the training part ({', '.join(symbols)}): "
        "predictions for them are not learned"
        for part, symbols in split.unseen_elements(ds).items()
    ]
    for warning in warnings:
        if console is not None:
            console.print(f"[yellow]warning:[/] {warning}", highlight=False)
    initial = spec.import_weights(Path(options.init_from), model_config, species=prepared.stats.species) if options.init_from else None

    tracker = None
    if tracking:
        from mlffbench.tracking import MlflowTracker

        tracker = MlflowTracker(
            tracking_uri, options.runs_dir if not options.resume else run_dir.parent, run_dir.name, run_id=mlflow_run_id,
            parent_run_id=options.mlflow_parent_run_id, tags=options.mlflow_tags,
        )
    config_record = {
        "model": spec.name,
        "dataset": card.name,
        "model_config": dataclasses.asdict(model_config),
        "train": train_config.to_dict(),
        "init_from": str(Path(options.init_from).resolve()) if options.init_from else None,
        "data_dir": str(Path(options.data_dir).resolve()) if options.data_dir else None,
        "tracking_uri": tracking_uri,
        "mlflow_run_id": tracker.run_id if tracker else None,
        "mlffbench": __version__,
    }
    runs.write_json(run_dir / runs.CONFIG, config_record)
    if tracker:
        tracker.log_params({"model": spec.name, "dataset": card.name, "model_config": config_record["model_config"], "train": config_record["train"]})

    callbacks = [c for c in (tracker,) if c is not None] + list(options.callbacks)
    if options.progress:
        callbacks.append(RichProgress(console=console, description=f"{spec.name} on {card.name}"))
    has_energy, has_forces = ds.energy is not None, ds.forces is not None
    try:
        result = fit(
            backend, batcher, split, train_config, run_dir / runs.CHECKPOINTS, has_energy, has_forces,
            callbacks=callbacks, resume=bool(options.resume), initial_params=initial,
        )
    except BaseException:
        if tracker:
            tracker.abort()
        raise
    runs.write_json(run_dir / runs.HISTORY, result.loop.history)

    parts = {"all": np.arange(ds.n_configs)} if options.evaluate_split == "all" else {}
    if options.evaluate_split in ("val", "test"):
        parts = {options.evaluate_split: getattr(split, options.evaluate_split)}
    if not parts:
        parts = {"val": split.val, "test": split.test}
    metrics: dict[str, Any] = {}
    for name, idx in parts.items():
        if len(idx):
            metrics[name] = evaluate(backend, result.best_state, batcher, idx, has_energy, has_forces, train_config.eval_batch_size).result()
    loop = result.loop
    env = backend.environment()
    test_idx = parts.get("test", next(iter(parts.values())))
    metrics.update(
        {
            "model": spec.name,
            "dataset": card.name,
            "split_fingerprint": split.fingerprint,
            "dataset_fingerprint": split.dataset_fingerprint,
            "train_configs_per_s": loop.train_configs / loop.train_seconds if loop.train_seconds > 0 else None,
            "compile_s": backend.compile_seconds,
            "compile_count": backend.compile_count,
            "train_s": loop.train_seconds,
            "wall_s": loop.wall_seconds,
            "epochs": loop.epoch,
            "best_epoch": loop.best_epoch,
            "stopped": loop.stopped,
            "n_params": backend.n_params(result.best_state),
            "zero_force_mae": _zero_force_mae(ds, test_idx) if has_forces else None,
            "device": env.get("device", ""),
            "host_allocator": allocator(),
            "versions": _versions(env),
            "run_dir": str(run_dir),
            "warnings": warnings,
        }
    )
    runs.write_json(run_dir / runs.METRICS, metrics)
    if tracker:
        tracker.finish(run_dir, metrics)
    plugins.manager.hook.mlffbench_run_finished(run_dir=run_dir, metrics=metrics)
    return run_dir, metrics


def _zero_force_mae(ds, indices) -> float:
    from mlffbench.training.metrics import zero_force_baseline

    sub = ds.select(np.asarray(indices))
    return zero_force_baseline(sub.forces)
