"""Training throughput of one MACE three ways: mlffbench (torch), mace-torch's own loop, mlffbench (JAX).

Every variant trains the same MACE (the ``mace`` plugin's config for the dataset: its defaults
and family preset, or ``-p key=value`` overrides), float32, the same batch size, Adam at the
same learning rate, on the same configurations (rMD17 ethanol or EAN, ``--dataset``), energies
and forces in the loss (forces by second-order autograd / autodiff), each in a worker process
of its own, epochs interleaved (``workers.py``: one warm-up epoch, then ours, mace-torch,
mace-jax, ours, ...). Reported: training configurations per second, the median over the
timed epochs, and inference µs/atom/step (energy + forces of a batch of configurations,
``mlffbench.speed.timing``: warm-up, then the median of per-call times, the calls of the
variants alternating).

* ``ours`` (``mlffbench MACE (torch)``): the ``mace`` plugin through the real training path —
  ``GraphBatcher`` batches of the core's neighbour list (every pair within the cutoff,
  periodic images included, computed once as a run caches it), ``TorchBackend.train_step``
  (its Adam, numpy → torch conversion included), the mlffbench command's host allocator.
* ``mace-torch``: mace-torch's own training path, imported from the installed package, never
  copied: a ``mace.modules.MACE`` of the same architecture (the very module class and
  hyperparameters the plugin builds, see :func:`_mace_module`), its data pipeline
  (``ase.Atoms`` → ``mace.data.config_from_atoms`` → ``AtomicData.from_config``, whose
  neighbour list is computed once, as mace's preprocessing does; batches collated every step
  by ``mace.tools.torch_geometric.dataloader.DataLoader``, shuffled), its loss
  (``mace.modules.WeightedEnergyForcesLoss``) and its optimizer step
  (``mace.tools.train.take_step``: zero_grad, forward with forces, loss, backward,
  ``torch.optim.Adam`` step; no EMA, no gradient clipping), the system's allocator and torch's
  default float settings, as ``mace_run_train`` runs. ``--mace-torch-tuned`` adds it once more
  with mlffbench's allocator and denormal flushing (what ``TorchBackend`` sets around its own work on a CPU), so
  the share of these process settings is shown.
* ``mace-jax`` (``mlffbench MACE-JAX (mlip)``): the ``mace-jax`` plugin (InstaDeep's mlip
  MACE in JAX) through mlffbench's JAX training path (``throughput.OursJax``), its config
  translated from the MACE one (:func:`_jax_values`; ``-P key=value`` overrides it), the
  same training settings (whole batch per gradient pass). Settings the mace-jax config does
  not expose are listed in the output and the JSON (``mace_jax_unmatched_settings``): with
  the present plugins mlip keeps node features up to ``l_max`` (its ``node_symmetry``) where
  MACE's ``max_L`` keeps them up to 1, and has no skip connection in the first layer, so the
  JAX model is larger (compare ``n_params``).

The losses are the same (the plugin's force and energy weights): mace's weighted mean of
squared force components plus the weighted mean of squared per-atom energy errors, ours the
same per configuration, averaged (equal for configurations of equal size); mace's E0s are set
to the framework's per-species reference energies, which ours adds to the model's output.
Inference: ours and mace-jax through ``mlffbench.speed.timing.inference_workload``
(``Backend.inference_fn``), mace-torch (for reference) as ``model(batch, compute_force=True)``.

    .venv/bin/python benchmarks/mace_throughput.py --data-dir ../shared/data --out /tmp/mace_throughput.json
    .venv/bin/python benchmarks/mace_throughput.py --dataset ean --data-dir ../shared/data --out /tmp/mace_ean.json
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import OursJax, base_parser, interleave, machine, print_table, write_results
from workers import WorkerVariant, channel

WORKERS = ("ours", "mace-torch", "mace-jax")
DATASETS = ("rmd17-ethanol", "ean")


def parse_args(argv=None):
    ap = base_parser(__doc__, configs=64)
    ap.add_argument("--dataset", choices=DATASETS, default="rmd17-ethanol", help="default rmd17-ethanol")
    ap.add_argument("--batch-size", type=int, default=None, help="default: the mace plugin's training default")
    ap.add_argument("--lr", type=float, default=None, help="Adam learning rate (default: the plugin's peak lr)")
    ap.add_argument("--energy-weight", type=float, default=None, help="default: the plugin's, 1.0 where it has none")
    ap.add_argument("-p", "--param", action="append", default=[], help="MACE option name=value (repeatable)")
    ap.add_argument(
        "-P", "--jax-param", action="append", default=[], help="mace-jax option name=value over the translation"
    )
    ap.add_argument("--no-mace-torch", action="store_true", help="skip mace-torch's own training loop")
    ap.add_argument("--no-mace-jax", action="store_true", help="skip the mace-jax (mlip) plugin")
    ap.add_argument(
        "--mace-torch-tuned",
        action="store_true",
        help="also time mace-torch with mlffbench's allocator and denormal flushing",
    )
    ap.add_argument("--infer-configs", type=int, default=None, help="inference batch (default: eval_batch_size)")
    ap.add_argument("--infer-repeats", type=int, default=7, help="timed inference calls per variant (default 7)")
    ap.add_argument("--no-inference", action="store_true", help="time training only")
    ap.add_argument("--worker", choices=WORKERS, default=None, help=argparse.SUPPRESS)
    return ap.parse_args(argv)


# ------------------------------------------------------------------ configs
def _values(items) -> dict:
    from mlffbench.training.config import parse_value

    out = {}
    for item in items:
        key, _, value = item.partition("=")
        out[key.strip()] = parse_value(value)
    return out


def _configs(args):
    """(mace spec, dataset card, MACE config, training config): the plugin's settings for the
    dataset's family (``mlffbench.runs.experiment.resolve_configs``, as a run resolves them; its
    loss weights), with Adam, MSE, float32, whole batches per gradient pass, no output
    calibration, and energies in the loss."""
    from mlffbench.data.loading import resolve_card
    from mlffbench.plugin.manager import get_registry
    from mlffbench.runs.experiment import resolve_configs

    spec = get_registry().model("mace")
    card = resolve_card(args.dataset)
    preset_train = {**spec.train_defaults, **spec.presets.get(card.family, {}).get("train", {})}
    train = {
        "optimizer": "adam",
        "weight_decay": 0.0,
        "loss": "mse",
        "dtype": "float32",
        "micro_batch_size": 0,
        "calibrate_output": False,
    }
    energy_weight = args.energy_weight if args.energy_weight is not None else preset_train.get("energy_weight", 0.0)
    train["energy_weight"] = energy_weight if energy_weight > 0 else 1.0  # energies always in the loss
    if args.batch_size:
        train["batch_size"] = args.batch_size
    if args.lr:
        lr = float(args.lr)
        train["lr"] = (lr, lr, lr)
    config, train_config = resolve_configs(spec, card, _values(args.param), train)
    return spec, card, config, train_config


# mace (torch) option → mace-jax (mlip) option, for the settings the two share under other names
JAX_NAMES = {
    "r_max": "cutoff",
    "num_interactions": "num_layers",
    "max_ell": "l_max",
    "max_L": "node_symmetry",
    "num_bessel": "num_rbf",
    "mlp_channels": "readout_hidden",
    "radial_mlp": "radial_mlp_hidden",
    "gate": "activation",
}


def _jax_values(config, jax_spec, family: str, overrides: dict) -> tuple[dict, list[str]]:
    """The mace-jax model values equivalent to the MACE ``config`` (every setting the mace-jax
    config exposes, under its name or :data:`JAX_NAMES`'), over the mace-jax defaults and family
    preset, then ``overrides``; and the MACE settings that have no mace-jax counterpart, with
    what mlip does instead (reported, not silently dropped)."""
    fields = set(jax_spec.config_class.__dataclass_fields__)
    defaults = jax_spec.config_class()
    values = {**jax_spec.model_defaults, **jax_spec.presets.get(family, {}).get("model", {})}
    unmatched = []
    residual = "RealAgnosticResidualInteractionBlock"
    for name in config.__dataclass_fields__:
        value = getattr(config, name)
        target = JAX_NAMES.get(name, name)
        if target in fields:
            values[target] = list(value) if isinstance(value, tuple) else value
        elif name == "num_polynomial_cutoff" and "radial_envelope" in fields:
            values["radial_envelope"] = "polynomial"  # mlip's polynomial envelope has p = 5
            if value != 5:
                unmatched.append(f"num_polynomial_cutoff={value} (mace-jax: polynomial envelope, p = 5)")
        elif name == "max_L":
            l_max = values.get("l_max", getattr(defaults, "l_max", "?"))
            unmatched.append(f"max_L={value} (mace-jax: node features up to l_max = {l_max}, mlip's node_symmetry)")
        elif name == "interaction":
            if value != residual:
                unmatched.append(f"interaction={value} (mace-jax: mlip's residual interaction)")
        elif name == "interaction_first":
            if "residual_connection_first_layer" in fields:
                values["residual_connection_first_layer"] = value == residual
            elif value == residual:
                unmatched.append(f"interaction_first={value} (mace-jax: no skip connection in the first layer)")
        else:
            unmatched.append(f"{name}={value!r}")
    values.update(overrides)
    return values, unmatched


# ------------------------------------------------------------------ variants
class OursTorch:
    """The ``mace`` plugin's real training path: core batches + ``TorchBackend.train_step``."""

    label = "mlffbench MACE (torch)"
    flush_denormal = True  # what TorchBackend sets around its steps on the CPU

    def __init__(self, spec, config, train_config, ds, stats, neighbors):
        from mlffbench.backends.torch.trainer import TorchBackend
        from mlffbench.graph.batching import GraphBatcher

        self.backend = TorchBackend(spec.build(config, stats), train_config, force_rms=stats.force_rms)
        self.batcher = GraphBatcher(ds, neighbors, stats.species, train_config.batch_size)
        self.batch_size = train_config.batch_size
        self.lr = train_config.lr[1]
        self.state = None
        self.graph = f"core neighbour list, every pair < {spec.cutoff(config):g} Å (PBC where periodic)"
        self.edges_per_atom = float(neighbors.n_edges.sum() / ds.n_atoms.sum())

    def ensure_state(self, indices):
        if self.state is None:
            first = self.batcher.make_batch(np.asarray(indices)[: self.batch_size], batch_size=self.batch_size)
            self.state = self.backend.init(0, first)

    def epoch(self, indices, rng) -> float:
        self.ensure_state(indices)
        batches = list(self.batcher.batches(indices, rng=rng, batch_size=self.batch_size, drop_remainder=True))
        t0 = time.perf_counter()
        losses = []
        for batch in batches:
            self.state, loss = self.backend.train_step(self.state, batch, self.lr)
            losses.append(loss)
        values = [self.backend.loss_value(v) for v in losses]
        seconds = time.perf_counter() - t0
        assert all(np.isfinite(values)), values
        return len(batches) * self.batch_size / seconds

    def n_params(self) -> int:
        return self.backend.n_params(self.state)

    def model_class(self) -> str:
        names = sorted({_qualname(m) for m in self.backend.potential.module.modules() if type(m) in _mace_classes()})
        return ", ".join(names) or _qualname(self.backend.potential.module)

    def device_name(self) -> str:
        return self.backend.environment().get("device", "")

    def inference(self, indices, n: int):
        from mlffbench.speed import timing

        idx = np.asarray(indices)[:n]
        batch = self.batcher.make_batch(idx, batch_size=len(idx))
        return timing.inference_workload(self.backend, self.state, batch, f"{self.label}, batch {len(idx)}")


def _qualname(obj) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


class OursJaxMace(OursJax):
    """``throughput.OursJax`` (the JAX training path) with the inference workload."""

    def ensure_state(self, indices):
        if self.state is None:
            first = self.batcher.make_batch(np.asarray(indices)[: self.batch_size], batch_size=self.batch_size)
            self.state = self.backend.init(0, first)

    def epoch(self, indices, rng) -> float:
        self.ensure_state(indices)
        return super().epoch(indices, rng)

    def n_params(self) -> int:
        return self.backend.n_params(self.state)

    def model_class(self) -> str:
        potential = self.backend.potential
        return _qualname(getattr(potential, "module", potential))

    def device_name(self) -> str:
        return self.backend.environment().get("device", "")

    def inference(self, indices, n: int):
        from mlffbench.speed import timing

        idx = np.asarray(indices)[:n]
        batch = self.batcher.make_batch(idx, batch_size=len(idx))
        return timing.inference_workload(self.backend, self.state, batch, f"{self.label}, batch {len(idx)}")


def _mace_classes():
    from mace import modules

    return tuple(c for c in (getattr(modules, "MACE", None), getattr(modules, "ScaleShiftMACE", None)) if c)


def _mace_module(spec, config, stats):
    """A fresh ``mace.modules.MACE`` (or ``ScaleShiftMACE``) of the MACE ``config``: the module
    the ``mace`` plugin builds (``spec.build(config, stats)``) holds one of mace-torch's own
    classes, constructed by mace-torch from the config's hyperparameters; it is taken as it is
    (the plugin's wrapper, which feeds it the core's edge graph, is left behind). Only a module
    of exactly mace-torch's class is accepted, so its ``forward`` is mace-torch's."""
    potential = spec.build(config, stats)
    classes = _mace_classes()
    found = [m for m in potential.module.modules() if type(m) in classes]
    if not found:
        raise SystemExit(
            "the mace plugin's module holds no mace.modules.MACE / ScaleShiftMACE: "
            "cannot give mace-torch's own loop the same model"
        )
    return found[0]


class MaceTorch:
    """mace-torch's own data pipeline, loss and optimizer step (see the module docstring)."""

    def __init__(self, spec, config, train_config, ds, stats, flush_denormal: bool = False):
        import ase
        import torch
        from mace import data as mace_data
        from mace import modules, tools
        from mace.tools.torch_geometric.dataloader import DataLoader
        from mace.tools.train import take_step

        from mlffbench.backends.torch.trainer import select_device

        self.torch, self.DataLoader, self.take_step = torch, DataLoader, take_step
        torch.set_default_dtype(torch.float32)
        self.device = select_device()  # as our backend: $MLFFBENCH_TORCH_DEVICE, else CUDA if present, else CPU
        self.flush_denormal = flush_denormal
        self.label = "mace-torch's own loop" + (" + flush denormals" if flush_denormal else "")
        cutoff = spec.cutoff(config)
        z_table = tools.AtomicNumberTable([int(z) for z in stats.species])
        keys = mace_data.KeySpecification(info_keys={"energy": "REF_energy"}, arrays_keys={"forces": "REF_forces"})
        self.data = []
        for i in range(ds.n_configs):
            sl = ds.atoms_of(i)
            periodic = bool(np.asarray(ds.pbc[i]).any())
            atoms = ase.Atoms(
                numbers=ds.numbers[sl],
                positions=ds.positions[sl],
                cell=ds.cell[i] if periodic else None,
                pbc=ds.pbc[i],
            )
            atoms.info["REF_energy"] = float(ds.energy[i])
            atoms.arrays["REF_forces"] = np.asarray(ds.forces[sl], dtype=np.float64)
            configuration = mace_data.config_from_atoms(atoms, key_specification=keys)
            self.data.append(mace_data.AtomicData.from_config(configuration, z_table=z_table, cutoff=cutoff))
        self.model = _mace_module(spec, config, stats).to(device=self.device, dtype=torch.float32)
        with torch.no_grad():  # E0s: mace fits them to the training set; here the framework's reference energies
            e0 = self.model.atomic_energies_fn.atomic_energies
            e0.copy_(torch.as_tensor(np.asarray(stats.reference_energies), dtype=e0.dtype).reshape(e0.shape))
        self.model.train()
        self.loss_fn = modules.WeightedEnergyForcesLoss(
            energy_weight=train_config.energy_weight, forces_weight=train_config.force_weight
        ).to(self.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=train_config.lr[1])
        self.output_args = {"energy": True, "forces": True, "virials": False, "stress": False}
        self.batch_size = train_config.batch_size
        self.graph = f"mace-torch get_neighborhood (matscipy) once, every pair < {cutoff:g} Å (PBC where periodic)"
        n_edges = sum(int(d.edge_index.shape[1]) for d in self.data)
        self.edges_per_atom = float(n_edges / ds.n_atoms.sum())

    def epoch(self, indices, rng) -> float:
        torch = self.torch
        generator = torch.Generator().manual_seed(int(rng.integers(2**31)))
        loader = self.DataLoader(
            [self.data[int(i)] for i in indices],
            batch_size=self.batch_size,
            shuffle=True,
            drop_last=True,
            generator=generator,
        )
        t0 = time.perf_counter()
        losses, n = [], 0
        for batch in loader:  # collation is part of mace's step, as in its train_one_epoch
            _, metrics = self.take_step(
                model=self.model,
                loss_fn=self.loss_fn,
                batch=batch,
                optimizer=self.optimizer,
                ema=None,
                output_args=self.output_args,
                max_grad_norm=None,
                device=self.device,
            )
            losses.append(float(metrics["loss"]))  # take_step's host copy of the loss
            n += int(batch.num_graphs)
        seconds = time.perf_counter() - t0
        assert all(np.isfinite(losses)), losses
        return n / seconds

    def n_params(self) -> int:
        return int(sum(p.numel() for p in self.model.parameters()))

    def model_class(self) -> str:
        return _qualname(self.model)

    def device_name(self) -> str:
        torch = self.torch
        if self.device.type == "cuda":
            return f"cuda: {torch.cuda.get_device_name(self.device)}"
        return f"cpu: {platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"

    def inference(self, indices, n: int):
        from mace.tools.torch_geometric.batch import Batch

        from mlffbench.speed import timing

        torch = self.torch
        idx = [int(i) for i in np.asarray(indices)[:n]]
        batch = Batch.from_data_list([self.data[i] for i in idx]).to(self.device)
        data = batch.to_dict()
        self.model.eval()

        def run():
            out = self.model(data, training=False, compute_force=True)
            return out["forces"].detach()

        def sync(_):
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)

        atoms = float(sum(int(self.data[i].num_nodes) for i in idx))
        return timing.Workload(f"{self.label}, batch {len(idx)}", run, sync, configs=float(len(idx)), atoms=atoms)


# ------------------------------------------------------------------ workers
class MaceWorker(WorkerVariant):
    """A worker variant that also answers ``info`` and times inference calls on request."""

    def ask(self, command: str) -> dict:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._read()


def _timed(workload) -> tuple[float, int]:
    """One call of ``workload`` between two clock reads, the device synchronised (as
    ``mlffbench.speed.timing`` times a call); and the compilations it caused."""
    before = workload.compilations()
    t0 = time.perf_counter()
    workload.sync(workload.run())
    return time.perf_counter() - t0, workload.compilations() - before


def _serve(args) -> int:
    """Worker process: build one variant; then, per line read, an epoch (a seed), its
    description (``info``), the inference warm-up (``infer-warm``) or one timed inference call
    (``infer``). The first and the epoch answers are those of ``workers.serve``."""
    proto = channel()
    from mlffbench.speed import runtime

    runtime.set_xla_flags()  # the CPU flags of the mlffbench commands, before jax is imported
    from mlffbench.data.loading import load_dataset
    from mlffbench.data.stats import compute_stats
    from mlffbench.graph.neighbors import compute_neighbors
    from mlffbench.speed import timing

    spec, card, config, train_config = _configs(args)
    ds = load_dataset(args.dataset, data_dir=args.data_dir, download=False)
    ds = ds.select(np.arange(min(args.configs, ds.n_configs)))
    indices = np.arange(ds.n_configs)
    if args.worker == "mace-jax":
        from mlffbench.plugin.manager import get_registry
        from mlffbench.training.config import from_dict

        jax_spec = get_registry().model("mace-jax")
        values, _ = _jax_values(config, jax_spec, card.family, _values(args.jax_param))
        jax_config = from_dict(jax_spec.config_class, values, "mace-jax model")
        variant = OursJaxMace("mlffbench MACE-JAX (mlip)", jax_spec, jax_config, train_config, ds, indices)
        model_config = jax_config
    else:
        import torch

        neighbors = compute_neighbors(ds, spec.cutoff(config))
        stats = compute_stats(ds, indices, neighbors)
        if args.worker == "ours":
            variant = OursTorch(spec, config, train_config, ds, stats, neighbors)
        else:
            variant = MaceTorch(spec, config, train_config, ds, stats, flush_denormal=runtime.allocator() != "system")
        torch.set_flush_denormal(variant.flush_denormal)
        model_config = config
    if hasattr(variant, "ensure_state"):
        variant.ensure_state(indices)
    workload = None
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
        command = line.strip()
        if command == "info":
            answer = {
                "n_params": variant.n_params(),
                "model_config": {k: getattr(model_config, k) for k in model_config.__dataclass_fields__},
                "model_class": variant.model_class(),
                "device": variant.device_name(),
                "host_allocator": runtime.allocator(),
            }
        elif command == "infer-warm":
            n = args.infer_configs or train_config.eval_batch_size
            workload = variant.inference(indices, max(1, min(n, len(indices))))
            warm, compiled = [], 0
            while len(warm) < 1 or (sum(warm) < 1.0 and len(warm) < timing.MAX_WARMUP_CALLS):
                seconds, c = _timed(workload)
                warm.append(seconds)
                compiled += c
            answer = {
                "label": workload.label,
                "warmup_s": warm,
                "warmup_compilations": compiled,
                "configs": workload.configs,
                "atoms": workload.atoms,
            }
        elif command == "infer":
            seconds, compiled = _timed(workload)
            answer = {"seconds": seconds, "compilations": compiled}
        else:
            answer = {"rate": variant.epoch(indices, np.random.default_rng(int(command)))}
        proto.write(json.dumps(answer, default=str) + "\n")
        proto.flush()
    return 0


def _inference(variants, repeats: int) -> list[dict]:
    """Inference timings of the workers, call by call in turn (``timing.measure_interleaved``'s
    protocol across processes), summarised by ``mlffbench.speed.timing.Timing``."""
    from mlffbench.speed.timing import Timing

    warm = [v.ask("infer-warm") for v in variants]
    samples = [[] for _ in variants]
    recompiles = [0] * len(variants)
    for _ in range(repeats):
        for k, v in enumerate(variants):
            answer = v.ask("infer")
            samples[k].append(answer["seconds"])
            recompiles[k] += answer["compilations"]
    out = []
    for k, v in enumerate(variants):
        w = warm[k]
        t = Timing(
            v.label, samples[k], w["warmup_s"], w["warmup_compilations"], recompiles[k], w["configs"], w["atoms"]
        )
        out.append({"variant": v.label, "workload": w["label"], **t.to_dict()})
    return out


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.worker:
        return _serve(args)
    from mlffbench import __version__
    from mlffbench.speed import runtime

    runtime.set_xla_flags()  # recorded in the machine fingerprint; every worker sets them too
    _, card, config, train_config = _configs(args)
    variants = [MaceWorker(__file__, argv, "ours", tuned_allocator=True)]
    try:
        if not args.no_mace_torch:
            variants.append(MaceWorker(__file__, argv, "mace-torch", tuned_allocator=False))
            if args.mace_torch_tuned:
                variants.append(MaceWorker(__file__, argv, "mace-torch", tuned_allocator=True))
        if not args.no_mace_jax:
            variants.append(MaceWorker(__file__, argv, "mace-jax", tuned_allocator=True))
        infos = [v.ask("info") for v in variants]
        indices = np.arange(variants[0].configs)
        load_before = os.getloadavg()
        results = interleave(variants, indices, args.epochs, args.seed)
        inference = [] if args.no_inference else _inference([v for v in variants], args.infer_repeats)
        load_after = os.getloadavg()
    finally:
        for v in variants:
            v.close()
    for result, variant, info in zip(results, variants, infos, strict=True):
        result["host_allocator"] = variant.allocator
        result.update({k: info[k] for k in ("n_params", "model_class", "device")})
    by_worker = {}
    for name, result in zip(_worker_names(args), results, strict=True):
        by_worker.setdefault(name, result)
    rate = {k: r["configs_per_s_median"] for k, r in by_worker.items()}
    us = {}
    for name, t in zip(_worker_names(args), inference, strict=False):
        us.setdefault(name, t["us_per_atom_step"])

    def ratio(a, b, table):
        return table[a] / table[b] if a in table and b in table and table[b] > 0 else None

    jax_values = next((i["model_config"] for n, i in zip(_worker_names(args), infos) if n == "mace-jax"), None)
    record = {
        "benchmark": "mace_throughput",
        "dataset": args.dataset,
        "configurations_per_epoch": int(len(indices) // train_config.batch_size * train_config.batch_size),
        "timed_epochs": args.epochs,
        "batch_size": train_config.batch_size,
        "dtype": "float32",
        "optimizer": f"Adam, lr {train_config.lr[1]:g} (constant)",
        "loss": f"MSE: forces (weight {train_config.force_weight:g}, second-order autograd) "
        f"+ per-atom energy (weight {train_config.energy_weight:g})",
        "model_config": {k: getattr(config, k) for k in config.__dataclass_fields__},
        "mace_jax_model_config": jax_values,
        "mace_jax_unmatched_settings": _unmatched(config, card) if not args.no_mace_jax else None,
        "results": results,
        "ratio_ours_to_mace_torch": ratio("ours", "mace-torch", rate),
        "ratio_mace_jax_to_ours": ratio("mace-jax", "ours", rate),
        "inference": inference,
        "inference_us_per_atom_step": us,
        "inference_ratio_mace_jax_to_ours": ratio("ours", "mace-jax", us),  # time ratio inverted: speed ratio
        "machine": {**machine(load_before, load_after), "torch_threads": _torch_threads()},
        "versions": {
            "mlffbench": __version__,
            **{d: _version(d) for d in ("torch", "mace-torch", "e3nn", "jax", "mlip", "e3nn-jax")},
            "python": platform.python_version(),
        },
    }
    print(
        f"\nMACE training throughput on {args.dataset} ({record['configurations_per_epoch']} configurations/epoch, "
        f"batch {train_config.batch_size}, float32, Adam lr {train_config.lr[1]:g}, median of {args.epochs} epochs; "
        f"load average {load_before[0]:.2f} → {load_after[0]:.2f})"
    )
    print_table(results)
    for r in results:
        print(f"  {r['variant']}: {r['n_params']} parameters ({r['model_class']}, {r['device']})")
    if record["ratio_ours_to_mace_torch"] is not None:
        print(f"ours / mace-torch: {record['ratio_ours_to_mace_torch']:.2f}x")
    if record["ratio_mace_jax_to_ours"] is not None:
        print(f"mace-jax / ours: {record['ratio_mace_jax_to_ours']:.2f}x")
    if inference:
        print("\ninference (energy + forces), median of per-call times:")
        for t in inference:
            print(f"  {t['workload']:<52} {t['us_per_atom_step']:9.2f} µs/atom/step  (IQR {1e3 * t['iqr_s']:.2f} ms)")
        if record["inference_ratio_mace_jax_to_ours"] is not None:
            print(f"mace-jax speed / ours: {record['inference_ratio_mace_jax_to_ours']:.2f}x")
    if record["mace_jax_unmatched_settings"]:
        print(f"MACE settings without a mace-jax counterpart: {', '.join(record['mace_jax_unmatched_settings'])}")
    write_results(args.out, record)
    return 0


def _worker_names(args) -> list[str]:
    """The worker kind of each variant, in the order ``main`` starts them."""
    names = ["ours"]
    if not args.no_mace_torch:
        names += ["mace-torch"] * (2 if args.mace_torch_tuned else 1)
    if not args.no_mace_jax:
        names.append("mace-jax")
    return names


def _unmatched(config, card) -> list[str]:
    from mlffbench.plugin.manager import get_registry

    return _jax_values(config, get_registry().model("mace-jax"), card.family, {})[1]


def _torch_threads() -> int | None:
    try:
        import torch
    except ImportError:
        return None
    return torch.get_num_threads()


def _version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


if __name__ == "__main__":
    sys.exit(main())
