"""``mlffbench bench``: training and inference speed of one model, by the timing protocol.

Measured (every figure a median over ``repeats`` timed calls after a separately timed
warm-up, the device synchronised before each clock read, see :mod:`mlffbench.speed.timing`):

* training: blocks of ``train_steps`` optimizer steps at the model's training batch size,
  through the real training path (``Backend.train_step``, host→device conversion included);
* inference (energy + forces) at batch 1 (the MD case) and at a larger batch, data on the
  device;
* a system-size sweep: periodic n×n×n supercells of one configuration, batch 1, with the
  neighbour-list time and the exponent b of time ∝ atoms^b (log-log least squares);
* peak host memory (process RSS), peak device memory (GPU), the number of compilations
  during warm-up and during the timed calls, a hardware and software fingerprint.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlffbench.data.supercells import supercell
from mlffbench.errors import ConfigError
from mlffbench.graph.batching import GraphBatcher
from mlffbench.graph.neighbors import compute_neighbors
from mlffbench.runs.trained import TrainedModel
from mlffbench.speed import timing


@dataclass
class BenchOptions:
    model: str = ""
    dataset: str = ""
    model_params: dict[str, Any] = field(default_factory=dict)
    train_params: dict[str, Any] = field(default_factory=dict)
    data_dir: Path | None = None
    init_from: Path | None = None
    run_dir: Path | None = None  # a finished run: its model, split and best parameters
    repeats: int = 7
    warmup: int = 1
    train_steps: int = 4
    infer_batch: int = 0  # 0: the model's evaluation batch size
    sweep: tuple[int, ...] = (1, 2, 3)
    sweep_repeats: int = 3
    warmup_min_s: float = 1.0  # warm-up goes on until it took this long (eager frameworks settle)
    download: bool = True


def _log(log: Callable[[str], None] | None, text: str) -> None:
    if log is not None:
        log(text)


def load_handle(options: BenchOptions) -> TrainedModel:
    """The model to time, with its data: a finished run's, or a fresh one as a new run builds it."""

    if options.run_dir is not None:
        return TrainedModel.from_run(
            options.run_dir, with_data=True, data_dir=options.data_dir, download=options.download
        )
    if not options.model or not options.dataset:
        raise ConfigError("bench needs MODEL and --dataset (or --run DIR)")
    return TrainedModel.on_dataset(
        options.model,
        options.dataset,
        options.model_params,
        options.train_params,
        data_dir=options.data_dir,
        init_from=options.init_from,
        download=options.download,
    )


def training_batches(handle: TrainedModel, steps: int, seed: int = 0) -> list:
    """``steps`` training batches (full ones) of the training part, cycling when it is short."""
    size = handle.train_config.batch_size
    data = handle.require_data()
    train = np.asarray(data.split.train)
    if train.size < size:
        raise ConfigError(f"the training part has {train.size} configurations, fewer than one batch of {size}")
    rng = np.random.default_rng(seed)
    out: list = []
    while len(out) < steps:
        out.extend(data.batcher.batches(train, rng=rng, batch_size=size, drop_remainder=True))
    return out[:steps]


def inference_indices(handle: TrainedModel) -> np.ndarray:
    """Held-out configurations first (test, val), then training ones."""
    s = handle.require_data().split
    return np.concatenate([np.asarray(s.test), np.asarray(s.val), np.asarray(s.train)]).astype(np.int64)


def size_sweep(
    handle: TrainedModel,
    reps: tuple[int, ...],
    repeats: int,
    warmup: int = 1,
    index: int | None = None,
    log=None,
    warmup_min_s: float = 1.0,
) -> dict[str, Any]:
    """Inference time at batch 1 of n×n×n periodic supercells of one configuration."""

    ds = handle.require_data().dataset
    i = int(inference_indices(handle)[0]) if index is None else int(index)
    if not bool(np.asarray(ds.pbc[i]).all()):
        return {"skipped": f"configuration {i} of '{ds.name}' is not periodic in 3 directions: no supercells"}
    cutoff = handle.spec.cutoff(handle.model_config)
    points = []
    for n in reps:
        sc = supercell(ds, i, (n, n, n))
        neighbor_s = []
        for _ in range(2):  # the first call may hold one-off set-up costs
            t0 = time.perf_counter()
            table = compute_neighbors(sc, cutoff)
            neighbor_s.append(time.perf_counter() - t0)
        batcher = GraphBatcher(sc, table, handle.stats.species, 1)
        batch = batcher.make_batch([0], batch_size=1)
        result = timing.measure(
            timing.inference_workload(handle.backend, handle.state, batch, f"{n}x{n}x{n}"),
            repeats=repeats,
            warmup=warmup,
            warmup_min_s=warmup_min_s,
        )
        point = {
            "reps": [n, n, n],
            "atoms": int(sc.n_atoms[0]),
            "edges": int(table.n_edges[0]),
            "padded_shape": list(batch.shape),
            "neighbor_list_s": min(neighbor_s),
            **result.to_dict(),
        }
        points.append(point)
        _log(log, f"size sweep {n}x{n}x{n}: {point['atoms']} atoms, {1000 * result.median_s:.1f} ms per energy+forces")
    out: dict[str, Any] = {"configuration": i, "cutoff": cutoff, "points": points}
    if len(points) >= 2:
        out["fit"] = timing.fit_power_law([p["atoms"] for p in points], [p["median_s"] for p in points])
        out["local_exponents"] = [
            float(np.log(b["median_s"] / a["median_s"]) / np.log(b["atoms"] / a["atoms"]))
            for a, b in itertools.pairwise(points)
        ]
    return out


def bench(options: BenchOptions, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """All figures of ``mlffbench bench`` as one JSON-ready dict."""
    if options.train_steps < 1:
        raise ConfigError(f"--train-steps must be >= 1, got {options.train_steps}")
    if any(n < 1 for n in options.sweep):
        raise ConfigError(f"--sweep sizes must be positive integers, got {list(options.sweep)}")
    handle = load_handle(options)
    backend = handle.backend
    backend.reset_peak_device_memory()
    env = backend.environment()
    reps, warm = options.repeats, options.warmup

    _log(log, f"timing training: {options.train_steps} steps of batch {handle.train_config.batch_size} per call")
    batches = training_batches(handle, options.train_steps)
    train = timing.measure(
        timing.training_workload(backend, handle.state, batches, handle.train_config.lr[1]),
        repeats=reps,
        warmup=warm,
        warmup_min_s=options.warmup_min_s,
    )

    idx = inference_indices(handle)
    big = int(options.infer_batch or handle.train_config.eval_batch_size)
    big = max(1, min(big, idx.size))
    _log(log, f"timing inference at batch 1 and {big}")
    data = handle.require_data()
    one = data.batcher.make_batch(idx[:1], batch_size=1)
    many = data.batcher.make_batch(idx[:big], batch_size=big)
    infer = timing.measure_interleaved(
        [
            timing.inference_workload(backend, handle.state, one, "inference, batch 1"),
            timing.inference_workload(backend, handle.state, many, f"inference, batch {big}"),
        ],
        repeats=reps,
        warmup=warm,
        warmup_min_s=options.warmup_min_s,
    )
    sweep = (
        size_sweep(
            handle, tuple(options.sweep), options.sweep_repeats, warm, log=log, warmup_min_s=options.warmup_min_s
        )
        if options.sweep
        else {}
    )
    ds = data.dataset
    return {
        "model": handle.spec.name,
        "backend": handle.spec.backend,
        "dataset": data.card.name,
        "run_dir": str(handle.run_dir) if handle.run_dir else None,
        "split_fingerprint": data.split.fingerprint,
        "n_params": backend.n_params(handle.state),
        "model_config": dataclasses.asdict(handle.model_config),
        "train_batch_size": handle.train_config.batch_size,
        "dtype": handle.train_config.dtype,
        "cutoff": handle.spec.cutoff(handle.model_config),
        "edges_per_atom": float(data.neighbors.n_edges.sum() / max(int(ds.n_atoms.sum()), 1)),
        "atoms_per_config": float(np.mean(ds.n_atoms)),
        "training": train.to_dict(),
        "inference": [t.to_dict() for t in infer],
        "size_sweep": sweep,
        "memory": {
            "peak_host_bytes": timing.peak_host_memory_bytes(),
            "peak_device_bytes": backend.peak_device_memory(),
        },
        "machine": timing.machine_fingerprint([env.get("device", "")]),
        "protocol": {
            "repeats": reps,
            "warmup_calls": warm,
            "warmup_min_s": options.warmup_min_s,
            "train_steps_per_call": options.train_steps,
            "sweep_repeats": options.sweep_repeats,
            "statistic": "median, IQR (q3 - q1) and MAD of per-call times",
            "sync": "device synchronised before every clock read",
            "clock": "time.perf_counter",
        },
    }


# ------------------------------------------------------------------ report
def _ms(seconds: float) -> str:
    return f"{1000 * seconds:.2f}"


def render(result: dict[str, Any], console) -> None:
    """The rich tables of ``mlffbench bench``."""
    from rich.table import Table

    title = f"{result['model']} on {result['dataset']} ({result['n_params']:,} parameters, {result['dtype']})"
    table = Table(title=title)
    for col in (
        "workload",
        "ms/call",
        "IQR ms",
        "conf/s",
        "atom·step/s",
        "µs/atom·step",
        "warm-up s",
        "compiles",
        "recompiles",
    ):
        table.add_column(col, justify="left" if col == "workload" else "right")
    rows = [(f"train {result['protocol']['train_steps_per_call']}×b{result['train_batch_size']}", result["training"])]
    rows += [(t["label"].replace("inference, batch ", "infer b"), t) for t in result["inference"]]
    for label, t in rows:
        table.add_row(
            label,
            _ms(t["median_s"]),
            _ms(t["iqr_s"]),
            f"{t['configs_per_s']:.2f}",
            f"{t.get('atom_steps_per_s', 0):,.0f}",
            f"{t.get('us_per_atom_step', float('nan')):.2f}",
            f"{sum(t['warmup_s']):.2f}",
            str(t["warmup_compilations"]),
            ("[red]" if t["recompilations"] else "") + str(t["recompilations"]),
        )
    console.print(table)
    sweep = result.get("size_sweep") or {}
    if sweep.get("points"):
        st = Table(
            title=f"size sweep: periodic supercells of configuration {sweep['configuration']}, batch 1, energy + forces"
        )
        for col in (
            "cell",
            "atoms",
            "edges",
            "nbr list ms",
            "ms/step",
            "IQR ms",
            "µs/atom·step",
            "warm-up s",
            "recompiles",
        ):
            st.add_column(col, justify="right")
        for p in sweep["points"]:
            st.add_row(
                "×".join(str(r) for r in p["reps"]),
                f"{p['atoms']:,}",
                f"{p['edges']:,}",
                _ms(p["neighbor_list_s"]),
                _ms(p["median_s"]),
                _ms(p["iqr_s"]),
                f"{p['us_per_atom_step']:.2f}",
                f"{sum(p['warmup_s']):.2f}",
                str(p["recompilations"]),
            )
        console.print(st)
        if "fit" in sweep:
            fit = sweep["fit"]
            local = ", ".join(f"{b:.2f}" for b in sweep["local_exponents"])
            console.print(
                f"time ∝ atoms^b: b = {fit['exponent']:.3f} (R² {fit['r2']:.3f}; between consecutive sizes: {local})",
                highlight=False,
            )
    elif sweep.get("skipped"):
        console.print(f"size sweep skipped: {sweep['skipped']}", highlight=False)
    mem, machine = result["memory"], result["machine"]
    device = f", peak device memory {mem['peak_device_bytes'] / 2**20:.0f} MiB" if mem.get("peak_device_bytes") else ""
    console.print(f"peak host memory (process RSS) {mem['peak_host_bytes'] / 2**20:.0f} MiB{device}", highlight=False)
    versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items())
    console.print(
        f"machine: {machine['cpu']}, {machine['cpus_usable']} of {machine['cpu_count']} cores usable, "
        f"{'; '.join(machine['devices'])}, load {', '.join(f'{v:.2f}' for v in machine['loadavg'])}; {versions}",
        highlight=False,
    )
