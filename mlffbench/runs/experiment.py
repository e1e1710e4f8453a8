"""``train_and_evaluate``: the whole of one run, from a dataset name to ``metrics.json``.

Data path: card → StructureSet → split (persisted, fingerprinted) → neighbour lists →
training statistics → model (plugin) + backend → loop → evaluation → run record,
mirrored into MLflow. The CLI commands are thin wrappers around the functions here.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.metadata as md
import math
import platform
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlffbench import __version__
from mlffbench.backends.base import get_backend_class
from mlffbench.data import elements
from mlffbench.data.loading import config_roles, limit_configs, load_dataset, require_stress_units, stress_declared
from mlffbench.data.splits import Split, make_split
from mlffbench.data.stats import composition_counts
from mlffbench.data.user import card_of_run, card_params, resolve_card
from mlffbench.errors import ConfigError, RunError
from mlffbench.graph.batching import stress_counts
from mlffbench.plugin.manager import get_plugins
from mlffbench.plugin.registry import DatasetCard, ModelSpec
from mlffbench.runs import directory as runs
from mlffbench.runs import record as run_records
from mlffbench.runs.tracking import MlflowTracker, default_tracking_uri
from mlffbench.runs.trained import TrainedModel
from mlffbench.speed.runtime import allocator
from mlffbench.training.callbacks import RichProgress
from mlffbench.training.config import TrainConfig, from_dict
from mlffbench.training.fitted import fit_closed_form, ignored_note
from mlffbench.training.loop import evaluate, fit
from mlffbench.training.metrics import GPA, constant_stress_baseline, zero_force_baseline


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


def _provenance(train_config: TrainConfig, backend_env: dict[str, str]) -> dict[str, Any]:
    """What determines a run's numbers beside its configuration and data: precision, threads,
    CPU model and device (library versions: ``metrics.json``'s ``versions``)."""
    import os
    import sys

    from mlffbench.speed.timing import _cpu_model

    # the same keys and types for every backend ("": not set, or torch not loaded)
    threads = {k: os.environ.get(k, "") for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "XLA_FLAGS")}
    torch = sys.modules.get("torch")
    threads["torch_intra_op"] = str(torch.get_num_threads()) if torch is not None else ""
    threads["torch_inter_op"] = str(torch.get_num_interop_threads()) if torch is not None else ""
    try:
        usable: int | None = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "dtype": train_config.dtype,
        "backend": backend_env.get("backend", ""),
        "device": backend_env.get("device", ""),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "platform": platform.platform(),
        "threads": threads,
    }


def run_split(ds, card, train_config: TrainConfig):
    """The split a new run of ``train_config`` on ``ds`` (card ``card``) uses: a pure function
    of the data, the card's split policy and the split settings of ``train_config``."""

    policy = train_config.split_policy or card.split.get("policy", "random")
    fractions = tuple(train_config.split_fractions or card.split.get("fractions", (0.8, 0.1, 0.1)))
    if len(fractions) == 2:  # "files" policy: train/val within the training files
        fractions = (*fractions, 0.0)
    roles = config_roles(ds, card)
    test_origins = (
        sorted({ds.origin_names[o] for o in np.unique(ds.origin[roles == "test"])}) if ds.origin is not None else []
    )
    holdout = train_config.holdout or tuple(card.split.get("holdout", ()))
    return make_split(
        ds, policy=policy, fractions=fractions, seed=train_config.split_seed, holdout=holdout, test_origins=test_origins
    )


def stress_use(ds, card, train_config: TrainConfig) -> tuple[bool, str]:
    """(whether stress is trained on / reported, a warning or ""): stress counts for the
    periodic configurations (cell volume > 0) of a dataset with stress in a declared unit.

    ``stress_weight`` > 0 on data without such stress raises a one-line error; stress in an
    undeclared unit that is not trained is left out of the metrics, with a warning.
    """

    periodic = ds.stress is not None and bool(stress_counts(ds.cell).any())
    if train_config.stress_weight > 0:
        if not periodic:
            what = "no stress" if ds.stress is None else "stress but no periodic configuration (cell volume > 0)"
            raise ConfigError(
                f"stress_weight={train_config.stress_weight:g}: dataset '{card.name}' has {what} to train on"
            )
        require_stress_units(card)
        return True, ""
    if periodic and not stress_declared(card):
        return (
            False,
            f"dataset '{card.name}' holds stress in an undeclared unit: stress metrics are left out (declare --unit stress=...)",
        )
    return periodic, ""


def prepare(
    spec, card, model_config, train_config: TrainConfig, options: RunOptions, run_dir, resume: bool
) -> tuple[TrainedModel, Path]:
    """(the run's model before training, see :meth:`mlffbench.runs.trained.TrainedModel.on_split`;
    the run directory). ``run_dir``: the run's directory, or (a new run) a function that
    creates it — called only once the data, the split and the model are valid, so a run that
    never starts leaves nothing."""

    ds = load_dataset(card, data_dir=options.data_dir, download=options.download)
    ds = limit_configs(ds, card, train_config.max_configs)
    stress_use(ds, card, train_config)  # -t stress_weight on data without (declared) stress stops here
    if resume:
        split_path = run_dir / runs.SPLIT
        split = Split.load(split_path)
        if split.dataset_fingerprint != ds.fingerprint():
            raise RunError(
                f"dataset '{card.name}' changed since the run started (fingerprint differs from {split_path})"
            )
    else:
        split = run_split(ds, card, train_config)
    model = TrainedModel.on_split(spec, card, ds, split, model_config, train_config)
    if callable(run_dir):
        run_dir = run_dir()
    if not resume:
        split.save(run_dir / runs.SPLIT)
    runs.write_json(run_dir / runs.STATS, model.stats.to_dict())
    return model, run_dir


@dataclass
class _Plan:
    """What a run is before its directory is prepared: a new run's, or a resumed run's from its
    ``config.json`` (identity, MLflow run and tracking store included)."""

    spec: ModelSpec[Any]
    card: DatasetCard
    model_config: Any  # the model's config class (spec.config_class)
    train_config: TrainConfig
    run_dir: Path | Callable[[], Path]
    tracking_uri: str | None
    mlflow_run_id: str | None = None
    identity: dict[str, str] | None = None
    copied_from: dict[str, Any] | None = None
    resumed_from: str = ""


def _resumed_plan(options: RunOptions, registry) -> _Plan:
    """The plan of ``--resume``: everything from the run's ``config.json`` except ``epochs``;
    ``--no-tracking`` and ``--tracking-uri`` are honoured, and a copied or moved directory gets a
    new MLflow run (never another directory's)."""
    assert options.resume is not None
    run_dir = runs.existing_run_dir(options.resume)
    saved = runs.read_json(run_dir / runs.CONFIG)
    spec, card = registry.model(saved["model"]), card_of_run(saved)
    train_values = {**saved["train"], **{k: v for k, v in options.train_params.items() if k == "epochs"}}
    model_config = from_dict(spec.config_class, saved["model_config"], f"{spec.name} model")
    train_config = from_dict(TrainConfig, train_values, "training")
    options.init_from = Path(saved["init_from"]) if saved.get("init_from") else None
    options.data_dir = options.data_dir or (Path(saved["data_dir"]) if saved.get("data_dir") else None)
    mlflow_run_id = saved.get("mlflow_run_id")
    tracking_uri = (options.tracking_uri or saved.get("tracking_uri")) if options.tracking else None
    identity, copied_from = run_records.resumed_identity(run_dir, saved)
    if tracking_uri != saved.get("tracking_uri") or identity["run_uuid"] != saved.get("run_uuid"):
        mlflow_run_id = None  # another store, or a copy/move: a new MLflow run, never another directory's
    return _Plan(
        spec,
        card,
        model_config,
        train_config,
        run_dir,
        tracking_uri or None,
        mlflow_run_id,
        identity,
        copied_from,
        resumed_from=saved.get("mlflow_run_id") or "",
    )


def _new_plan(options: RunOptions, registry) -> _Plan:
    """The plan of a new run: the model's and the dataset's defaults under the user's values; the
    run directory is made by :func:`prepare` once the data is known to be usable."""
    spec, card = registry.model(options.model), resolve_card(options.dataset)
    model_config, train_config = resolve_configs(
        spec, card, options.model_params, options.train_params, from_weights=options.init_from is not None
    )

    def new_run_dir() -> Path:
        return runs.new_run_dir(options.runs_dir, spec.name, card.name)

    tracking_uri = (options.tracking_uri or default_tracking_uri(options.runs_dir)) if options.tracking else None
    return _Plan(spec, card, model_config, train_config, new_run_dir, tracking_uri)


def _data_warnings(model: TrainedModel, card, train_config: TrainConfig, console) -> tuple[list[str], bool]:
    """Warnings about the data (elements absent from training, stress not used) and whether stress
    is trained on or reported."""
    data = model.require_data()
    split, ds = data.split, data.dataset
    warnings = [
        f"the {part} part has elements absent from the training part ({', '.join(symbols)}): "
        "predictions for them are not learned"
        for part, symbols in split.unseen_elements(ds).items()
    ]
    has_stress, stress_warning = stress_use(ds, card, train_config)
    warnings += [stress_warning] if stress_warning else []
    for warning in warnings:
        if console is not None:
            console.print(f"[yellow]warning:[/] {warning}", highlight=False)
    return warnings, has_stress


def _initial_weights(options: RunOptions, plan: _Plan, model: TrainedModel):
    """Released weights imported by the plugin (``--init-from``), else None (the seed's)."""
    if not options.init_from:
        return None
    spec = plan.spec
    assert spec.import_weights is not None  # checked before: --init-from needs import_weights
    with get_backend_class(spec.backend).build_scope(plan.train_config.dtype):
        return spec.import_weights(Path(options.init_from), plan.model_config, species=model.stats.species)


def _tracker(options: RunOptions, plan: _Plan, run_dir: Path, identity: dict[str, str]) -> MlflowTracker | None:
    """The MLflow run this directory owns (continued when it is its own, else a new one linked to
    the old by a tag), or None without tracking."""
    if not plan.tracking_uri:
        return None
    mlflow_run_id = plan.mlflow_run_id
    if mlflow_run_id and not MlflowTracker.owned(plan.tracking_uri, mlflow_run_id, identity):
        mlflow_run_id = None  # the MLflow run belongs to another directory (e.g. the original of a copy)
    tags = {**options.mlflow_tags, **run_records.identity_tags(identity)}
    if plan.resumed_from and not mlflow_run_id:
        tags[run_records.RESUMED_FROM_TAG] = plan.resumed_from
    return MlflowTracker(
        plan.tracking_uri,
        options.runs_dir if not options.resume else run_dir.parent,
        run_dir.name,
        run_id=mlflow_run_id,
        parent_run_id=options.mlflow_parent_run_id,
        tags=tags,
    )


def _write_config(options: RunOptions, plan: _Plan, run_dir: Path, identity: dict[str, str], tracker) -> None:
    """``config.json`` (everything needed to resume or restore the run), the status "running" and
    the MLflow params."""
    spec, card = plan.spec, plan.card
    config_record = {
        "model": spec.name,
        "dataset": card.name,
        "dataset_card": card.to_dict(),
        "model_config": dataclasses.asdict(plan.model_config),
        "train": plan.train_config.to_dict(),
        "init_from": str(Path(options.init_from).resolve()) if options.init_from else None,
        "data_dir": str(Path(options.data_dir).resolve()) if options.data_dir else None,
        "tracking_uri": plan.tracking_uri,
        "mlflow_run_id": tracker.run_id if tracker else None,
        **identity,
        "copied_from": plan.copied_from,
        "mlffbench": __version__,
    }
    runs.write_json(run_dir / runs.CONFIG, config_record)
    run_records.write_status(run_dir, "running")
    if tracker:
        tracker.log_params(
            {
                "model": spec.name,
                "dataset": card.name,
                "model_config": config_record["model_config"],
                "train": config_record["train"],
                "dataset_card": card_params(card),
            }
        )


def _callbacks(options: RunOptions, plan: _Plan, tracker, console) -> list:
    callbacks = [c for c in (tracker,) if c is not None] + list(options.callbacks)
    if options.progress:
        callbacks.append(RichProgress(console=console, description=f"{plan.spec.name} on {plan.card.name}"))
    return callbacks


def _trainer(plan: _Plan, console):
    """The training step of a run: the shared loop (:func:`mlffbench.training.loop.fit`), or for a
    fitted model the closed-form least squares in one step (:mod:`mlffbench.training.fitted`)."""
    spec = plan.spec
    if not spec.fit:
        return fit
    if console is not None:
        console.print(ignored_note(plan.train_config), highlight=False)
    return functools.partial(fit_closed_form, options=spec.fit_options(plan.model_config) if spec.fit_options else None)


def _log_fit(tracker, result) -> None:
    """A fitted run's sizes, times and memory as MLflow metrics ``fit_*``, beside the run's metrics."""
    if result.fit:
        values = result.fit.items()
        tracker.mlflow.log_metrics(
            {f"fit_{k}": float(v) for k, v in values if isinstance(v, (int, float)) and math.isfinite(v)}
        )


def train_and_evaluate(options: RunOptions, console=None) -> tuple[Path, dict[str, Any]]:
    """Train (or, with ``epochs=0``, only evaluate) a model and write the run record."""
    plugins = get_plugins()
    plan = _resumed_plan(options, plugins.registry) if options.resume else _new_plan(options, plugins.registry)
    spec, train_config = plan.spec, plan.train_config
    if options.init_from is not None and spec.import_weights is None:
        raise ConfigError(f"model '{spec.name}' cannot import weights (--init-from)")
    model, run_dir = prepare(
        spec, plan.card, plan.model_config, train_config, options, plan.run_dir, resume=bool(options.resume)
    )
    tracker = None
    try:
        identity = plan.identity or run_records.new_identity(run_dir)
        warnings, has_stress = _data_warnings(model, plan.card, train_config, console)
        initial = _initial_weights(options, plan, model)
        tracker = _tracker(options, plan, run_dir, identity)
        _write_config(options, plan, run_dir, identity, tracker)
    except BaseException as exc:
        if tracker:
            _, mlflow_status, reason = run_records.ending(exc)
            tracker.abort(mlflow_status, reason)
        if not options.resume:  # a new run that never started (e.g. an unusable store) leaves no half run
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    callbacks = _callbacks(options, plan, tracker, console)
    data = model.require_data()
    ds, split, batcher = data.dataset, data.split, data.batcher
    has_energy, has_forces = ds.energy is not None, ds.forces is not None
    try:
        if tracker and options.resume:
            tracker.backfill(run_dir / runs.CHECKPOINTS)
        train = _trainer(plan, console)
        result = train(
            model.backend,
            batcher,
            split,
            train_config,
            run_dir / runs.CHECKPOINTS,
            has_energy,
            has_forces,
            callbacks=callbacks,
            resume=bool(options.resume),
            initial_params=initial,
            has_stress=has_stress,
        )
        runs.write_json(run_dir / runs.HISTORY, result.loop.history)
        energies = fit_offsets_after_training(model, result, run_dir, has_energy)
        metrics = _evaluate_and_record(
            options,
            spec,
            plan.card,
            ds,
            split,
            model.backend,
            batcher,
            result,
            train_config,
            run_dir,
            warnings,
            has_energy,
            has_forces,
            has_stress=has_stress,
            energies=energies,
        )
        if tracker:
            _log_fit(tracker, result)
            tracker.finish(run_dir, metrics)
        # last: a run killed before this line is "running" with its process gone (stale), and
        # is finished again by --resume, its MLflow run too
        run_records.write_status(run_dir, "finished")
    except BaseException as exc:
        _record_ending(run_dir, tracker, exc)
        raise
    plugins.manager.hook.mlffbench_run_finished(run_dir=run_dir, metrics=metrics)
    return run_dir, metrics


def _record_ending(run_dir: Path, tracker, exc: BaseException) -> None:
    """An interrupted (SIGINT/SIGTERM: KILLED) or failed (FAILED, with the one-line reason) run."""
    state, mlflow_status, reason = run_records.ending(exc)
    try:
        run_records.write_status(run_dir, state, reason)
    except OSError:
        pass  # a full or read-only disk: the stale "running" record says the process is gone
    if tracker:
        tracker.abort(mlflow_status, reason, checkpoint_dir=run_dir / runs.CHECKPOINTS)


def fit_offsets_after_training(model: TrainedModel, result, run_dir: Path, has_energy: bool) -> dict[str, Any]:
    """Per-species energy offsets of a model whose energies were not trained (energy weight 0).

    The energy zero of a force-only (or force-and-stress) model is free. The offsets δ
    (eV per atom of each species) minimise Σ (E_ref − E_model − counts·δ)² over the training
    part (least squares, minimum norm where compositions are rank-deficient: species absent
    from the training part get 0). They are added to the model's reference energies (so every
    later prediction includes them; forces and stress do not change) and written to
    ``stats.json`` (``energy_offsets``), from which every restored model applies them; the
    model's ``state`` becomes the best state and its ``stats`` the updated statistics.
    Returns the ``energies`` record of ``metrics.json``.
    """

    config = model.train_config
    model.state = result.best_state
    unfitted = {"energy_offsets": None, "offset_fit": None}  # every record has the same fields
    if not has_energy:
        return {"energies": None, **unfitted}
    if config.energy_weight > 0:
        return {"energies": "trained", **unfitted}
    if result.loop.epoch == 0:
        return {"energies": "as-loaded", **unfitted}  # evaluated without training: the model's energies as they are
    data, species = model.require_data(), model.stats.species
    ds = data.dataset
    pred = model.predictions(np.asarray(data.split.train), batch_size=config.eval_batch_size)
    idx = pred["config"]
    residual = pred["energy_ref"] - pred["energy_pred"]
    counts = composition_counts(ds, idx, species)
    offsets, *_ = np.linalg.lstsq(counts, residual, rcond=None)
    if not np.all(np.isfinite(offsets)):
        raise RunError("energy offsets after force-only training are not finite (the model's energies diverged)")
    n_atoms = counts.sum(axis=1)
    before = float(np.mean(np.abs(residual) / n_atoms))
    after = float(np.mean(np.abs(residual - counts @ offsets) / n_atoms))
    model.backend.add_energy_offsets(offsets)
    stats = dataclasses.replace(model.stats, energy_offsets=tuple(float(v) for v in offsets))
    model.stats = stats
    runs.write_json(run_dir / runs.STATS, stats.to_dict())
    return {
        "energies": "offset-fitted",
        "energy_offsets": {elements.symbol(z): float(v) for z, v in zip(species, offsets, strict=True)},
        "offset_fit": {"train_energy_mae_per_atom_before": before, "train_energy_mae_per_atom_after": after},
    }


def _evaluate_and_record(
    options,
    spec,
    card,
    ds,
    split,
    backend,
    batcher,
    result,
    train_config,
    run_dir,
    warnings,
    has_energy,
    has_forces,
    has_stress: bool = False,
    energies: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Evaluation of the best state on the held-out parts, written to ``metrics.json``."""

    parts = {"all": np.arange(ds.n_configs)} if options.evaluate_split == "all" else {}
    if options.evaluate_split in ("val", "test"):
        parts = {options.evaluate_split: getattr(split, options.evaluate_split)}
    if not parts:
        parts = {"val": split.val, "test": split.test}
    metrics: dict[str, Any] = {}
    for name, idx in parts.items():
        if len(idx):
            metrics[name] = evaluate(
                backend,
                result.best_state,
                batcher,
                idx,
                has_energy,
                has_forces,
                train_config.eval_batch_size,
                has_stress=has_stress,
            ).result()
            for key in ("stress_mae", "stress_rmse"):  # also in GPa (MLflow shows the parts' metrics)
                if key in metrics[name]:
                    metrics[name][f"{key}_gpa"] = GPA * metrics[name][key]
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
            # of those: programs loaded from JAX's persistent compilation cache, not compiled
            "compile_cache": {"loads": backend.cache_loads, "load_s": backend.cache_load_seconds},
            "train_s": loop.train_seconds,
            "wall_s": loop.wall_seconds,
            "epochs": loop.epoch,
            "best_epoch": loop.best_epoch,
            "stopped": loop.stopped,
            "n_params": backend.n_params(result.best_state),
            "fit": result.fit,  # a fitted model's least-squares record; None: trained
            "zero_force_mae": _zero_force_mae(ds, test_idx) if has_forces else None,
            "constant_stress_mae": _constant_stress_mae(ds, split.train, test_idx) if has_stress else None,
            **(energies or {}),
            "device": env.get("device", ""),
            "host_allocator": allocator(),
            "versions": _versions(env),
            "provenance": _provenance(train_config, env),
            "run_dir": str(run_dir),
            "warnings": warnings,
        }
    )
    runs.write_json(run_dir / runs.METRICS, metrics)
    return metrics


def _constant_stress_mae(ds, train_idx, indices) -> float | None:
    """Stress MAE (eV/Å³) on ``indices`` of predicting the mean stress of the periodic training configurations."""

    train_idx, indices = np.asarray(train_idx, np.int64), np.asarray(indices, np.int64)
    train_idx = train_idx[stress_counts(ds.cell[train_idx])]
    indices = indices[stress_counts(ds.cell[indices])]
    if not train_idx.size or not indices.size:
        return None
    return constant_stress_baseline(ds.stress[train_idx], ds.stress[indices])


def _zero_force_mae(ds, indices) -> float:

    sub = ds.select(np.asarray(indices))
    return zero_force_baseline(sub.forces)
