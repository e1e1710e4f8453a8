"""Molecular dynamics with a trained model through ASE: NVE (velocity Verlet) or NVT (Langevin
or Bussi), from a dataset configuration, with the stability verdict of MDsim.

Recorded every step: potential, kinetic and total energy and the temperature. Reported:
the NVE energy drift (slope of a least-squares line through the total energy against time,
meV/atom/ps), MD steps per second (after the first step, which compiles), and stability.
A simulation has **collapsed** when a bonded distance deviates from its starting value by
more than 0.5 Å (bonded: pairs closer than 1.2 × the sum of their covalent radii at the
start, periodic images included), or when the temperature runs away (above 5 × the target,
or not finite); it stops there. Written: the trajectory (extxyz, with energies and forces),
``md.json`` (the traces and the summary) and PNG plots of energy and temperature vs time.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mlffbench.backends.predictor import Configuration, Predictor
from mlffbench.errors import ConfigError
from mlffbench.graph.neighbors import neighbor_list
from mlffbench.runs.directory import write_json

ENSEMBLES = ("nve", "nvt")
THERMOSTATS = ("langevin", "bussi")
BOND_FACTOR = 1.2  # bonded: closer than this times the sum of the covalent radii
MAX_BOND_DEVIATION = 0.5  # Å (the MDsim criterion)
MAX_TEMPERATURE_FACTOR = 5.0


@dataclass(frozen=True)
class MDOptions:
    steps: int = 1000
    ensemble: str = "nve"
    temperature_K: float = 300.0
    timestep_fs: float = 0.5
    thermostat: str = "langevin"
    friction_per_fs: float = 0.01  # Langevin
    taut_fs: float = 100.0  # Bussi
    seed: int = 0
    trajectory_interval: int = 10

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ConfigError(f"--steps must be at least 1, got {self.steps}")
        if self.ensemble not in ENSEMBLES:
            raise ConfigError(f"--ensemble must be one of {', '.join(ENSEMBLES)}, got '{self.ensemble}'")
        if self.thermostat not in THERMOSTATS:
            raise ConfigError(f"--thermostat must be one of {', '.join(THERMOSTATS)}, got '{self.thermostat}'")
        if not (math.isfinite(self.timestep_fs) and 0 < self.timestep_fs <= 10):
            raise ConfigError(f"--timestep must be in (0, 10] fs, got {self.timestep_fs}")
        if not (math.isfinite(self.temperature_K) and self.temperature_K >= 0):
            raise ConfigError(f"--temperature must be >= 0 K, got {self.temperature_K}")
        if self.trajectory_interval < 1:
            raise ConfigError(f"the trajectory interval must be >= 1, got {self.trajectory_interval}")


@dataclass
class MDResult:
    options: MDOptions
    n_atoms: int
    time_ps: list[float] = field(default_factory=list)
    potential: list[float] = field(default_factory=list)
    kinetic: list[float] = field(default_factory=list)
    temperature: list[float] = field(default_factory=list)
    max_bond_deviation: list[float] = field(default_factory=list)
    n_bonds: int = 0
    steps_done: int = 0
    steps_per_s: float = 0.0
    collapsed: bool = False
    reason: str = ""
    files: dict[str, str] = field(default_factory=dict)

    @property
    def total(self) -> np.ndarray:
        return np.asarray(self.potential) + np.asarray(self.kinetic)

    @property
    def drift_mev_per_atom_ps(self) -> float:
        """Slope of the least-squares line of the total energy against time, meV/atom/ps."""
        t = np.asarray(self.time_ps)
        e = self.total
        ok = np.isfinite(e)
        if ok.sum() < 2 or np.ptp(t[ok]) == 0:
            return math.nan
        slope = np.polyfit(t[ok], e[ok], 1)[0]
        return float(1000.0 * slope / self.n_atoms)

    @property
    def stable(self) -> bool:
        return not self.collapsed

    def summary(self) -> dict:
        temps = np.asarray(self.temperature, float)
        return {
            "ensemble": self.options.ensemble,
            "thermostat": self.options.thermostat if self.options.ensemble == "nvt" else None,
            "target_temperature_K": self.options.temperature_K,
            "timestep_fs": self.options.timestep_fs,
            "steps_requested": self.options.steps,
            "steps_done": self.steps_done,
            "simulated_ps": self.steps_done * self.options.timestep_fs / 1000.0,
            "n_atoms": self.n_atoms,
            "n_bonds": self.n_bonds,
            "drift_mev_per_atom_ps": self.drift_mev_per_atom_ps,
            "steps_per_s": self.steps_per_s,
            "temperature_mean_K": float(np.nanmean(temps)) if temps.size else math.nan,
            "temperature_std_K": float(np.nanstd(temps)) if temps.size else math.nan,
            "max_bond_deviation_A": float(np.nanmax(self.max_bond_deviation)) if self.max_bond_deviation else 0.0,
            "stable": self.stable,
            "reason": self.reason,
            "files": self.files,
        }


def atoms_of(config: Configuration):
    from ase import Atoms

    cell = config.cell if np.any(config.cell) else None
    return Atoms(numbers=config.numbers, positions=config.positions, cell=cell, pbc=config.pbc)


def bonds(config: Configuration) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, cell shift) of the bonded pairs (i < j, or i = j for a self image), each once."""
    from ase.data import covalent_radii

    radii = covalent_radii[np.asarray(config.numbers)]
    cutoff = BOND_FACTOR * 2 * float(radii.max())
    s, r, shifts = neighbor_list(config.positions, config.cell, config.pbc, cutoff)
    vec = config.positions[r] - config.positions[s] + shifts @ np.asarray(config.cell)
    d = np.linalg.norm(vec, axis=1)
    bonded = d < BOND_FACTOR * (radii[s] + radii[r])
    first_nonzero = shifts[np.arange(len(s)), np.argmax(shifts != 0, axis=1)] if len(s) else np.zeros(0)
    once = (s < r) | ((s == r) & (first_nonzero > 0))  # each pair once (its reverse is the same bond)
    keep = bonded & once
    return s[keep], r[keep], shifts[keep]


def run_md(
    predictor: Predictor, config: Configuration, options: MDOptions, out_dir: Path | None = None, log=None
) -> MDResult:
    """Run the dynamics; write the trajectory, ``md.json`` and plots into ``out_dir`` (if given)."""
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary, ZeroRotation

    from mlffbench.ase import MlffbenchCalculator

    atoms = atoms_of(config)
    atoms.calc = MlffbenchCalculator(predictor)
    rng = np.random.default_rng(options.seed)
    if options.temperature_K > 0:
        MaxwellBoltzmannDistribution(atoms, temperature_K=options.temperature_K, rng=rng)
        Stationary(atoms)
        if not config.periodic:
            ZeroRotation(atoms)
    dyn = _integrator(atoms, options, rng)
    bi, bj, bshift = bonds(config)
    cell = np.asarray(config.cell)
    d0 = np.linalg.norm(config.positions[bj] - config.positions[bi] + bshift @ cell, axis=1)
    result = MDResult(options, config.n_atoms, n_bonds=len(bi))
    frames = []
    limit = MAX_TEMPERATURE_FACTOR * max(options.temperature_K, 1.0)

    class Collapse(Exception):
        pass

    def observe() -> None:
        step = len(result.time_ps)
        epot = float(atoms.get_potential_energy())
        ekin = float(atoms.get_kinetic_energy())
        temp = float(atoms.get_temperature())
        pos = atoms.positions
        dev = float(np.abs(np.linalg.norm(pos[bj] - pos[bi] + bshift @ cell, axis=1) - d0).max()) if len(bi) else 0.0
        result.time_ps.append(step * options.timestep_fs / 1000.0)
        result.potential.append(epot)
        result.kinetic.append(ekin)
        result.temperature.append(temp)
        result.max_bond_deviation.append(dev)
        if step % options.trajectory_interval == 0 and out_dir is not None:
            frame = atoms.copy()
            frame.calc = SinglePointCalculator(frame, energy=epot, forces=atoms.get_forces().copy())
            frames.append(frame)
        if not (math.isfinite(epot) and math.isfinite(temp)):
            raise Collapse(f"non-finite energy or temperature at step {step}")
        if dev > MAX_BOND_DEVIATION:
            raise Collapse(f"a bonded distance deviates by {dev:.2f} Å (> {MAX_BOND_DEVIATION} Å) at step {step}")
        if temp > limit:
            raise Collapse(f"temperature ran away: {temp:.0f} K (> {MAX_TEMPERATURE_FACTOR:g} × target) at step {step}")

    dyn.attach(observe, interval=1)  # ASE calls it for step 0 too
    start = time.perf_counter()
    try:
        dyn.run(1)  # step 0 and 1: the model compiles (and may again for a new padded shape)
        start = time.perf_counter()
        if options.steps > 1:
            dyn.run(options.steps - 1)
    except Collapse as exc:
        result.collapsed, result.reason = True, str(exc)
    elapsed = time.perf_counter() - start
    result.steps_done = len(result.time_ps) - 1
    timed_steps = max(result.steps_done - 1, 0)
    result.steps_per_s = timed_steps / elapsed if elapsed > 0 and timed_steps else math.nan
    if not result.collapsed:
        result.reason = f"every bonded distance within {MAX_BOND_DEVIATION} Å of its start, temperature bounded"
    if out_dir is not None:
        _write(result, frames, Path(out_dir))
    return result


def _integrator(atoms, options: MDOptions, rng):
    from ase import units

    dt = options.timestep_fs * units.fs
    if options.ensemble == "nve":
        from ase.md.verlet import VelocityVerlet

        return VelocityVerlet(atoms, timestep=dt)
    if options.thermostat == "bussi":
        from ase.md.bussi import Bussi

        return Bussi(atoms, dt, temperature_K=options.temperature_K, taut=options.taut_fs * units.fs, rng=rng)
    from ase.md.langevin import Langevin

    return Langevin(
        atoms, dt, temperature_K=options.temperature_K, friction=options.friction_per_fs / units.fs, rng=rng
    )


def _write(result: MDResult, frames, out_dir: Path) -> None:
    import ase.io

    out_dir.mkdir(parents=True, exist_ok=True)
    traj = out_dir / "trajectory.extxyz"
    if frames:
        ase.io.write(traj, frames, format="extxyz")
        result.files["trajectory"] = str(traj)
    result.files.update(plot(result, out_dir))
    result.files["summary"] = str(out_dir / "md.json")
    write_json(
        out_dir / "md.json",
        {
            "summary": result.summary(),
            "time_ps": result.time_ps,
            "potential_eV": result.potential,
            "kinetic_eV": result.kinetic,
            "temperature_K": result.temperature,
            "max_bond_deviation_A": result.max_bond_deviation,
        },
    )


def plot(result: MDResult, out_dir: Path) -> dict[str, str]:
    """energy.png (potential, kinetic, total minus their start, meV/atom) and temperature.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.asarray(result.time_ps)
    files = {}
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, values in (
        ("potential", np.asarray(result.potential)),
        ("kinetic", np.asarray(result.kinetic)),
        ("total", result.total),
    ):
        ax.plot(t, 1000.0 * (values - values[0]) / result.n_atoms, label=name, lw=1)
    ax.set_xlabel("time (ps)")
    ax.set_ylabel("energy − start (meV/atom)")
    ax.set_title(f"{result.options.ensemble.upper()}: drift {result.drift_mev_per_atom_ps:.3g} meV/atom/ps")
    ax.legend()
    fig.tight_layout()
    files["energy_plot"] = str(out_dir / "energy.png")
    fig.savefig(files["energy_plot"], dpi=120)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(t, result.temperature, lw=1)
    if result.options.temperature_K > 0:
        ax.axhline(result.options.temperature_K, color="grey", ls="--", lw=0.8, label="target")
        ax.legend()
    ax.set_xlabel("time (ps)")
    ax.set_ylabel("temperature (K)")
    ax.set_title("stable" if result.stable else f"collapsed: {result.reason}", fontsize=8)
    fig.tight_layout()
    files["temperature_plot"] = str(out_dir / "temperature.png")
    fig.savefig(files["temperature_plot"], dpi=120)
    plt.close(fig)
    return files
