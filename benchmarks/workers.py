"""Benchmark variants in worker processes, each with its own process set-up, timed in turn.

The host allocator is fixed when a process starts (see :mod:`mlffbench.speed.runtime`): the
``mlffbench`` command runs with glibc's malloc tuned, an original code is run by its authors
with the system's. To time each as it really runs and still side by side, every variant lives
in a worker process of its own, started with its allocator; the parent asks one worker at a
time for an epoch (``throughput.interleave``), so they alternate and never overlap.

Protocol (text lines): the parent starts ``python SCRIPT ARGS... --worker NAME``; the worker
builds variant NAME, writes one JSON line describing it ({"label", "graph",
"edges_per_atom", "configs"}: configurations per epoch), then for each seed line it reads runs one epoch with
``numpy.random.default_rng(seed)`` and writes {"rate": configurations/s}. Everything else the
worker prints goes to stderr.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
from throughput import interleave

from mlffbench.speed import runtime


def worker_environment(tuned_allocator: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    if tuned_allocator:
        tuned = runtime.tuned_environment({k: v for k, v in env.items() if k != runtime.OPT_OUT})
        if tuned is None:
            raise SystemExit("the tuned allocator needs Linux with glibc")
        return tuned
    return env


class WorkerVariant:
    """A variant built and timed in its own process (``serve`` runs on the other side)."""

    def __init__(self, script: str, argv: list[str], name: str, tuned_allocator: bool):
        self.allocator = "mlffbench (tuned glibc malloc)" if tuned_allocator else "system malloc"
        self.proc = subprocess.Popen(
            [sys.executable, script, *argv, "--worker", name],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=worker_environment(tuned_allocator),
        )
        info = self._read()
        self.label = f"{info['label']} [{'tuned' if tuned_allocator else 'system'} malloc]"
        self.graph = info["graph"]
        self.edges_per_atom = info["edges_per_atom"]
        self.configs = int(info["configs"])

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(
                f"benchmark worker {self.proc.args[-1]} exited (code {self.proc.wait()}); see its messages above"
            )
        return json.loads(line)

    def epoch(self, indices, rng) -> float:
        self.proc.stdin.write(f"{int(rng.integers(2**31))}\n")
        self.proc.stdin.flush()
        return float(self._read()["rate"])

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=60)


def channel():
    """The worker's protocol stream (its original stdout). Call it before building the variant:
    from then on anything else printed to stdout goes to stderr."""
    sys.stdout.flush()
    proto = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    return proto


def serve(proto, variant, indices) -> None:
    """The worker's side: describe ``variant``, then time one epoch per seed read from stdin."""
    proto.write(
        json.dumps(
            {
                "label": variant.label,
                "graph": variant.graph,
                "edges_per_atom": variant.edges_per_atom,
                "configs": len(indices),
            }
        )
        + "\n"
    )
    proto.flush()
    for line in sys.stdin:
        rate = variant.epoch(indices, np.random.default_rng(int(line)))
        proto.write(json.dumps({"rate": rate}) + "\n")
        proto.flush()


def time_in_turn(variants: list[WorkerVariant], epochs: int, seed: int):
    """``throughput.interleave`` over worker variants, which are closed afterwards; each result
    names its allocator. Returns (results, indices, load average before, load average after)."""
    indices = np.arange(variants[0].configs)
    load_before = os.getloadavg()
    try:
        results = interleave(variants, indices, epochs, seed)
    finally:
        for variant in variants:
            variant.close()
    load_after = os.getloadavg()
    for result, variant in zip(results, variants, strict=True):
        result["host_allocator"] = variant.allocator
    return results, indices, load_before, load_after
