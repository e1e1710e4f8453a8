"""Shared pieces of the training-throughput benchmarks (imported by the scripts beside it).

A *variant* is anything with ``label``, ``graph`` (how it finds neighbours),
``edges_per_atom`` and ``epoch(indices, rng) -> configurations/s``. :func:`interleave`
runs one warm-up epoch per variant (it holds the compilation) and then alternates timed
epochs (A, B, A, B, ...) so that every variant sees the same machine load; the figure
reported is the median over the timed epochs.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time

import numpy as np


class OursJax:
    """A model plugin's real training path: core batches + ``JaxBackend.train_step``."""

    def __init__(self, label, spec, config, train_config, ds, indices):
        from mlffbench.backends.jax.trainer import JaxBackend
        from mlffbench.data.stats import compute_stats
        from mlffbench.graph.batching import GraphBatcher
        from mlffbench.graph.neighbors import compute_neighbors

        self.label = label
        t0 = time.perf_counter()
        neighbors = compute_neighbors(ds, spec.cutoff(config))
        self.neighbor_seconds = time.perf_counter() - t0
        stats = compute_stats(ds, indices, neighbors)
        self.backend = JaxBackend(spec.build(config, stats), train_config, force_rms=stats.force_rms)
        self.batcher = GraphBatcher(ds, neighbors, stats.species, train_config.batch_size)
        self.batch_size = train_config.batch_size
        self.lr = train_config.lr[1]
        self.state = None
        self.graph = f"core neighbour list, PBC, every pair < {spec.cutoff(config):g} Å"
        self.edges_per_atom = float(neighbors.n_edges.sum() / ds.n_atoms.sum())

    def epoch(self, indices, rng) -> float:
        batches = list(self.batcher.batches(indices, rng=rng, batch_size=self.batch_size, drop_remainder=True))
        if self.state is None:
            self.state = self.backend.init(0, batches[0])
        t0 = time.perf_counter()
        losses = []
        for batch in batches:
            self.state, loss = self.backend.train_step(self.state, batch, self.lr)
            losses.append(loss)
        values = [self.backend.loss_value(v) for v in losses]
        assert all(np.isfinite(values))
        return len(batches) * self.batch_size / (time.perf_counter() - t0)


def interleave(variants, indices, epochs: int, seed: int = 0) -> list[dict]:
    """Warm-up epoch, then ``epochs`` timed epochs per variant, alternating; one result each."""
    rates: dict[int, list[float]] = {k: [] for k in range(len(variants))}
    for epoch in range(epochs + 1):
        for k, variant in enumerate(variants):
            rate = variant.epoch(indices, np.random.default_rng([seed, epoch]))
            if epoch > 0:
                rates[k].append(rate)
            note = " (warm-up, compiles)" if epoch == 0 else ""
            print(f"epoch {epoch}{note}  {variant.label:<28} {rate:7.2f} configurations/s", file=sys.stderr)
    return [
        {
            "variant": v.label,
            "graph": v.graph,
            "edges_per_atom": v.edges_per_atom,
            "configs_per_s_median": statistics.median(rates[k]),
            "configs_per_s_epochs": rates[k],
        }
        for k, v in enumerate(variants)
    ]


def machine(load_before, load_after) -> dict:
    """The core's hardware/software fingerprint (``mlffbench.speed.timing.machine_fingerprint``)
    plus the JAX device and the load average before and after the measurement."""
    import jax

    from mlffbench.speed.timing import machine_fingerprint

    return {
        **machine_fingerprint([str(jax.devices()[0])]),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "jax_device": str(jax.devices()[0]),
        "loadavg_before": load_before,
        "loadavg_after": load_after,
    }


def print_table(results) -> None:
    print(f"{'variant':<30} {'configs/s':>10} {'edges/atom':>11}  graph")
    for r in results:
        print(f"{r['variant']:<30} {r['configs_per_s_median']:>10.2f} {r['edges_per_atom']:>11.1f}  {r['graph']}")


def base_parser(doc: str, configs: int):
    """The options every throughput script shares (its own are added by the caller)."""
    import argparse
    from pathlib import Path

    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument(
        "--data-dir", type=Path, default=None, help="folder with the dataset files (default: $MLFFBENCH_DATA_DIR)"
    )
    ap.add_argument("--configs", type=int, default=configs, help=f"EAN configurations per epoch (default {configs})")
    ap.add_argument(
        "--epochs", type=int, default=4, help="timed epochs per variant, after one warm-up epoch (default 4)"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True, help="JSON results file")
    return ap


def original_arrays(ds, indices, element_order):
    """Per-configuration float32 arrays (positions, types, cells, energies, forces) of equally
    sized configurations, species numbered in ``element_order`` (as an original code does)."""
    from mlffbench.data import elements

    idx = np.asarray(indices)
    symbols = [elements.symbol(int(z)) for z in ds.numbers[ds.atoms_of(int(idx[0]))]]
    type_of = {s: i for i, s in enumerate(element_order)}
    positions = np.stack([ds.positions[ds.atoms_of(int(i))] for i in idx]).astype(np.float32)
    types = np.tile(np.asarray([type_of[s] for s in symbols], np.int32), (len(idx), 1))
    forces = np.stack([ds.forces[ds.atoms_of(int(i))] for i in idx]).astype(np.float32)
    return positions, types, ds.cell[idx].astype(np.float32), ds.energy[idx].astype(np.float32), forces


def write_results(path, record) -> None:
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"results: {path}")
