"""Closed-form least squares for a JAX potential that is affine in its parameters.

For parameters θ (the module's parameters, flattened) the predictions of one batch are
p(θ) = p(0) + J θ, J the Jacobian of [energies; forces; stress] with respect to θ (by
``jax.jvp`` of the framework's own energy/forces/stress functions, one tangent per
parameter, ``chunk`` tangents at a time: no hand-written derivative). Each row carries the
square root of the weight the training loss gives it (:meth:`JaxBackend._loss_sum`, squared
errors): energy rows √w_E · E/N, force rows √(w_F / 3N) · F, stress rows √(w_S / 9) · σV/N, so
that the fit minimises Σ_configs of the loss with ℓ(x) = x². Per batch the normal equations
JᵀJ and Jᵀ(y − p(0)) are added to float64 accumulators (P² + P numbers): the whole design
matrix is never held, only one batch's block of rows. J comes from JVPs along the
parameters or along positions and strains, whichever needs fewer (:class:`JacobianRows`).
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from mlffbench.backends.jax.precision import float64_scope
from mlffbench.backends.jax.trainer import JaxBackend, TrainState, stress_targets, to_device
from mlffbench.errors import RunError


@dataclass
class NormalEquations:
    """Σ JᵀJ, Σ Jᵀr and Σ rᵀr (r = y − p(0)) over the rows added so far, in float64."""

    n_params: int
    ata: np.ndarray = field(init=False)
    atb: np.ndarray = field(init=False)
    btb: float = 0.0
    rows: int = 0  # weighted rows with a non-zero weight
    configs: int = 0
    block_bytes: int = 0  # the largest block of rows held at once (its float64 copy)

    def __post_init__(self) -> None:
        self.ata = np.zeros((self.n_params, self.n_params))
        self.atb = np.zeros(self.n_params)

    def add(self, jac: np.ndarray, residual: np.ndarray, n_configs: int) -> None:
        jac = np.asarray(jac, np.float64)
        residual = np.asarray(residual, np.float64)
        self.ata += jac.T @ jac
        self.atb += jac.T @ residual
        self.btb += float(residual @ residual)
        self.rows += int(np.count_nonzero(np.any(jac != 0, axis=1) | (residual != 0)))
        self.configs += int(n_configs)
        self.block_bytes = max(self.block_bytes, jac.nbytes + residual.nbytes)

    @property
    def accumulator_bytes(self) -> int:
        return int(self.ata.nbytes + self.atb.nbytes)

    def solve(self, ridge: float) -> tuple[np.ndarray, dict[str, Any]]:
        """θ minimising ‖Jθ − r‖² + ridge · Σ_k diag(JᵀJ)_k θ_k² (a ridge relative to each
        column's scale: λ is dimensionless). Columns that no row touches get θ = 0.

        Solved on the Jacobi-scaled system S(JᵀJ)S + λI (S = diag(JᵀJ)^{-1/2}) by Cholesky;
        where that fails (λ = 0 and a singular system) by least squares (minimum norm)."""
        d = np.diag(self.ata).copy()
        used = d > 0
        theta = np.zeros(self.n_params)
        info: dict[str, Any] = {"ridge": float(ridge), "unused_params": int((~used).sum())}
        if not used.any():
            raise RunError("the fit's design matrix is zero: no training row depends on the parameters")
        s = 1.0 / np.sqrt(d[used])
        a = self.ata[np.ix_(used, used)] * s[:, None] * s[None, :]
        b = self.atb[used] * s
        a[np.diag_indices_from(a)] += ridge
        exact = a.shape[0] <= 2000  # eigenvalues cost a few Cholesky factorisations: only for small systems
        if exact:
            eig = np.linalg.eigvalsh(a)
            info["condition"] = float(eig[-1] / eig[0]) if eig[0] > 0 else float("inf")
        try:
            chol = np.linalg.cholesky(a)
            if not exact:  # (max/min diagonal of the factor)²: a lower bound of the condition number
                diag = np.abs(np.diag(chol))
                info["condition"] = float((diag.max() / diag.min()) ** 2)
            z = np.linalg.solve(chol, b)
            x = np.linalg.solve(chol.T, z)
            info["solver"] = "cholesky"
        except np.linalg.LinAlgError:
            x = np.linalg.lstsq(a, b, rcond=None)[0]
            info["solver"] = "lstsq"
            info.setdefault("condition", float("inf"))
        theta[used] = x * s
        if not np.all(np.isfinite(theta)):
            raise RunError("the least-squares fit gave non-finite parameters (raise the ridge)")
        # the weighted squared error at θ (the loss the fit minimised, without the ridge)
        info["objective"] = float(self.btb - 2.0 * theta @ self.atb + theta @ self.ata @ theta)
        return theta, info


MODES = ("auto", "params", "positions")
# compiled Jacobian blocks, shared by models that differ only in their parameters (see _key)
_COMPILED: dict[tuple, Any] = {}


class JacobianRows:
    """Per batch shape, the compiled (p(0) rows, J) of a backend's potential.

    Two ways to the same J (``mode``; "auto" takes the one with fewer tangents):

    * ``"params"``: one JVP of the weighted predictions per parameter (P tangents, each
      through the forces' backward pass);
    * ``"positions"``: g(r, ε) = ∂E_g/∂θ (one reverse pass per graph, through the affine
      map only) and its JVPs along every position and strain component (3N + 9G tangents):
      force rows −∂(Σ_g g_g)/∂r, stress rows (1/V) ∂g_g/∂ε_g, energy rows g itself. For an
      affine model ∂E/∂θ does not depend on θ, so this is J.
    """

    def __init__(self, backend: JaxBackend, params: Any, chunk: int = 8, mode: str = "auto", use=(True, True)) -> None:
        if mode not in MODES:
            raise RunError(f"unknown Jacobian mode '{mode}' (known: {', '.join(MODES)})")
        self.backend = backend
        self.flat0, self.unravel = ravel_pytree(params)
        self.n_params = int(self.flat0.size)
        self.chunk = max(1, int(chunk))
        self.mode = mode
        self.use_energy, self.use_forces = bool(use[0]), bool(use[1])  # the data has them
        self.modes_used: set[str] = set()
        self._compiled: dict[Any, Any] = {}
        self.compile_seconds = 0.0

    def _weights(self, batch, targets, dtype):
        """Square roots of the loss weights: energy (G,), force (N,), stress (G,) (None: not fitted)."""
        cfg = self.backend.config
        n = batch.n_atoms.astype(dtype)
        graphs = batch.graph_mask.astype(dtype)
        w_e = jnp.sqrt(cfg.energy_weight) * graphs / n if cfg.energy_weight > 0 and self.use_energy else None
        w_f = None
        if cfg.force_weight > 0 and self.use_forces:
            w_f = jnp.sqrt(cfg.force_weight / (3.0 * n))[batch.graph_index] * batch.atom_mask.astype(dtype)
        w_s = None
        if cfg.stress_weight > 0 and targets is not None:
            volume = jnp.abs(jnp.linalg.det(batch.cell))
            w_s = jnp.sqrt(cfg.stress_weight / 9.0) * volume / n * (targets[1] & batch.graph_mask).astype(dtype)
        return w_e, w_f, w_s

    @staticmethod
    def _stack(weights, energies, forces, stress):
        """Weighted rows [E (G); F (3N); σ (9G)] (each array with any trailing axes)."""
        w_e, w_f, w_s = weights

        def expand(w, x):
            return w.reshape(w.shape + (1,) * (x.ndim - w.ndim)) * x

        rows = []
        if w_e is not None:
            rows.append(expand(w_e, energies))
        if w_f is not None:
            rows.append(expand(w_f, forces).reshape((-1,) + forces.shape[2:]))
        if w_s is not None:
            rows.append(expand(w_s, stress).reshape((-1,) + stress.shape[3:]))
        return jnp.concatenate(rows, axis=0)

    def _rows(self, theta, batch, targets):
        """(weighted predictions, weighted references) of one batch: rows as in the module doc."""
        potential = self.backend.potential
        params = self.unravel(theta)
        stress_on = self.backend.config.stress_weight > 0 and targets is not None
        if stress_on:
            energies, forces, stress = potential.energy_forces_stress(params, batch)
        else:
            (energies, forces), stress = potential.energy_and_forces(params, batch), None
        dtype = energies.dtype
        weights = self._weights(batch, targets, dtype)
        ref_stress = targets[0].astype(dtype) if stress_on else None
        pred = self._stack(weights, energies, forces, stress)
        ref = self._stack(weights, batch.energy.astype(dtype), batch.forces.astype(dtype), ref_stress)
        return pred, ref

    def _jac_params(self, theta0, batch, targets):
        """Jᵀ (P, R) by one JVP per parameter, ``chunk`` at a time."""
        size = min(self.chunk, self.n_params)
        padded = -(-self.n_params // size) * size  # whole chunks only; extra tangents are 0
        eye = jnp.eye(padded, self.n_params, dtype=theta0.dtype)

        def column(tangent):
            return jax.jvp(lambda t: self._rows(t, batch, targets)[0], (theta0,), (tangent,))[1]

        return jax.lax.map(column, eye, batch_size=size)[: self.n_params]

    def _jac_positions(self, theta0, batch, targets):
        """Jᵀ (P, R) from the JVPs of ∂E_g/∂θ along positions and strains."""
        potential = self.backend.potential
        n_graphs, n_atoms = batch.cell.shape[0], batch.positions.shape[0]
        stress_on = self.backend.config.stress_weight > 0 and targets is not None
        dtype = theta0.dtype

        def design(pos, strain):  # (G, P): ∂E_g/∂θ at the strained configuration
            sym = 0.5 * (strain + jnp.swapaxes(strain, 1, 2))
            deform = jnp.eye(3, dtype=strain.dtype)[None] + sym
            strained = jnp.einsum("ni,nij->nj", pos, deform[batch.graph_index])
            cell = jnp.einsum("gki,gij->gkj", batch.cell, deform)
            return jax.jacrev(lambda t: potential.energy(self.unravel(t), batch, positions=strained, cell=cell))(theta0)

        strain0 = jnp.zeros((n_graphs, 3, 3), dtype)
        g0 = design(batch.positions, strain0)
        n_pos = 3 * n_atoms
        n_tan = n_pos + (9 * n_graphs if stress_on else 0)

        def tangent_column(k):
            on_pos = jnp.where(k < n_pos, 1.0, 0.0)
            dpos = jnp.zeros(n_pos, dtype).at[jnp.clip(k, 0, n_pos - 1)].set(on_pos).reshape(n_atoms, 3)
            ks = jnp.clip(k - n_pos, 0, 9 * n_graphs - 1)
            on_strain = jnp.where((k >= n_pos) & (k < n_tan), 1.0, 0.0) if stress_on else 0.0
            dstrain = jnp.zeros(9 * n_graphs, dtype).at[ks].set(on_strain)
            _, dg = jax.jvp(design, (batch.positions, strain0), (dpos, dstrain.reshape(n_graphs, 3, 3)))
            return dg  # (G, P)

        size = min(self.chunk, n_tan)
        padded = -(-n_tan // size) * size  # whole chunks only (one compiled body); extra tangents are 0
        dgs = jax.lax.map(tangent_column, jnp.arange(padded), batch_size=size)[:n_tan]  # (T, G, P)
        forces = -dgs[:n_pos].sum(axis=1).reshape(n_atoms, 3, -1)  # (N, 3, P)
        stress = None
        if stress_on:
            per = dgs[n_pos:].reshape(n_graphs, 9, n_graphs, -1)
            own = per[jnp.arange(n_graphs), :, jnp.arange(n_graphs)]  # (G, 9, P): ∂g_g/∂ε_g
            volume = jnp.abs(jnp.linalg.det(batch.cell))
            safe = jnp.where(volume > 0, volume, 1.0)
            stress = jnp.where((volume > 0)[:, None, None], own / safe[:, None, None], 0.0).reshape(n_graphs, 3, 3, -1)
        weights = self._weights(batch, targets, dtype)
        return self._stack(weights, g0, forces, stress).T

    def _block(self, theta0, batch, targets, mode):
        p0, y = self._rows(theta0, batch, targets)
        jac_t = (
            self._jac_params(theta0, batch, targets)
            if mode == "params"
            else self._jac_positions(theta0, batch, targets)
        )
        return p0, y, jac_t

    def mode_for(self, dev, stress: bool) -> str:
        if self.mode != "auto":
            return self.mode
        tangents = 3 * dev.positions.shape[0] + (9 * dev.cell.shape[0] if stress else 0)
        return "positions" if tangents < self.n_params else "params"

    def _key(self, dev, mode: str) -> tuple:
        """What the compiled function depends on: the module, the constants the potential adds
        (reference energies, output scale), the loss weights, the shapes, the mode and chunk."""
        potential, cfg = self.backend.potential, self.backend.config
        return (
            potential.module,
            tuple(np.asarray(potential.reference_energies, np.float64).tolist()),
            float(potential.output_scale),
            (cfg.energy_weight, cfg.force_weight, cfg.stress_weight, self.use_energy, self.use_forces),
            str(self.backend.dtype),
            (dev.positions.shape[0], dev.senders.shape[0], dev.cell.shape[0]),
            mode,
            self.chunk,
        )

    def __call__(self, batch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(J (R, P), r = y − p(0) (R,), p(0) (R,)) of a numpy GraphBatch, in float64."""
        backend = self.backend
        dev = to_device(batch, backend.dtype)
        targets = stress_targets(batch, backend.dtype) if backend.config.stress_weight > 0 else None
        theta0 = jnp.zeros_like(self.flat0)
        mode = self.mode_for(dev, targets is not None)
        self.modes_used.add(mode)
        key = self._key(dev, mode)
        if key not in _COMPILED:
            t0 = time.perf_counter()
            fn = functools.partial(self._block, mode=mode)
            _COMPILED[key] = jax.jit(fn).lower(theta0, dev, targets).compile()
            self.compile_seconds += time.perf_counter() - t0
            while len(_COMPILED) > 32:
                _COMPILED.pop(next(iter(_COMPILED)))
        self._compiled[key] = _COMPILED[key]
        p0, y, jac_t = jax.block_until_ready(_COMPILED[key](theta0, dev, targets))
        p0 = np.asarray(p0, np.float64)
        return np.asarray(jac_t, np.float64).T, np.asarray(y, np.float64) - p0, p0

    def affine_error(self, batch, theta: np.ndarray, jac: np.ndarray, p0: np.ndarray) -> float:
        """max |p(θ) − (p(0) + Jθ)| / max |p(θ)| on one batch (by the compiled block at θ, no new
        compilation): 0 to rounding for an affine model."""
        backend = self.backend
        dev = to_device(batch, backend.dtype)
        targets = stress_targets(batch, backend.dtype) if backend.config.stress_weight > 0 else None
        fn = _COMPILED.get(self._key(dev, self.mode_for(dev, targets is not None)))
        if fn is None:
            return 0.0  # evicted (more than 32 compiled blocks): unchecked
        pred, _, _ = jax.block_until_ready(fn(jnp.asarray(theta, self.flat0.dtype), dev, targets))
        pred = np.asarray(pred, np.float64)
        scale = max(float(np.max(np.abs(pred), initial=0.0)), 1e-300)
        return float(np.max(np.abs(pred - (p0 + jac @ theta)), initial=0.0) / scale)


def least_squares(
    backend: JaxBackend,
    state: TrainState,
    batches,
    ridge: float,
    chunk: int = 8,
    progress=None,
    mode: str = "auto",
    use=(True, True),
) -> tuple[TrainState, dict[str, Any]]:
    """The state with the parameters that minimise the weighted squared errors on ``batches``
    (numpy GraphBatches), and the fit's record (sizes, times, memory, condition, solver).
    ``use``: (energies, forces) the data has (rows of a quantity it lacks are left out)."""
    with float64_scope(backend.config.dtype):
        rows = JacobianRows(backend, state.params, chunk=chunk, mode=mode, use=use)
        eqs = NormalEquations(rows.n_params)
        t_start = time.perf_counter()
        last = None
        for step, batch in enumerate(batches):
            jac, residual, p0 = rows(batch)
            eqs.add(jac, residual, int(np.asarray(batch.graph_mask).sum()))
            last = (batch, jac, p0)
            if progress is not None:
                progress(step)
        t_solve = time.perf_counter()
        theta, info = eqs.solve(ridge)
        t_end = time.perf_counter()
        if last is None:
            raise RunError("the fit has no training batch")
        affine = rows.affine_error(last[0], theta, last[1], last[2])
        if not affine < 1e-6:
            raise RunError(
                f"model '{type(backend.potential.module).__name__}' is not affine in its parameters "
                f"(relative deviation {affine:.2e}): it cannot be fitted in closed form"
            )
        params = rows.unravel(jnp.asarray(theta, rows.flat0.dtype))
        params = jax.tree_util.tree_map(lambda x: jnp.asarray(x, backend.dtype), params)
        new_state = TrainState(params, backend.optimizer.init(params), state.step + 1)
    backend.compile_seconds += rows.compile_seconds
    backend.compile_count += len(rows._compiled)
    info.update(
        {
            "kind": "least-squares",
            "n_params": rows.n_params,
            "rows": eqs.rows,
            "configs": eqs.configs,
            # fit_s: accumulating (compilation excluded) and solving, the run's train_s
            "fit_s": t_end - t_start - rows.compile_seconds,
            "accumulate_s": t_solve - t_start - rows.compile_seconds,
            "solve_s": t_end - t_solve,
            "compile_s": rows.compile_seconds,
            "accumulator_bytes": eqs.accumulator_bytes,
            "block_bytes": eqs.block_bytes,
            "affine_error": affine,
            "jacobian": "+".join(sorted(rows.modes_used)),
            "train_objective_per_config": info["objective"] / max(eqs.configs, 1),
        }
    )
    return new_state, info
