"""The PyTorch backend: eager train step, evaluation, state serialisation.

It mirrors :mod:`mlffbench.backends.jax.trainer`: the same loss (forces by autograd with
``create_graph`` inside the parameter gradient), the same optimizers (optax arithmetic, see
:mod:`.optim`), the LR passed by the loop per step, the same output calibration. A state is
immutable: parameters (a name → tensor mapping used through ``torch.func.functional_call``),
optimizer moments, the step count and the state of the random generator the model's own
randomness (e.g. dropout) draws from inside a step, so a resumed run repeats an uninterrupted
one exactly. Eager PyTorch compiles nothing: ``compile_count`` and ``compile_seconds`` stay 0.

Device: ``$MLFFBENCH_TORCH_DEVICE`` (e.g. ``cpu``, ``cuda``, ``cuda:1``), else CUDA when
available, else CPU. Precision: ``TrainConfig.dtype``.

Subnormal floats (e.g. from the tails of Gaussian radial features and their gradients) make x86
arithmetic many times slower; flushing them to zero changes results by less than 1e-38 (float32)
per value. On the CPU the backend's own work (``init``, ``train_step``, ``evaluate`` and so every
prediction, the timed ``inference_fn``) runs with ``torch.set_flush_denormal(True)``, set on entry
and restored on exit (:func:`flushed_denormals`). It is scoped rather than made a setting of the
process (:func:`mlffbench.speed.runtime.prepare_process`) because it belongs to the computation,
not to the command: every command and every caller of the API that computes through the backend
(``run``, ``bench``, ``compare``, ``tune``, and as well ``evaluate``, ``check``, ``md``, the ASE
calculator) gets the speed, nobody else's arithmetic in the process changes (a test session, a
script that also uses torch or NumPy), and the step that sets the process up runs before torch is
imported, which JAX-only commands never do. Building a model leaves the setting as it was
(:func:`mlffbench.plugin.isolation.kept_process_state`). The flag is a register of the calling
thread; threads that torch starts inside the scope (its intra-op pool, on the first parallel
operation) start with the calling thread's setting, as they did when the backend set it for good.
"""

from __future__ import annotations

import functools
import io
import os
import platform
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

import numpy as np
import torch

from mlffbench.backends.base import Backend, Outputs
from mlffbench.backends.torch.losses import pointwise
from mlffbench.backends.torch.optim import Optimizer, OptState
from mlffbench.backends.torch.potential import Batch, Potential, to_device
from mlffbench.errors import ConfigError, RunError
from mlffbench.plugin.isolation import flushes_denormals
from mlffbench.training.config import TrainConfig

DEVICE_ENV = "MLFFBENCH_TORCH_DEVICE"


class TorchState(NamedTuple):
    params: dict[str, torch.Tensor]
    opt: OptState
    step: int
    rng: torch.Tensor  # CPU generator state (uint8), see rng_scope


def select_device(name: str | None = None) -> torch.device:
    """``name``, else ``$MLFFBENCH_TORCH_DEVICE``, else CUDA when available, else CPU."""
    name = (name or os.environ.get(DEVICE_ENV, "")).strip()
    if not name:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ConfigError(f"{DEVICE_ENV}: unknown torch device '{name}' (e.g. cpu, cuda, cuda:0)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"{DEVICE_ENV}={name}: CUDA is not available to this torch build / machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"{DEVICE_ENV}={name}: only {torch.cuda.device_count()} CUDA device(s) present")
    elif device.type != "cpu":
        raise ConfigError(f"{DEVICE_ENV}={name}: only cpu and cuda devices are supported")
    return device


@contextmanager
def rng_scope(state: torch.Tensor, device: torch.device):
    """Run the body with the global RNG set from ``state``; yields a holder of the state after.

    The CUDA generator (if used) is seeded from the CPU one, so the CPU state alone
    determines a step's randomness. The caller's global RNG is restored afterwards.
    """
    devices = [device] if device.type == "cuda" else []
    after: list[torch.Tensor] = []
    with torch.random.fork_rng(devices=devices):
        torch.set_rng_state(state)
        if devices:
            torch.cuda.manual_seed(int(torch.randint(0, 2**62, (1,)).item()))
        yield after
        after.append(torch.get_rng_state())


@contextmanager
def flushed_denormals(device: torch.device) -> Iterator[None]:
    """The body with subnormal floats flushed to zero on a CPU (``torch.set_flush_denormal``),
    the previous setting restored afterwards; nothing changes on a GPU, where it is set already,
    or on a CPU that cannot flush."""
    if device.type != "cpu" or flushes_denormals() or not torch.set_flush_denormal(True):
        yield
        return
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def _flushing(method):
    """Run a backend method with subnormals flushed on the CPU (:func:`flushed_denormals`)."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with flushed_denormals(self.device):
            return method(self, *args, **kwargs)

    return wrapper


def _initial_rng(seed: int) -> torch.Tensor:
    return torch.Generator().manual_seed(int(seed) + 1).get_state()


def _reset_parameters(module: torch.nn.Module) -> None:
    """The module's own initialisation (its ``reset_parameters``, else its children's)."""
    reset = getattr(module, "reset_parameters", None)
    if callable(reset):
        reset()
        return
    for child in module.children():
        _reset_parameters(child)


class TorchBackend(Backend[TorchState]):
    name = "torch"
    potential: Potential

    def __init__(
        self, potential: Potential, train_config: TrainConfig, force_rms: float = 1.0, device: str | None = None
    ) -> None:
        if not isinstance(potential, Potential):
            raise ConfigError(
                f"the torch backend needs a mlffbench.backends.torch.potential.Potential, got {type(potential).__name__}"
            )
        super().__init__(potential, train_config, force_rms)
        self.dtype = torch.float64 if train_config.dtype == "float64" else torch.float32
        self.device = select_device(device)
        self.optimizer = Optimizer(train_config)

    # ------------------------------------------------------------------ state
    def to_device(self, batch) -> Batch:
        return to_device(batch, self.dtype, self.device)

    def _params_of_module(self) -> dict[str, torch.Tensor]:
        return {
            name: p.detach().to(device=self.device, dtype=self.dtype).clone().requires_grad_(True)
            for name, p in self.potential.module.named_parameters()
        }

    def device_batch(self, batch) -> Batch:
        return self.to_device(batch)

    def state_of(self, params: Any) -> TorchState:
        """A state of ``params`` (a name → tensor mapping, e.g. a module's ``named_parameters``),
        detached and in the backend's dtype and device (tensors already so share their storage)."""
        tensors = {
            k: v.detach().to(device=self.device, dtype=self.dtype).requires_grad_(True) for k, v in params.items()
        }
        return TorchState(tensors, self.optimizer.init(tensors), 0, _initial_rng(0))

    @_flushing
    def init(self, seed: int, example) -> TorchState:
        module = self.potential.module
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            # initialise on the CPU in float32: the same parameters on every device and in every dtype
            module.to(device="cpu", dtype=torch.float32)
            _reset_parameters(module)
        module.to(device=self.device, dtype=self.dtype)
        params = self._params_of_module()
        self.potential.output_scale = 1.0
        if self.config.calibrate_output and self.force_rms > 0:
            module.eval()
            batch = self.to_device(example)
            _, forces = self.potential.energy_and_forces(_detached(params), batch)
            n_real = max(int(batch.atom_mask.sum()), 1)
            spread = float(torch.sqrt(torch.sum(forces.double() ** 2) / (3.0 * n_real)))
            if spread > 0 and np.isfinite(spread):
                self.potential.output_scale = self.force_rms / spread
        return TorchState(params, self.optimizer.init(params), 0, _initial_rng(seed))

    def with_params(self, state: TorchState, params: Any) -> TorchState:
        """Imported weights (a name → tensor/array mapping) are used as published: no calibration."""
        self.potential.output_scale = 1.0
        names = set(state.params)
        given = set(params)
        if given != names:
            missing, extra = sorted(names - given), sorted(given - names)
            raise ConfigError(
                f"imported weights do not fit the model (missing: {missing[:3]}, unexpected: {extra[:3]})"
            )
        new = {}
        for name, old in state.params.items():
            value = torch.as_tensor(np.asarray(params[name]) if not torch.is_tensor(params[name]) else params[name])
            if tuple(value.shape) != tuple(old.shape):
                raise ConfigError(
                    f"imported weight '{name}' has shape {tuple(value.shape)}, the model needs {tuple(old.shape)}"
                )
            new[name] = value.detach().to(device=self.device, dtype=self.dtype).clone().requires_grad_(True)
        return TorchState(new, self.optimizer.init(new), state.step, state.rng)

    def n_params(self, state: TorchState) -> int:
        return int(sum(p.numel() for p in state.params.values()))

    def state_to_bytes(self, state: TorchState) -> bytes:
        cpu = {k: v.detach().cpu() for k, v in state.params.items()}
        blob = {
            "format": "mlffbench-torch-state-1",
            "params": cpu,
            "opt": {"count": state.opt.count, "mu": _cpu(state.opt.mu), "nu": _cpu(state.opt.nu)},
            "step": int(state.step),
            "rng": state.rng.clone(),
            "output_scale": float(self.potential.output_scale),
        }
        buf = io.BytesIO()
        torch.save(blob, buf)
        return buf.getvalue()

    @staticmethod
    def _blob(data: bytes) -> dict:
        try:
            blob = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unreadable blob is one user-facing error
            raise RunError(f"checkpoint state is not a torch backend state ({type(exc).__name__})") from None
        if not isinstance(blob, dict) or blob.get("format") != "mlffbench-torch-state-1":
            raise RunError("checkpoint state is not a torch backend state (written by another backend?)")
        return blob

    def saved_output_scale(self, data: bytes) -> float | None:
        return float(self._blob(data)["output_scale"])

    def state_from_bytes(self, template: TorchState, data: bytes) -> TorchState:
        blob = self._blob(data)
        params = blob["params"]
        if set(params) != set(template.params) or any(
            tuple(params[k].shape) != tuple(v.shape) for k, v in template.params.items()
        ):
            raise RunError("checkpoint state does not fit the model (other model configuration?)")

        def dev(t, grad=False):
            t = t.to(device=self.device, dtype=self.dtype)
            return t.requires_grad_(True) if grad else t

        self.potential.output_scale = float(blob["output_scale"])
        opt = blob["opt"]
        return TorchState(
            {k: dev(params[k], grad=True) for k in template.params},
            OptState(
                int(opt["count"]), {k: dev(v) for k, v in opt["mu"].items()}, {k: dev(v) for k, v in opt["nu"].items()}
            ),
            int(blob["step"]),
            blob["rng"].to(torch.uint8),
        )

    # ------------------------------------------------------------------ steps
    def _loss(self, params, batch: Batch, targets=None) -> torch.Tensor:
        """The batch loss (see :meth:`mlffbench.backends.jax.trainer.JaxBackend._loss_sum`);
        ``targets``: (reference stress (G, 3, 3), stress mask (G,)) when ``stress_weight`` > 0."""
        cfg = self.config
        graphs = batch.graph_mask.to(batch.positions.dtype)
        n_real = torch.clamp(graphs.sum(), min=1.0)
        stress = None
        if cfg.stress_weight > 0 and targets is not None:
            energies, forces, stress = self.potential.energy_forces_stress(params, batch, create_graph=True)
            if cfg.force_weight <= 0:
                forces = None
        elif cfg.force_weight > 0:
            energies, forces = self.potential.energy_and_forces(params, batch, create_graph=True)
        else:
            energies, forces = self.potential.energy(params, batch), None
        total = torch.zeros((), dtype=batch.positions.dtype, device=batch.positions.device)
        if forces is not None:
            per_comp = pointwise(cfg.loss, batch.forces - forces, cfg.log_cosh_p)
            per_atom = per_comp.sum(dim=1) * batch.atom_mask
            per_graph = torch.zeros_like(graphs).index_add(0, batch.graph_index, per_atom) / (3.0 * batch.n_atoms)
            total = total + cfg.force_weight * (per_graph * graphs).sum() / n_real
        if cfg.energy_weight > 0:
            de = (batch.energy - energies) / batch.n_atoms
            total = total + cfg.energy_weight * (pointwise(cfg.loss, de, cfg.energy_log_cosh_p) * graphs).sum() / n_real
        if stress is not None:
            ref, mask = targets
            volume = torch.linalg.det(batch.cell).abs()
            dv = (ref - stress) * (volume / batch.n_atoms)[:, None, None]
            per_graph = pointwise(cfg.loss, dv, cfg.energy_log_cosh_p).reshape(dv.shape[0], 9).mean(dim=1)
            total = (
                total + cfg.stress_weight * (per_graph * (mask & batch.graph_mask).to(per_graph.dtype)).sum() / n_real
            )
        return total

    def _stress_targets(self, batch):
        if self.config.stress_weight <= 0:
            return None
        return (
            torch.as_tensor(np.asarray(batch.stress), dtype=self.dtype, device=self.device),
            torch.as_tensor(np.asarray(batch.stress_mask), dtype=torch.bool, device=self.device),
        )

    @_flushing
    def train_step(self, state: TorchState, batch, lr: float):
        dev = self.to_device(batch)
        names = list(state.params)
        self.potential.module.train()
        with rng_scope(state.rng, self.device) as rng_after:
            loss = self._loss(state.params, dev, self._stress_targets(batch))
            raw_grads = torch.autograd.grad(loss, [state.params[k] for k in names], allow_unused=True)
        grads = {
            k: (torch.zeros_like(state.params[k]) if g is None else g) for k, g in zip(names, raw_grads, strict=True)
        }
        params, opt = self.optimizer.step(state.params, grads, state.opt, float(lr))
        return TorchState(params, opt, state.step + 1, rng_after[0]), loss.detach()

    def loss_value(self, loss) -> float:
        return float(loss)

    @_flushing
    def evaluate(self, state: TorchState, batch, *, forces=True, stress=False, atomic=False):
        dev = batch if isinstance(batch, Batch) else self.to_device(batch)
        self.potential.module.eval()
        out = self.potential.evaluate(_detached(state.params), dev, forces=forces, stress=stress, atomic=atomic)
        return Outputs(*(None if v is None else v.cpu().numpy().astype(np.float64) for v in out))

    def predict(self, state: TorchState, batch):
        out = self.evaluate(state, batch)
        return out.energy, out.forces

    def predict_with_stress(self, state: TorchState, batch):
        out = self.evaluate(state, batch, stress=True)
        return out.energy, out.forces, out.stress

    def add_energy_offsets(self, offsets) -> None:
        self.potential.add_energy_offsets(offsets)

    # ----------------------------------------------------------------- timing
    def sync(self, value) -> None:
        """Eager PyTorch queues CUDA kernels: wait for the device (nothing to wait for on a CPU)."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def inference_fn(self, state: TorchState, batch):
        dev = self.to_device(batch)
        params = _detached(state.params)
        self.potential.module.eval()

        def run():
            with flushed_denormals(self.device):
                return self.potential.evaluate(params, dev)

        return run

    def peak_device_memory(self) -> int | None:
        if self.device.type != "cuda":
            return None
        return int(torch.cuda.max_memory_allocated(self.device))

    def reset_peak_device_memory(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)

    # ------------------------------------------------------------ environment
    def environment(self) -> dict[str, str]:
        if self.device.type == "cuda":
            device = f"cuda: {torch.cuda.get_device_name(self.device)}"
        else:
            device = f"cpu: {platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"
        env = {"backend": "torch", "device": device, "torch": torch.__version__}
        try:
            import torch_geometric

            env["torch_geometric"] = torch_geometric.__version__
        except ImportError:
            pass
        return env


def _detached(params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach() for k, v in params.items()}


def _cpu(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in tensors.items()}
