"""The physics checks every model must pass, on real configurations, framework-neutral.

A check drives a :class:`ModelUnderTest` (a :class:`mlffbench.backends.predictor.Predictor` plus what
the model declares) and returns a :class:`CheckResult` with the deviations it measured and
the tolerance each was held to. Statuses: ``passed``, ``failed``, ``reported`` (a deviation
the model declares, e.g. the energy jump of a faithful hard cutoff: measured and shown,
not a failure) and ``skipped`` (nothing to check it on, or the model cannot do it).

Checks (``CHECKS``, in order): translation, rotation, permutation, periodic images,
supercell (2×1×1 energy = 2 × cell energy), forces (= −∇E by central differences),
stress (strain derivative by central differences), batching (batched = one by one),
save/load (state → checkpoint file → a fresh model), determinism (same seed, same model;
another seed, another model) and cutoff smoothness (a pair moved across the cutoff).
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mlffbench.backends.predictor import Configuration, Prediction, Predictor
from mlffbench.errors import ConfigError
from mlffbench.graph.batching import bucket
from mlffbench.graph.neighbors import neighbor_list
from mlffbench.testing import random_rotation

PASSED, FAILED, REPORTED, SKIPPED = "passed", "failed", "reported", "skipped"


@dataclass
class ModelUnderTest:
    """What the suite checks.

    ``predictor``: the model with fixed parameters. ``hard_cutoff``: the model declares that
    its energy jumps when a pair crosses the cutoff (the jump is then reported, not failed).
    ``save_load(folder)``: writes the model's state to a file in ``folder``, reads it into a
    freshly built model and returns that model's predictor (None: not checked).
    ``from_seed(seed)``: the predictor of the model initialised from ``seed`` (None: not checked).
    """

    predictor: Predictor
    name: str = "model"
    hard_cutoff: bool = False
    save_load: Callable[[Path], Predictor] | None = None
    from_seed: Callable[[int], Predictor] | None = None


@dataclass(frozen=True)
class Tolerances:
    """Allowed deviations. ``energy`` is relative to max(1 eV, |E|); the others are absolute."""

    energy: float  # relative
    forces: float  # eV/Å
    fd_step: float  # Å, central differences of the forces
    fd_forces: float  # eV/Å
    strain_step: float
    stress: float  # eV/Å³ (plus 1e-5 relative)
    cutoff_step: float  # Å between the points of the cutoff scan
    cutoff_energy: float  # eV, energy jump at the cutoff
    cutoff_forces: float  # eV/Å, force jump at the cutoff

    @classmethod
    def for_dtype(cls, dtype: str) -> Tolerances:
        if dtype == "float64":
            return cls(1e-10, 1e-8, 1e-4, 2e-5, 1e-6, 1e-7, 1e-6, 1e-7, 1e-4)
        return cls(2e-6, 2e-3, 1e-2, 5e-2, 1e-3, 2e-4, 1e-3, 5e-3, 5e-2)


@dataclass
class Measurement:
    what: str
    value: float
    tolerance: float
    unit: str = ""
    must_exceed: bool = False  # the value has to be ABOVE the tolerance (e.g. a seed must matter)

    @property
    def ok(self) -> bool:
        if not math.isfinite(self.value):
            return False
        return bool(self.value > self.tolerance if self.must_exceed else self.value <= self.tolerance)

    def text(self) -> str:
        rel = ">" if self.must_exceed else "≤"
        unit = f" {self.unit}" if self.unit else ""
        return f"{self.what} {self.value:.2e}{unit} (need {rel} {self.tolerance:.0e})"


@dataclass
class CheckResult:
    name: str
    status: str
    measurements: list[Measurement] = field(default_factory=list)
    detail: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status in (PASSED, REPORTED, SKIPPED)


@dataclass
class Report:
    model: str
    dtype: str
    results: list[CheckResult]

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    def result(self, name: str) -> CheckResult:
        for r in self.results:
            if r.name == name:
                return r
        raise KeyError(f"no check named '{name}' (checks: {', '.join(r.name for r in self.results)})")

    def failed(self) -> list[str]:
        return [r.name for r in self.results if r.status == FAILED]

    def text(self) -> str:
        lines = [f"conformance of {self.model} ({self.dtype})"]
        for r in self.results:
            measured = "; ".join(m.text() for m in r.measurements)
            lines.append(f"  {r.status:8s} {r.name:16s} [{r.seconds:.1f} s] {measured} {r.detail}".rstrip())
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "dtype": self.dtype,
            "ok": self.ok,
            "checks": [
                {
                    "name": r.name,
                    "status": r.status,
                    "detail": r.detail,
                    "measurements": [
                        {
                            "what": m.what,
                            "value": float(m.value),
                            "tolerance": float(m.tolerance),
                            "unit": m.unit,
                            "ok": m.ok,
                        }
                        for m in r.measurements
                    ],
                }
                for r in self.results
            ],
        }


# --------------------------------------------------------------------- helpers
def _scale(energy: float) -> float:
    return max(1.0, abs(energy))


def _status(measurements: Sequence[Measurement]) -> str:
    return PASSED if all(m.ok for m in measurements) else FAILED


def _compare(label: str, ref: Prediction, new: Prediction, tol: Tolerances, forces_ref=None) -> list[Measurement]:
    """|ΔE| (relative) and max |ΔF| of ``new`` against ``ref`` (forces against ``forces_ref``)."""
    f_ref = ref.forces if forces_ref is None else forces_ref
    de = abs(new.energy - ref.energy) / _scale(ref.energy)
    df = float(np.abs(new.forces - f_ref).max()) if f_ref.size else 0.0
    if not np.all(np.isfinite(new.forces)):
        df = math.inf
    return [
        Measurement(f"{label} |ΔE|/|E|", de, tol.energy),
        Measurement(f"{label} max|ΔF|", df, tol.forces, "eV/Å"),
    ]


def _pairs(config: Configuration, cutoff: float):
    """(senders, receivers, vectors, distances) of all pairs within ``cutoff``."""

    s, r, shifts = neighbor_list(config.positions, config.cell, config.pbc, cutoff)
    vec = config.positions[r] - config.positions[s] + shifts @ np.asarray(config.cell)
    return s, r, vec, np.linalg.norm(vec, axis=1)


def _safe_atoms(config: Configuration, cutoff: float, margin: float) -> np.ndarray:
    """Atoms in no pair whose distance is within ``margin`` of the cutoff."""
    s, r, _, d = _pairs(config, cutoff + margin)
    near = np.abs(d - cutoff) < margin
    bad = np.zeros(config.n_atoms, bool)
    bad[s[near]] = True
    bad[r[near]] = True
    return np.flatnonzero(~bad)


# ---------------------------------------------------------------------- checks
def check_translation(model: ModelUnderTest, configs, tol: Tolerances, ref) -> CheckResult:
    rng = np.random.default_rng(1)
    out = []
    for label, conf in configs:
        t = rng.normal(scale=3.0, size=3)
        new = model.predictor.predict_one(conf.replace(positions=conf.positions + t))
        out += _compare(label, ref[label], new, tol)
        net = float(np.abs(ref[label].forces.sum(axis=0)).max())
        out.append(Measurement(f"{label} |ΣF|", net, tol.forces * max(10.0, math.sqrt(conf.n_atoms)), "eV/Å"))
    return CheckResult("translation", _status(out), out)


def check_rotation(model: ModelUnderTest, configs, tol: Tolerances, ref) -> CheckResult:
    """Free molecules: random rotations; periodic systems: positions and cell rotated together."""
    rng = np.random.default_rng(3)
    out = []
    for label, conf in configs:
        rot = random_rotation(rng)
        new = conf.replace(positions=conf.positions @ rot.T, cell=conf.cell @ rot.T)
        out += _compare(label, ref[label], model.predictor.predict_one(new), tol, ref[label].forces @ rot.T)
    return CheckResult("rotation", _status(out), out)


def check_permutation(model: ModelUnderTest, configs, tol: Tolerances, ref) -> CheckResult:
    rng = np.random.default_rng(5)
    out = []
    for label, conf in configs:
        perm = rng.permutation(conf.n_atoms)
        new = model.predictor.predict_one(conf.replace(numbers=conf.numbers[perm], positions=conf.positions[perm]))
        out += _compare(label, ref[label], new, tol, ref[label].forces[perm])
    return CheckResult("permutation", _status(out), out)


def check_periodic_images(model: ModelUnderTest, configs, tol: Tolerances, ref) -> CheckResult:
    """Every atom wrapped into the cell, and one atom moved by lattice vectors."""
    out = []
    for label, conf in configs:
        if not conf.pbc.all():
            continue
        frac = conf.positions @ np.linalg.inv(conf.cell)
        wrapped = (frac - np.floor(frac)) @ conf.cell
        shifted = conf.positions.copy()
        shifted[conf.n_atoms // 2] += conf.cell[0] - 2 * conf.cell[2]
        for what, pos in (("wrapped", wrapped), ("shifted", shifted)):
            out += _compare(
                f"{label} {what}", ref[label], model.predictor.predict_one(conf.replace(positions=pos)), tol
            )
    if not out:
        return CheckResult("periodic images", SKIPPED, detail="no fully periodic configuration")
    return CheckResult("periodic images", _status(out), out)


def check_supercell(model: ModelUnderTest, configs, tol: Tolerances, ref) -> CheckResult:
    """The 2×1×1 supercell: twice the energy, the same forces on both copies."""
    out = []
    for label, conf in configs:
        if not conf.pbc.all():
            continue
        cell = conf.cell.copy()
        cell[0] *= 2
        big = Configuration.of(
            np.concatenate([conf.numbers, conf.numbers]),
            np.concatenate([conf.positions, conf.positions + conf.cell[0]]),
            cell,
            conf.pbc,
        )
        pred = model.predictor.predict_one(big)
        twice = Prediction(2 * ref[label].energy, np.concatenate([ref[label].forces, ref[label].forces]))
        out += _compare(f"{label} 2×1×1", twice, pred, tol)
    if not out:
        return CheckResult("supercell", SKIPPED, detail="no fully periodic configuration")
    return CheckResult("supercell", _status(out), out)


def check_forces(model: ModelUnderTest, configs, tol: Tolerances, ref, n_components: int = 8) -> CheckResult:
    """Central differences of the energy (fresh neighbour lists at every point) against the
    forces: single components of random atoms, and one random direction in 3N space. Atoms in
    pairs within 10 steps of the cutoff are left alone (a hard cutoff is checked elsewhere)."""
    rng = np.random.default_rng(11)
    h = tol.fd_step
    pred = model.predictor
    out = []
    for label, conf in configs:
        safe = _safe_atoms(conf, pred.cutoff, 10 * h)
        if len(safe) == 0:
            continue
        f0 = ref[label].forces
        pos = conf.positions

        def energy(p, conf=conf):
            return pred.predict_one(conf.replace(positions=p)).energy

        worst = 0.0
        k = min(n_components, len(safe))
        for atom, comp in zip(rng.choice(safe, k, replace=False), rng.integers(0, 3, k), strict=True):
            plus, minus = pos.copy(), pos.copy()
            plus[atom, comp] += h
            minus[atom, comp] -= h
            fd = -(energy(plus) - energy(minus)) / (2 * h)
            worst = max(worst, abs(fd - f0[atom, comp]))
        v = np.zeros_like(pos)
        v[safe] = rng.normal(size=(len(safe), 3))
        v /= np.linalg.norm(v)
        fd = -(energy(pos + h * v) - energy(pos - h * v)) / (2 * h)
        out.append(Measurement(f"{label} max|F_fd − F|", worst, tol.fd_forces, "eV/Å"))
        out.append(Measurement(f"{label} |dE/dv + F·v|", abs(fd - float(np.sum(f0 * v))), tol.fd_forces, "eV/Å"))
        scale = float(np.abs(f0).max())
        out.append(Measurement(f"{label} max|F|", scale, 10 * tol.fd_forces, "eV/Å", must_exceed=True))
    if not out:
        return CheckResult("forces", SKIPPED, detail="every atom is near the cutoff")
    return CheckResult("forces", _status(out), out)


STRAIN_COMPONENTS = ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))


def check_stress(model: ModelUnderTest, configs, tol: Tolerances, ref) -> CheckResult:
    """(1/V) dE/dε by central differences under symmetric strains, against the stress."""
    h = tol.strain_step
    pred = model.predictor
    out = []
    detail = ""
    for label, conf in configs:
        if not conf.pbc.all():
            continue
        stress = pred.predict_one(conf, stress=True).stress
        assert stress is not None  # asked for with stress=True
        volume = abs(np.linalg.det(conf.cell))
        _, _, _, d = _pairs(conf, pred.cutoff + 0.1)
        closest = float(np.abs(d - pred.cutoff).min()) if d.size else math.inf
        if closest < 20 * h * pred.cutoff:
            detail = f"a pair is {closest:.1e} Å from the cutoff: strains may move it across"
        worst = 0.0
        allowed = tol.stress + 1e-5 * float(np.abs(stress).max())
        for i, j in STRAIN_COMPONENTS:
            eps = np.zeros((3, 3))
            eps[i, j] += 0.5 * h
            eps[j, i] += 0.5 * h
            e = []
            for sign in (1, -1):
                deform = np.eye(3) + sign * eps
                e.append(
                    pred.predict_one(conf.replace(positions=conf.positions @ deform, cell=conf.cell @ deform)).energy
                )
            fd = (e[0] - e[1]) / (2 * h) / volume
            worst = max(worst, abs(fd - stress[i, j]))
        out.append(Measurement(f"{label} max|σ_fd − σ|", worst, allowed, "eV/Å³"))
        out.append(Measurement(f"{label} |σ − σᵀ|", float(np.abs(stress - stress.T).max()), tol.stress, "eV/Å³"))
    if not out:
        return CheckResult("stress", SKIPPED, detail="no fully periodic configuration")
    return CheckResult("stress", _status(out), out, detail)


def check_batching(model: ModelUnderTest, configs, tol: Tolerances, ref) -> CheckResult:
    """All configurations in one padded batch against each alone."""
    if len(configs) < 2:
        conf = configs[0][1]
        rng = np.random.default_rng(13)
        moved = conf.replace(positions=conf.positions + rng.normal(scale=0.05, size=conf.positions.shape))
        configs = [*configs, ("moved", moved)]
        ref = {**ref, "moved": model.predictor.predict_one(moved)}
    together = model.predictor.predict([c for _, c in configs])
    out = []
    for (label, _), pred in zip(configs, together, strict=True):
        out += _compare(f"{label} batched", ref[label], pred, tol)
    return CheckResult("batching", _status(out), out)


def check_save_load(model: ModelUnderTest, configs, tol: Tolerances, ref) -> CheckResult:
    if model.save_load is None:
        return CheckResult("save/load", SKIPPED, detail="the model under test cannot be saved")
    with tempfile.TemporaryDirectory(prefix="mlffbench-roundtrip-") as folder:
        loaded = model.save_load(Path(folder))
    out = []
    for label, conf in configs:
        out += _compare(f"{label} reloaded", ref[label], loaded.predict_one(conf), tol)
    return CheckResult("save/load", _status(out), out)


def check_determinism(model: ModelUnderTest, configs, tol: Tolerances, ref, seed: int = 0) -> CheckResult:
    """The same predictor twice, two models from one seed, and one from another seed."""
    label, conf = configs[-1]
    again = model.predictor.predict_one(conf)
    out = _compare(f"{label} repeated", ref[label], again, tol)
    if model.from_seed is None:
        return CheckResult("determinism", _status(out), out, "no seeded initialisation to compare")
    a, b = (model.from_seed(seed).predict_one(conf) for _ in range(2))
    out += _compare(f"seed {seed} twice", a, b, tol)
    other = model.from_seed(seed + 1).predict_one(conf)
    differs = max(abs(other.energy - a.energy) / _scale(a.energy), float(np.abs(other.forces - a.forces).max()))
    out.append(Measurement(f"seed {seed} vs {seed + 1} difference", differs, tol.forces, must_exceed=True))
    return CheckResult("determinism", _status(out), out)


def _cutoff_pair(config: Configuration, cutoff: float, window: float = 0.5):
    """(a, b, unit vector a→b, distance) of the pair nearest the cutoff that can be moved
    across it by moving atom b alone without moving another pair of b across it."""
    s, r, vec, d = _pairs(config, cutoff + window)
    order = np.argsort(np.abs(d - cutoff))
    for e in order[:200]:
        a, b = int(s[e]), int(r[e])
        if a == b:
            continue
        move = abs(cutoff - d[e]) + 1e-3
        others = (r == b) | (s == b)
        others[e] = False
        # the reverse edge (b→a with the opposite shift) is the same pair
        others &= ~((s == b) & (r == a) & np.isclose(d, d[e]))
        if np.all(np.abs(d[others] - cutoff) > move + 1e-3):
            return a, b, vec[e] / d[e], float(d[e])
    return None


def check_cutoff(model: ModelUnderTest, configs, tol: Tolerances, ref) -> CheckResult:
    """A pair moved across the cutoff: energies at r_c − 3δ, r_c − δ, r_c + δ, r_c + 3δ.
    The jump is E(r_c − δ) − E(r_c + δ) minus its linear trend from the outer steps (zero
    for a continuous energy); the force jump is max |F(r_c − δ) − F(r_c + δ)|."""
    pred = model.predictor
    rc, delta = pred.cutoff, tol.cutoff_step
    found = None
    for label, conf in configs:
        found = _cutoff_pair(conf, rc)
        if found is not None:
            break
    if found is None:
        # no pair of the configurations can be moved alone: a dimer of the first two atoms
        label, conf = configs[0]
        conf = Configuration.of(conf.numbers[:2], [[0.0, 0.0, 0.0], [rc, 0.0, 0.0]])
        found = (0, 1, np.array([1.0, 0.0, 0.0]), rc)
        label = f"{label} dimer"
    a, b, unit, dist = found
    preds = []
    for k in (-3, -1, 1, 3):
        pos = conf.positions.copy()
        pos[b] += unit * (rc + k * delta - dist)
        preds.append(pred.predict_one(conf.replace(positions=pos)))
    e = [p.energy for p in preds]
    jump = (e[1] - e[2]) - 0.5 * ((e[0] - e[1]) + (e[2] - e[3]))
    force_jump = float(np.abs(preds[1].forces - preds[2].forces).max())
    out = [
        Measurement(f"{label} pair ({a},{b}) energy jump", abs(jump), tol.cutoff_energy, "eV"),
        Measurement(f"{label} force jump", force_jump, tol.cutoff_forces, "eV/Å"),
    ]
    status = _status(out)
    detail = f"pair at {dist:.4f} Å moved across r_c = {rc:g} Å"
    if status == FAILED and model.hard_cutoff:
        status, detail = REPORTED, f"declared hard cutoff: energy jumps by {jump:+.3e} eV at r_c = {rc:g} Å"
    return CheckResult("cutoff smoothness", status, out, detail)


class _OneShape(Predictor):
    """Single configurations evaluated in one padded shape, always with the stress: a JAX model
    then compiles one function for all of them (compilation dominates the suite's time)."""

    def __init__(self, inner: Predictor, shape) -> None:
        self.inner, self.shape = inner, shape
        self.species, self.cutoff, self.dtype = inner.species, inner.cutoff, inner.dtype

    def predict(self, configs, stress=False, shape=None):

        if len(configs) == 1 and shape is None:
            try:
                (pred,) = self.inner.predict(configs, stress=True, shape=self.shape)
            except ConfigError:  # a displaced structure with more edges than the shape holds
                return self.inner.predict(configs, stress=stress)
            return [pred if stress else Prediction(pred.energy, pred.forces)]
        return self.inner.predict(configs, stress=stress, shape=shape)


def _one_shape(model: ModelUnderTest, configs) -> ModelUnderTest:

    atoms, edges = model.predictor.common_shape([c for _, c in configs])
    shape = (atoms, bucket(int(edges * 1.05) + 16))

    def wrap(predictor):
        return _OneShape(predictor, shape)

    save_load, from_seed = model.save_load, model.from_seed
    return ModelUnderTest(
        predictor=wrap(model.predictor),
        name=model.name,
        hard_cutoff=model.hard_cutoff,
        save_load=(lambda folder: wrap(save_load(folder))) if save_load else None,
        from_seed=(lambda seed: wrap(from_seed(seed))) if from_seed else None,
    )


CHECKS: dict[str, Callable] = {
    "translation": check_translation,
    "rotation": check_rotation,
    "permutation": check_permutation,
    "periodic images": check_periodic_images,
    "supercell": check_supercell,
    "forces": check_forces,
    "stress": check_stress,
    "batching": check_batching,
    "save/load": check_save_load,
    "determinism": check_determinism,
    "cutoff smoothness": check_cutoff,
}


def run_suite(
    model: ModelUnderTest,
    configs: Sequence[tuple[str, Configuration]],
    dtype: str | None = None,
    only: Sequence[str] | None = None,
    tolerances: Tolerances | None = None,
) -> Report:
    """Run the checks (``only`` these, by name) on ``configs`` (label, configuration) pairs.

    Configurations with elements the model does not know are left out; a check that fails
    with an exception is reported as failed with the exception's message.
    """

    dtype = dtype or model.predictor.dtype
    tol = tolerances or Tolerances.for_dtype(dtype)
    known = set(model.predictor.species)
    usable = [(label, c) for label, c in configs if {int(z) for z in c.numbers} <= known]
    if not usable:
        raise ConfigError(f"no configuration has only elements the model {model.name} knows")
    names = list(CHECKS) if only is None else list(only)
    unknown = [n for n in names if n not in CHECKS]
    if unknown:
        raise ConfigError(f"unknown check '{unknown[0]}' (known: {', '.join(CHECKS)})")
    model = _one_shape(model, usable)
    ref = {label: model.predictor.predict_one(conf) for label, conf in usable}
    results = []
    for name in names:
        start = time.perf_counter()
        try:
            result = CHECKS[name](model, usable, tol, ref)
        except Exception as exc:  # noqa: BLE001 - a crashing check is a failed check, with its reason
            result = CheckResult(name, FAILED, detail=f"{type(exc).__name__}: {exc}")
        result.seconds = time.perf_counter() - start
        results.append(result)
    return Report(model.name, dtype, results)
