"""Training throughput on EAN: mlffbench's NeuralIL vs the original NeuralIL code, side by side.

All variants train on the same EAN configurations with the paper's batch size (8), forces in
the loss (second-order autodiff), float32, on the same machine in one process, epochs
interleaved (ours, original, JAT, ours, ...) so that all see the same machine load.
Reported: training configurations per second, the median over the epochs after a warm-up
epoch (which holds the compilation).

* ``mlffbench NeuralIL``: the real training path — ``GraphBatcher`` batches of the core's
  periodic neighbour list (computed once, as a run caches it) and ``JaxBackend.train_step``
  with the paper's optimiser (Adam + decoupled weight decay 1e-4) and log-cosh loss.
* ``original NeuralIL`` (``--original PATH``, a checkout of
  Madsen-s-research-group/neuralil-public-releases, branch ``main``; imported from
  ``PATH/src``, never copied): ``NeuralILwithMorse`` + ``Core([64, 32, 16, 16, 16])``, its
  ``PowerSpectrumGenerator`` with ``max_neighbors`` computed as ``examples/train_an_nn.py``
  does, its one-cycle optimiser (reset every epoch) and its ``create_training_step`` /
  ``create_training_epoch`` drivers. Two shims let the 2022 code import under the current
  JAX without editing it: ``import jax.config`` (now an attribute, not a module) and
  ``jnp.clip(a_min=, a_max=)`` (now ``min=``/``max=``).
* ``mlffbench JAT`` (``--jat``): the JAT plugin on the same batches, for the JAT/NeuralIL
  ratio of the thesis' speed claim.

    .venv/bin/python benchmarks/neuralil_throughput.py --data-dir ../shared/data \\
        --original /work/original_bench/neuralil --jat --out /tmp/neuralil_throughput.json
"""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import OursJax, base_parser, interleave, machine, original_arrays, print_table, write_results

ORIGINAL_ELEMENTS = ("C", "H", "N", "O")  # the original numbers species alphabetically


def parse_args(argv=None):
    ap = base_parser(__doc__, configs=56)
    ap.add_argument("--batch-size", type=int, default=None, help="default: the plugin's (the paper's) batch size, 8")
    ap.add_argument(
        "--original", type=Path, default=None, help="checkout of the original NeuralIL code (its src/ is imported)"
    )
    ap.add_argument("--jat", action="store_true", help="also time mlffbench's JAT on the same batches")
    return ap.parse_args(argv)


def _import_original(path: Path):
    """The original package from ``path/src``, with the two import-compatibility shims."""
    import jax
    import jax.numpy as jnp

    src = (path / "src").resolve()
    if not (src / "neuralil" / "model.py").is_file():
        raise SystemExit(f"--original {path}: no src/neuralil/model.py there (a checkout of neuralil-public-releases?)")
    sys.modules.setdefault("jax.config", jax.config)
    clip = jnp.clip

    def clip_compat(a, a_min=None, a_max=None, **kw):
        if a_min is not None:
            kw.setdefault("min", a_min)
        if a_max is not None:
            kw.setdefault("max", a_max)
        return clip(a, **kw)

    jnp.clip = clip_compat
    sys.path.insert(0, str(src))
    import neuralil.bessel_descriptors as descriptors
    from neuralil import model, training

    return descriptors, model, training


class Original:
    label = "original NeuralIL (main)"

    def __init__(self, path, train_config, ds, indices, n_max=4, r_cut=3.5, embed_d=2, widths=(64, 32, 16, 16, 16)):
        import jax
        import jax.numpy as jnp

        descriptors, model, training = _import_original(path)
        self.jax, self.training = jax, training
        positions, types, cells, energies, forces = original_arrays(ds, indices, ORIGINAL_ELEMENTS)
        idx = np.asarray(indices)
        t0 = time.perf_counter()
        max_neighbors = max(
            descriptors.get_max_number_of_neighbors(jnp.asarray(p), jnp.asarray(t), r_cut, jnp.asarray(c))
            for p, t, c in zip(positions, types, cells)
        )
        self.neighbor_seconds = time.perf_counter() - t0
        self.max_neighbors = int(max_neighbors)
        generator = descriptors.PowerSpectrumGenerator(n_max, r_cut, len(ORIGINAL_ELEMENTS), self.max_neighbors)
        self.model = model.NeuralILwithMorse(
            len(ORIGINAL_ELEMENTS),
            embed_d,
            r_cut,
            generator.process_data,
            generator.process_some_data,
            model.Core(list(widths)),
        )
        batch = train_config.batch_size
        self.batch_size = batch
        lr_min, lr_max, lr_fin = train_config.lr
        self.optimizer = training.create_one_cycle_minimizer(len(idx) // batch, lr_min, lr_max, lr_fin)
        rng = jax.random.PRNGKey(0)
        rng, init_rng, epoch_rng = jax.random.split(rng, 3)
        # initialised through calc_potential_energy (the script uses calc_forces: same parameters,
        # but under current flax creating them inside its raw jax.checkpoint(jax.grad(...))
        # leaks tracers into the parameter tree)
        self.params = self.model.init(
            init_rng,
            jnp.asarray(positions[0]),
            jnp.asarray(types[0]),
            jnp.asarray(cells[0]),
            method=self.model.calc_potential_energy,
        )
        self.opt_state = self.optimizer.init(self.params)
        log_cosh = training.create_log_cosh(train_config.log_cosh_p)

        def loss_contribution(pred_energy, pred_forces, obs_energy, obs_forces):
            return log_cosh(obs_forces - pred_forces).mean()

        step = training.create_training_step(self.model, self.optimizer, loss_contribution)
        self.run_epoch = training.create_training_epoch(
            jnp.asarray(positions),
            jnp.asarray(types),
            jnp.asarray(cells),
            jnp.asarray(energies),
            jnp.asarray(forces),
            batch,
            step,
            epoch_rng,
            progress_bar=False,
        )
        self.n_steps = len(idx) // batch
        self.graph = f"its own minimum-image N×N distances, {self.max_neighbors} nearest neighbours per atom"
        self.edges_per_atom = float(self.max_neighbors)

    def epoch(self, indices, rng) -> float:
        self.opt_state = self.training.reset_one_cycle_minimizer(self.opt_state)
        t0 = time.perf_counter()
        self.opt_state, self.params = self.run_epoch(self.opt_state, self.params)
        self.jax.block_until_ready(self.params)
        return self.n_steps * self.batch_size / (time.perf_counter() - t0)


def main(argv=None) -> int:
    args = parse_args(argv)
    from mlffbench import __version__
    from mlffbench.speed import runtime

    runtime.set_xla_flags()  # first: the CPU flags of the mlffbench commands, before jax is imported

    import jax

    from mlffbench.data.loading import load_dataset
    from mlffbench.plugin.manager import get_registry
    from mlffbench.training.config import TrainConfig, from_dict

    registry = get_registry()
    spec = registry.model("neuralil")
    config = from_dict(spec.config_class, dict(spec.presets["ean"]["model"]), "neuralil model")
    train_values = {**spec.train_defaults, **spec.presets["ean"]["train"]}
    if args.batch_size:
        train_values["batch_size"] = args.batch_size
    train_config = from_dict(TrainConfig, train_values, "training")

    ds = load_dataset("ean", data_dir=args.data_dir, download=False)
    ds = ds.select(np.arange(min(args.configs, ds.n_configs)))
    indices = np.arange(ds.n_configs)

    variants = [OursJax("mlffbench NeuralIL", spec, config, train_config, ds, indices)]
    if args.original is not None:
        variants.append(Original(args.original, train_config, ds, indices))
    if args.jat:
        jat = registry.model("jat")
        jat_config = from_dict(jat.config_class, {**jat.model_defaults, **jat.presets["ean"]["model"]}, "jat model")
        jat_train = from_dict(TrainConfig, {**jat.train_defaults, "batch_size": train_config.batch_size}, "training")
        variants.append(OursJax("mlffbench JAT", jat, jat_config, jat_train, ds, indices))

    load_before = os.getloadavg()
    results = interleave(variants, indices, args.epochs, args.seed)
    load_after = os.getloadavg()

    by_label = {r["variant"]: r["configs_per_s_median"] for r in results}
    ours = by_label["mlffbench NeuralIL"]
    original = by_label.get(Original.label)
    jat_rate = by_label.get("mlffbench JAT")
    record = {
        "benchmark": "neuralil_throughput",
        "dataset": "ean",
        "configurations_per_epoch": int(len(indices) // train_config.batch_size * train_config.batch_size),
        "timed_epochs": args.epochs,
        "batch_size": train_config.batch_size,
        "dtype": "float32",
        "model_config": {k: getattr(config, k) for k in config.__dataclass_fields__},
        "loss": f"forces only, log-cosh p = {train_config.log_cosh_p:g} (second-order autodiff)",
        "results": results,
        "ratio_ours_to_original": ours / original if original else None,
        "ratio_jat_to_neuralil_ours": jat_rate / ours if jat_rate else None,
        "ratio_jat_to_neuralil_original": jat_rate / original if (jat_rate and original) else None,
        "machine": machine(load_before, load_after),
        "versions": {"mlffbench": __version__, "jax": jax.__version__, "python": platform.python_version()},
    }
    print(
        f"\nNeuralIL training throughput on EAN ({record['configurations_per_epoch']} configurations/epoch, "
        f"batch {train_config.batch_size}, float32, median of {args.epochs} epochs; load average "
        f"{load_before[0]:.2f} → {load_after[0]:.2f})"
    )
    print_table(results)
    if original:
        print(f"ours / original NeuralIL: {record['ratio_ours_to_original']:.2f}x")
    if jat_rate:
        print(
            f"JAT / NeuralIL (ours): {record['ratio_jat_to_neuralil_ours']:.2f}x"
            + (f"   JAT / NeuralIL (original): {record['ratio_jat_to_neuralil_original']:.2f}x" if original else "")
        )
    write_results(args.out, record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
