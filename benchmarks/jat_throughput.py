"""Training throughput on EAN: mlffbench's JAT vs the original JAT code, side by side.

Every variant trains on the same EAN configurations, batch 8 (the thesis'), forces in the
loss (second-order autodiff), float32, each in its own worker process, epochs interleaved
(see ``workers.time_in_turn``). Reported: training configurations per second, the median
over the timed epochs after a warm-up epoch (which holds the compilation).

* ``mlffbench JAT (thesis model)``: the faithful model (``edge_basis = 0``), 7×48, 1 head,
  5 Å, through the real training path (core neighbour lists, ``JaxBackend.train_step``)
  with the thesis config's training settings: one update per batch of 8, its gradient summed
  over passes of ``micro_batch_size`` configurations (``--micro-batch`` overrides it).
* ``mlffbench JAT (default model)``: the plugin's default for training from scratch
  (``edge_basis = 16``), same batch size.
* ``original JAT`` (``--original PATH``, a checkout of stefanhoedl/JAT_potential; its
  ``src/`` is imported, never copied): ``JatModel`` + ``JatCore`` + ``GraphGenerator`` with
  ``graph_neighbors`` computed as its scripts do, its one-cycle optimiser (reset every epoch)
  and its ``create_training_step`` / ``create_training_epoch``. Adaptations, none in its
  model code: a stand-in ``wandb`` module (imported at module level, unused here), and
  parameters initialised through ``calc_potential_energy`` (the scripts use ``calc_forces``:
  the same parameter tree, but under current flax creating the parameters inside its
  ``jax.checkpoint(jax.grad(...))`` leaks tracers).

Each variant runs in a worker process of its own (``workers.py``), epochs alternating:
mlffbench's with the host allocator the ``mlffbench`` command sets up (``mlffbench.speed.runtime``),
the original with the system's, as its scripts run, and once more with mlffbench's allocator
(``--no-original-tuned`` skips that), so the allocator's share of the difference is shown.

    .venv/bin/python benchmarks/jat_throughput.py --data-dir ../shared/data \\
        --original /path/to/JAT_potential --out /tmp/jat_throughput.json
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import os
import platform
import sys
import time
import types
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import OursJax, base_parser, machine, original_arrays, print_table, write_results
from workers import WorkerVariant, channel, serve, time_in_turn

ORIGINAL_ELEMENTS = ("C", "H", "N", "O")  # the original numbers species alphabetically
WORKERS = ("thesis", "default", "original")


def parse_args(argv=None):
    ap = base_parser(__doc__, configs=56)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument(
        "--original", type=Path, default=None, help="checkout of the original JAT code (its src/ is imported)"
    )
    ap.add_argument(
        "--micro-batch",
        type=int,
        default=None,
        help="mlffbench's configurations per gradient pass (default: the thesis config's micro_batch_size; 0 = whole batch)",
    )
    ap.add_argument("--no-default-model", action="store_true", help="time only the thesis model of mlffbench")
    ap.add_argument("--no-original-tuned", action="store_true", help="skip the original run with mlffbench's allocator")
    ap.add_argument("--worker", choices=WORKERS, default=None, help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def _import_original(path: Path):
    src = (path / "src").resolve()
    if not (src / "jat" / "jat_model.py").is_file():
        raise SystemExit(f"--original {path}: no src/jat/jat_model.py there (a checkout of JAT_potential?)")
    os.environ.setdefault("MPLBACKEND", "Agg")  # its training module imports pyplot
    if "wandb" not in sys.modules:  # imported at module level by jat.training, unused here
        stub = types.ModuleType("wandb")
        stub.log = stub.init = lambda *a, **k: None
        sys.modules["wandb"] = stub
    sys.path.insert(0, str(src))
    import jat.jat_model as model
    from jat import training, utilities

    return model, training, utilities


class Original:
    label = "original JAT"

    def __init__(self, path, train_config, ds, indices, layer_dims=(48,) * 7, cutoff=5.0, embed_d=48, n_head=1):
        import jax
        import jax.numpy as jnp

        model, training, utilities = _import_original(path)
        self.jax, self.training = jax, training
        positions, types_, cells, energies, forces = original_arrays(ds, indices, ORIGINAL_ELEMENTS)
        idx = np.asarray(indices)
        t0 = time.perf_counter()
        graph_neighbors = max(  # as the scripts compute it (their helper ignores the cell)
            int(utilities.get_max_number_of_neighbors(jnp.asarray(p), jnp.asarray(t), cutoff, jnp.asarray(c)))
            for p, t, c in zip(positions, types_, cells, strict=True)
        )
        self.neighbor_seconds = time.perf_counter() - t0
        n_atoms = positions.shape[1]
        generator = model.GraphGenerator(n_atoms, cutoff, jnp.asarray(cells[0]), graph_neighbors)
        core = model.JatCore(layer_dims=list(layer_dims), n_head=n_head)
        self.model = model.JatModel(len(ORIGINAL_ELEMENTS), embed_d, generator, core)
        batch = train_config.batch_size
        self.batch_size = batch
        rng = jax.random.PRNGKey(0)
        rng, init_rng, epoch_rng = jax.random.split(rng, 3)
        self.params = self.model.init(
            init_rng,
            jnp.asarray(positions[0]),
            jnp.asarray(types_[0]),
            jnp.asarray(cells[0]),
            method=self.model.calc_potential_energy,
        )
        lr_min, lr_max, lr_fin = train_config.lr
        self.optimizer = training.create_one_cycle_minimizer(len(idx) // batch, lr_min, lr_max, lr_fin)
        self.opt_state = self.optimizer.init(self.params)
        log_cosh = training.create_log_cosh(train_config.log_cosh_p)

        def loss_contribution(pred_energy, pred_forces, obs_energy, obs_forces):
            return log_cosh(obs_forces - pred_forces).mean()

        step = training.create_training_step(self.model, self.optimizer, loss_contribution)
        self.run_epoch = training.create_training_epoch(
            jnp.asarray(positions),
            jnp.asarray(types_),
            jnp.asarray(cells),
            jnp.asarray(energies),
            jnp.asarray(forces),
            batch,
            step,
            epoch_rng,
            progress_bar=False,
            log_wandb=False,
        )
        self.n_steps = len(idx) // batch
        self.graph = f"its own minimum-image N×N distances in the step, capacity {graph_neighbors}/atom"
        self.edges_per_atom = float(generator._mask_dim) / n_atoms

    def epoch(self, indices, rng) -> float:
        self.opt_state = self.training.reset_one_cycle_minimizer(self.opt_state)
        t0 = time.perf_counter()
        self.opt_state, self.params = self.run_epoch(self.opt_state, self.params)
        self.jax.block_until_ready((self.opt_state, self.params))
        return self.n_steps * self.batch_size / (time.perf_counter() - t0)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.worker:
        return _serve(args)
    from mlffbench import __version__
    from mlffbench.speed import runtime

    runtime.set_xla_flags()  # recorded in the machine fingerprint; every worker sets them too
    variants = [WorkerVariant(__file__, argv, "thesis", tuned_allocator=True)]
    if not args.no_default_model:
        variants.append(WorkerVariant(__file__, argv, "default", tuned_allocator=True))
    if args.original is not None:
        variants.append(WorkerVariant(__file__, argv, "original", tuned_allocator=False))
        if not args.no_original_tuned:
            variants.append(WorkerVariant(__file__, argv, "original", tuned_allocator=True))
    results, indices, load_before, load_after = time_in_turn(variants, args.epochs, args.seed)
    rate = {r["variant"]: r["configs_per_s_median"] for r in results}
    original = rate.get(f"{Original.label} [system malloc]")
    record = {
        "benchmark": "jat_throughput",
        "dataset": "ean",
        "configurations_per_epoch": int(len(indices) // args.batch_size * args.batch_size),
        "timed_epochs": args.epochs,
        "batch_size": args.batch_size,
        "mlffbench_micro_batch_size": _train_values(args)["micro_batch_size"],
        "dtype": "float32",
        "loss": f"forces only, log-cosh p = {_thesis()['train']['log_cosh_p']:g} (second-order autodiff)",
        "results": results,
        "ratio_to_original_as_distributed": {
            k: v / original for k, v in rate.items() if original and not k.startswith(Original.label + " [system")
        },
        "machine": machine(load_before, load_after),
        "versions": {"mlffbench": __version__, "jax": md.version("jax"), "python": platform.python_version()},
    }
    print(
        f"\nJAT training throughput on EAN ({record['configurations_per_epoch']} configurations/epoch, batch "
        f"{args.batch_size} (mlffbench: gradient passes of {record['mlffbench_micro_batch_size'] or args.batch_size}, one update), "
        f"float32, median of {args.epochs} epochs; load average {load_before[0]:.2f} → {load_after[0]:.2f})"
    )
    print_table(results)
    for label, ratio in record["ratio_to_original_as_distributed"].items():
        print(f"{label} / original JAT [system malloc]: {ratio:.2f}x")
    write_results(args.out, record)
    return 0


def _thesis() -> dict:
    """The thesis settings ({"model": ..., "train": ...}) as the plugin ships them."""
    path = Path(__file__).resolve().parents[1] / "plugins" / "jat" / "configs" / "ean-thesis.json"
    return json.loads(path.read_text())


def _train_values(args) -> dict:
    """The thesis training settings with the benchmark's batch size (and micro-batch, if given)."""
    values = {**_thesis()["train"], "batch_size": args.batch_size}
    if args.micro_batch is not None:
        values["micro_batch_size"] = args.micro_batch
    values.setdefault("micro_batch_size", 0)
    return values


def _serve(args) -> int:
    """Worker process: build one variant and time its epochs on request (``workers.serve``)."""
    proto = channel()
    from mlffbench.speed import runtime

    runtime.set_xla_flags()  # first: the CPU flags of the mlffbench commands, before jax is imported
    from mlffbench.data.loading import load_dataset
    from mlffbench.plugin.manager import get_registry
    from mlffbench.training.config import TrainConfig, from_dict

    spec = get_registry().model("jat")
    thesis = _thesis()
    train_config = from_dict(TrainConfig, _train_values(args), "training")
    ds = load_dataset("ean", data_dir=args.data_dir, download=False)
    ds = ds.select(np.arange(min(args.configs, ds.n_configs)))
    indices = np.arange(ds.n_configs)
    if args.worker == "original":
        variant = Original(args.original, train_config, ds, indices)
    else:
        model = (
            {**spec.presets["ean"]["model"], **thesis["model"]}
            if args.worker == "thesis"
            else {**spec.model_defaults, **spec.presets["ean"]["model"]}
        )
        label = f"mlffbench JAT ({args.worker} model)"
        variant = OursJax(label, spec, from_dict(spec.config_class, model, "jat model"), train_config, ds, indices)
    serve(proto, variant, indices)
    return 0


if __name__ == "__main__":
    sys.exit(main())
