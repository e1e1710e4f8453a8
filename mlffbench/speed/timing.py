"""The timing protocol: one way to time any model, JAX or PyTorch (framework-neutral).

A :class:`Workload` is a call ``run()`` whose result ``sync(result)`` waits for (the
backend's device synchronisation) and a counter ``compilations()`` of the compilations the
framework has done so far in this process. :func:`measure` and :func:`measure_interleaved`
then

1. warm up: ``warmup`` calls, and more until they took ``warmup_min_s`` seconds (at most
   ``MAX_WARMUP_CALLS``), timed apart (they hold the compilation: ``warmup_s``,
   ``warmup_compilations``); eager frameworks need several calls before they run at their
   steady speed (allocator caches, thread pools), a compiling one needs one;
2. time ``repeats`` calls, each between two clock reads with the device synchronised
   before the second one (``time.perf_counter``); :func:`measure_interleaved` alternates
   the workloads call by call (A, B, A, B, ...) so that every one sees the same machine load;
3. count the compilations during the timed calls (``recompilations``; 0 for a model with
   static shapes — a non-zero value means the timed samples hold compile time, and it is
   reported rather than hidden);
4. summarise the samples robustly: median, quartiles and IQR, median absolute deviation.

Figures derived from one timing (:meth:`Timing.rates`): calls/s, configurations/s,
atoms·steps/s and µs/atom/step (one step = one energy+forces evaluation or one optimizer
step of every configuration in the call).

The backend-specific pieces (sync, compile counting, device memory) come from
:class:`mlffbench.backends.base.Backend`; this module imports neither jax nor torch.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlffbench import __version__
from mlffbench.errors import ConfigError


def _no_sync(_: Any) -> None:
    return None


def _no_compilations() -> int:
    return 0


@dataclass
class Workload:
    """One thing to time: ``run()`` once = one timed sample.

    ``configs`` and ``atoms``: configurations and real atoms processed by one call (for the
    derived rates).
    """

    label: str
    run: Callable[[], Any]
    sync: Callable[[Any], None] = _no_sync
    compilations: Callable[[], int] = _no_compilations
    configs: float = 1.0
    atoms: float = 0.0


@dataclass
class Timing:
    """The result of timing one workload (seconds per call)."""

    label: str
    samples: list[float]
    warmup_s: list[float]
    warmup_compilations: int
    recompilations: int
    configs: float = 1.0
    atoms: float = 0.0
    median_s: float = field(init=False)
    q1_s: float = field(init=False)
    q3_s: float = field(init=False)
    iqr_s: float = field(init=False)
    mad_s: float = field(init=False)
    min_s: float = field(init=False)

    def __post_init__(self) -> None:
        s = np.asarray(self.samples, dtype=np.float64)
        self.median_s = float(np.median(s))
        self.q1_s, self.q3_s = (float(v) for v in np.percentile(s, [25, 75]))
        self.iqr_s = self.q3_s - self.q1_s
        self.mad_s = float(np.median(np.abs(s - self.median_s)))
        self.min_s = float(s.min())

    @property
    def compile_s(self) -> float:
        """Warm-up time above the steady-state call time (compilation and first-call costs)."""
        return max(sum(self.warmup_s) - len(self.warmup_s) * self.median_s, 0.0)

    def rates(self) -> dict[str, float]:
        """calls/s, configurations/s, atoms·steps/s and µs/atom/step at the median."""
        t = self.median_s
        out = {
            "calls_per_s": 1.0 / t if t > 0 else float("inf"),
            "configs_per_s": self.configs / t if t > 0 else float("inf"),
        }
        if self.atoms:
            out["atom_steps_per_s"] = self.atoms / t if t > 0 else float("inf")
            out["us_per_atom_step"] = 1e6 * t / self.atoms
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "median_s": self.median_s,
            "q1_s": self.q1_s,
            "q3_s": self.q3_s,
            "iqr_s": self.iqr_s,
            "mad_s": self.mad_s,
            "min_s": self.min_s,
            "repeats": len(self.samples),
            "samples_s": list(self.samples),
            "warmup_s": list(self.warmup_s),
            "compile_s": self.compile_s,
            "warmup_compilations": self.warmup_compilations,
            "recompilations": self.recompilations,
            "configs_per_call": self.configs,
            "atoms_per_call": self.atoms,
            **self.rates(),
        }


def _check_counts(warmup: int, repeats: int) -> None:
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 1:
        raise ConfigError(f"warm-up calls must be an integer >= 1, got {warmup!r}")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ConfigError(f"repeats must be an integer >= 1, got {repeats!r}")


def _timed_call(w: Workload) -> tuple[float, int]:
    before = w.compilations()
    t0 = time.perf_counter()
    w.sync(w.run())
    seconds = time.perf_counter() - t0
    return seconds, w.compilations() - before


MAX_WARMUP_CALLS = 50


def measure_interleaved(
    workloads: Sequence[Workload], repeats: int = 7, warmup: int = 1, warmup_min_s: float = 0.0
) -> list[Timing]:
    """Time several workloads in one process, alternating call by call after their warm-ups."""
    _check_counts(warmup, repeats)
    if not workloads:
        return []
    warm: list[list[float]] = [[] for _ in workloads]
    warm_compiles = [0] * len(workloads)
    for k, w in enumerate(workloads):
        while len(warm[k]) < warmup or (sum(warm[k]) < warmup_min_s and len(warm[k]) < MAX_WARMUP_CALLS):
            seconds, compiled = _timed_call(w)
            warm[k].append(seconds)
            warm_compiles[k] += compiled
    samples: list[list[float]] = [[] for _ in workloads]
    recompiles = [0] * len(workloads)
    for _ in range(repeats):
        for k, w in enumerate(workloads):
            seconds, compiled = _timed_call(w)
            samples[k].append(seconds)
            recompiles[k] += compiled
    return [
        Timing(w.label, samples[k], warm[k], warm_compiles[k], recompiles[k], configs=w.configs, atoms=w.atoms)
        for k, w in enumerate(workloads)
    ]


def measure(workload: Workload, repeats: int = 7, warmup: int = 1, warmup_min_s: float = 0.0) -> Timing:
    """Time one workload (see the module docstring for the protocol)."""
    return measure_interleaved([workload], repeats=repeats, warmup=warmup, warmup_min_s=warmup_min_s)[0]


# ------------------------------------------------------------ backend workloads
def inference_workload(backend, state, batch, label: str = "inference") -> Workload:
    """Energy + forces of one batch through ``backend`` (data placed on the device once)."""
    graphs = np.asarray(batch.graph_mask)
    return Workload(
        label=label,
        run=backend.inference_fn(state, batch),
        sync=backend.sync,
        compilations=backend.compilations,
        configs=float(graphs.sum()),
        atoms=float(np.asarray(batch.n_atoms)[graphs].sum()),
    )


def training_workload(backend, state, batches: Sequence, lr: float, label: str = "training") -> Workload:
    """A block of optimizer steps over ``batches`` (the real training path, host→device
    conversion included); one call = one step per batch. The state is carried on."""
    if not batches:
        raise ConfigError("training workload needs at least one batch")
    holder = {"state": state}

    def run():
        loss = None
        for batch in batches:
            holder["state"], loss = backend.train_step(holder["state"], batch, lr)
        return loss

    configs = float(sum(int(np.asarray(b.graph_mask).sum()) for b in batches))
    atoms = float(sum(int(np.asarray(b.n_atoms)[np.asarray(b.graph_mask)].sum()) for b in batches))
    return Workload(
        label=label, run=run, sync=backend.sync, compilations=backend.compilations, configs=configs, atoms=atoms
    )


def inference_us_per_atom_step(
    backend, state, batch, repeats: int = 5, warmup: int = 1, warmup_min_s: float = 1.0
) -> float:
    """µs per atom per energy+forces evaluation of ``batch`` (median over ``repeats``,
    compilation and warm-up excluded): the speed objective of a model, comparable across sizes."""
    workload = inference_workload(backend, state, batch)
    return measure(workload, repeats=repeats, warmup=warmup, warmup_min_s=warmup_min_s).rates()["us_per_atom_step"]


# ------------------------------------------------------------------ memory
def peak_host_memory_bytes() -> int:
    """Peak resident set size of this process so far (``getrusage``; never reset)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


# ------------------------------------------------------------------ scaling
def fit_power_law(sizes: Sequence[float], seconds: Sequence[float]) -> dict[str, float]:
    """Least squares of log(t) = log(a) + b·log(n): exponent b, prefactor a, and R²."""
    x = np.log(np.asarray(sizes, dtype=np.float64))
    y = np.log(np.asarray(seconds, dtype=np.float64))
    if x.size < 2 or np.ptp(x) == 0:
        raise ConfigError("the scaling fit needs at least two different system sizes")
    b, log_a = np.polyfit(x, y, 1)
    residual = y - (log_a + b * x)
    total = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - float(np.sum(residual**2)) / total if total > 0 else 1.0
    return {"exponent": float(b), "prefactor_s": float(np.exp(log_a)), "r2": r2}


# -------------------------------------------------------------- fingerprint
def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def library_versions() -> dict[str, str]:
    """Versions of Python and of the numerical libraries installed (those that are)."""

    out = {"python": platform.python_version(), "mlffbench": __version__}
    for dist in ("numpy", "jax", "jaxlib", "flax", "optax", "torch", "torch_geometric", "vesin"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    return out


def machine_fingerprint(devices: Sequence[str] = ()) -> dict[str, Any]:
    """Hardware and software of this process: CPU model, cores, OS, devices, versions, load."""
    try:
        usable: int | None = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "platform": platform.platform(),
        "devices": sorted(set(devices)),
        "versions": library_versions(),
        "loadavg": list(os.getloadavg()) if hasattr(os, "getloadavg") else [],
        "threads_env": {
            k: os.environ[k] for k in ("OMP_NUM_THREADS", "XLA_FLAGS", "MKL_NUM_THREADS") if k in os.environ
        },
    }


def summary(values: Sequence[float]) -> dict[str, float]:
    """Mean, standard deviation (n-1; 0 for one value) and count of some numbers."""
    vals = [float(v) for v in values if v is not None and np.isfinite(v)]
    if not vals:
        return {"mean": float("nan"), "std": float("nan"), "n": 0}
    return {"mean": statistics.fmean(vals), "std": statistics.stdev(vals) if len(vals) > 1 else 0.0, "n": len(vals)}
