"""Training throughput on EAN: mlffbench's SchNet vs plain torch-geometric SchNet, side by side.

Both train the same SchNet sizes (the plugin's defaults, or ``-p key=value`` overrides) with
forces in the loss (second-order autograd), float32, the same batch size and the same batches,
on the same machine, each in its own worker process, epochs interleaved (ours, PyG, ours, PyG, ...) so that both
see the same machine load. Reported: training configurations per second, the median over the
epochs after a warm-up epoch.

* ``mlffbench``: the real training path — ``GraphBatcher`` batches of the core's periodic
  neighbour list (every pair within the cutoff, periodic images included; computed once, as a
  run caches it), ``TorchBackend.train_step`` (its Adam, numpy → torch conversion included).
* ``pyg``: ``torch_geometric.nn.models.SchNet`` with its own interaction graph — a radius graph
  rebuilt every step, PBC ignored, at most ``max_num_neighbors`` (PyG's default 32) per atom —
  and ``torch.optim.Adam``. PyG's ``radius_graph`` needs the compiled ``pyg-lib`` package; where
  it is missing the same graph is built in plain torch (``mlffbench_schnet.pyg.DenseRadiusGraph``);
  the JSON records which. Plain PyG runs with torch's default float settings; a third variant
  gives it ``torch.set_flush_denormal(True)``, which our backend sets on the CPU (subnormal
  floats from the Gaussian tails slow x86 arithmetic), so the gain of that setting is visible
  on its own.

Each variant runs in a worker process of its own (``workers.py``), epochs alternating:
mlffbench's with the host allocator the ``mlffbench`` command sets up (``mlffbench.speed.runtime``),
PyG with the system's, and once more with mlffbench's allocator and denormal flushing
(``--no-pyg-tuned`` skips that), so the share of these process settings is shown.

    .venv/bin/python benchmarks/schnet_throughput.py --data-dir ../shared/data --out /tmp/schnet_throughput.json
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import base_parser, write_results
from workers import WorkerVariant, channel, serve, time_in_turn

WORKERS = ("ours", "pyg", "pyg-flush", "pyg-all-pairs")


def parse_args(argv=None):
    ap = base_parser(__doc__, configs=48)
    ap.add_argument("--batch-size", type=int, default=None, help="default: the plugin's training default")
    ap.add_argument("--pyg-max-neighbors", type=int, default=32, help="PyG's max_num_neighbors (default 32, PyG's own)")
    ap.add_argument(
        "--all-pairs", action="store_true", help="also time PyG with max_num_neighbors high enough to keep every pair"
    )
    ap.add_argument(
        "--no-pyg-flush",
        action="store_true",
        help="skip the PyG variant with torch.set_flush_denormal(True) (our backend's CPU setting)",
    )
    ap.add_argument(
        "--no-pyg-tuned",
        action="store_true",
        help="skip the PyG variant with mlffbench's allocator and denormal flushing",
    )
    ap.add_argument("-p", "--param", action="append", default=[], help="SchNet option name=value (repeatable)")
    ap.add_argument("--worker", choices=WORKERS, default=None, help=argparse.SUPPRESS)
    return ap.parse_args(argv)


class Ours:
    label = "mlffbench SchNet"
    flush_denormal = True  # what TorchBackend sets on the CPU

    def __init__(self, ds, config, train_config, stats, neighbors):
        from mlffbench.backends.torch.trainer import TorchBackend
        from mlffbench.graph.batching import GraphBatcher
        from mlffbench_schnet.model import build

        self.backend = TorchBackend(build(config, stats), train_config, force_rms=stats.force_rms, device="cpu")
        self.batcher = GraphBatcher(ds, neighbors, stats.species, train_config.batch_size)
        self.batch_size = train_config.batch_size
        self.lr = train_config.lr[1]
        self.state = None
        self.graph = f"core neighbour list, PBC, all pairs < {config.cutoff:g} Å"
        self.edges_per_atom = float(neighbors.n_edges.sum() / ds.n_atoms.sum())

    def epoch(self, indices, rng) -> float:
        batches = self.batcher.batches(indices, rng=rng, batch_size=self.batch_size, drop_remainder=True)
        t0 = time.perf_counter()
        losses, n = [], 0
        for batch in batches:
            if self.state is None:
                self.state = self.backend.init(0, batch)
                t0 = time.perf_counter()  # initialisation is not training
            self.state, loss = self.backend.train_step(self.state, batch, self.lr)
            losses.append(loss)
            n += self.batch_size
        [self.backend.loss_value(v) for v in losses]
        return n / (time.perf_counter() - t0)


class Pyg:
    def __init__(self, ds, config, train_config, stats, max_neighbors: int, flush_denormal: bool = False):
        import torch
        from torch_geometric.nn.models import SchNet

        from mlffbench_schnet.pyg import radius_interaction_graph

        self.torch = torch
        graph = radius_interaction_graph(config.cutoff, max_neighbors)
        self.graph_impl = (
            "torch_geometric radius_graph (pyg-lib)"
            if type(graph).__name__ == "RadiusInteractionGraph"
            else "plain-torch radius graph (no pyg-lib)"
        )
        torch.manual_seed(0)
        self.model = SchNet(
            hidden_channels=config.hidden_channels,
            num_filters=config.num_filters,
            num_interactions=config.num_interactions,
            num_gaussians=config.num_gaussians,
            cutoff=config.cutoff,
            interaction_graph=graph,
        )
        self.flush_denormal = flush_denormal
        self.label = f"PyG SchNet (max_num_neighbors={max_neighbors})" + (
            " + flush denormals" if flush_denormal else ""
        )
        self.graph = f"radius graph every step, no PBC, <= {max_neighbors} neighbours: {self.graph_impl}"
        self.opt = torch.optim.Adam(self.model.parameters(), lr=train_config.lr[1])
        self.ds = ds
        self.batch_size = train_config.batch_size
        self.energy_weight = train_config.energy_weight
        refs = dict(zip(stats.species, stats.reference_energies, strict=True))
        self.shifted_energy = np.array(
            [ds.energy[i] - sum(refs[int(z)] for z in ds.numbers[ds.atoms_of(i)]) for i in range(ds.n_configs)]
        )
        _z, pos, batch, *_ = self._batch(np.arange(min(self.batch_size, ds.n_configs)))
        edge_index, _ = self.model.interaction_graph(pos, batch)
        self.edges_per_atom = float(edge_index.shape[1] / pos.shape[0])

    def _batch(self, idx):
        torch, ds = self.torch, self.ds
        atoms = np.concatenate([np.arange(ds.offsets[i], ds.offsets[i + 1]) for i in idx])
        n = ds.n_atoms[idx]
        return (
            torch.as_tensor(ds.numbers[atoms], dtype=torch.long),
            torch.as_tensor(ds.positions[atoms], dtype=torch.float32),
            torch.repeat_interleave(torch.arange(len(idx)), torch.as_tensor(n)),
            torch.as_tensor(ds.forces[atoms], dtype=torch.float32),
            torch.as_tensor(self.shifted_energy[idx], dtype=torch.float32),
            torch.as_tensor(n, dtype=torch.float32),
        )

    def epoch(self, indices, rng) -> float:
        torch = self.torch
        order = np.asarray(indices)[rng.permutation(len(indices))]
        steps = len(order) // self.batch_size
        t0 = time.perf_counter()
        losses = []
        for s in range(steps):
            z, pos, batch, forces, energy, n_atoms = self._batch(order[s * self.batch_size : (s + 1) * self.batch_size])
            pos.requires_grad_(True)
            e = self.model(z, pos, batch).squeeze(-1)
            (grad,) = torch.autograd.grad(e.sum(), pos, create_graph=True)
            loss = ((forces + grad) ** 2).mean() + self.energy_weight * (((energy - e) / n_atoms) ** 2).mean()
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            losses.append(loss.detach())
        [float(v) for v in losses]
        return steps * self.batch_size / (time.perf_counter() - t0)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.worker:
        return _serve(args)
    import torch
    import torch_geometric

    from mlffbench import __version__

    variants = [
        WorkerVariant(__file__, argv, "ours", tuned_allocator=True),
        WorkerVariant(__file__, argv, "pyg", tuned_allocator=False),
    ]
    if not args.no_pyg_flush:
        variants.append(WorkerVariant(__file__, argv, "pyg-flush", tuned_allocator=False))
    if not args.no_pyg_tuned:
        variants.append(WorkerVariant(__file__, argv, "pyg-flush", tuned_allocator=True))
    if args.all_pairs:
        variants.append(WorkerVariant(__file__, argv, "pyg-all-pairs", tuned_allocator=False))
    results, indices, load_before, load_after = time_in_turn(variants, args.epochs, args.seed)
    ours, pyg = results[0]["configs_per_s_median"], results[1]["configs_per_s_median"]
    config, train_config = _configs(args)
    record = {
        "benchmark": "schnet_throughput",
        "dataset": "ean",
        "configurations_per_epoch": int(len(indices) // train_config.batch_size * train_config.batch_size),
        "timed_epochs": args.epochs,
        "batch_size": train_config.batch_size,
        "dtype": "float32",
        "model_config": {k: getattr(config, k) for k in config.__dataclass_fields__},
        "loss": "forces (MSE, second-order autograd) + energy",
        "results": results,
        "ratio_ours_to_plain_pyg": ours / pyg if pyg > 0 else None,
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "loadavg_before": load_before,
            "loadavg_after": load_after,
        },
        "versions": {
            "mlffbench": __version__,
            "torch": torch.__version__,
            "torch_geometric": torch_geometric.__version__,
            "python": platform.python_version(),
        },
    }
    print(
        f"\nSchNet training throughput on EAN ({record['configurations_per_epoch']} configurations/epoch, batch "
        f"{train_config.batch_size}, float32, median of {args.epochs} epochs; load average {load_before[0]:.2f} → {load_after[0]:.2f})"
    )
    print(f"{'variant':<62} {'configs/s':>10} {'edges/atom':>11}  graph")
    for r in results:
        print(f"{r['variant']:<62} {r['configs_per_s_median']:>10.2f} {r['edges_per_atom']:>11.1f}  {r['graph']}")
    for r in results[1:]:
        print(f"ours / {r['variant']}: {ours / r['configs_per_s_median']:.2f}x")
    write_results(args.out, record)
    return 0


def _configs(args):
    """(SchNet config, training config) of the benchmark: the plugin's EAN settings, MSE loss."""
    from mlffbench.training.config import TrainConfig, from_dict, parse_value
    from mlffbench_schnet.config import PRESETS, TRAIN, SchnetConfig

    overrides = {}
    for item in args.param:
        key, _, value = item.partition("=")
        overrides[key.strip()] = parse_value(value)
    config = from_dict(SchnetConfig, {**PRESETS["ean"]["model"], **overrides}, "schnet model")
    train_values = {**TRAIN, **PRESETS["ean"]["train"], "loss": "mse"}  # PyG side: the same MSE loss
    if args.batch_size:
        train_values["batch_size"] = args.batch_size
    return config, from_dict(TrainConfig, train_values, "training")


def _serve(args) -> int:
    """Worker process: build one variant and time its epochs on request (``workers.serve``)."""
    proto = channel()
    import torch

    from mlffbench.data.loading import load_dataset
    from mlffbench.data.stats import compute_stats
    from mlffbench.graph.neighbors import compute_neighbors

    config, train_config = _configs(args)
    ds = load_dataset("ean", data_dir=args.data_dir, download=False)
    ds = ds.select(np.arange(min(args.configs, ds.n_configs)))
    indices = np.arange(ds.n_configs)
    neighbors = compute_neighbors(ds, config.cutoff)
    stats = compute_stats(ds, indices, neighbors)
    if args.worker == "ours":
        variant = Ours(ds, config, train_config, stats, neighbors)
    else:
        max_neighbors = 10_000 if args.worker == "pyg-all-pairs" else args.pyg_max_neighbors
        variant = Pyg(ds, config, train_config, stats, max_neighbors, flush_denormal=args.worker == "pyg-flush")
    torch.set_flush_denormal(variant.flush_denormal)
    serve(proto, variant, indices)
    return 0


if __name__ == "__main__":
    sys.exit(main())
