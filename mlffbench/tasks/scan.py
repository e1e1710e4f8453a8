"""Energy along a distance: a dataset's dissociation curves against their reference, or a bond
of one configuration stretched.

**Curves** (``scan_curves``): the configurations of each group of a dataset (COMP6 S66x8: one
group per dimer, 8 points of its dissociation curve; BOTNet ethanol dimers: one group per atom
pair, H–H … O–O) are split into their two monomers
(connected components of the covalent-bond graph of the first point) and ordered by the
distance R between the monomers' centres of mass. Energies are compared *relative* to the
point of largest R (the model's and the reference's own): the MAE of E(R) − E(R_max) per
dimer, meV. The projected force is the force pulling the monomers apart,
½ (F_B − F_A) · û (û from A to B; positive: repulsive), compared where the data has forces.

**Bond** (``scan_bond``): atom J of a configuration is moved along the I→J vector (minimum
image) to each requested distance; the energy relative to the first point and the force on
J along the bond, F_J · û = −dE/dd, are predicted (no reference).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mlffbench.backends.predictor import Configuration, Predictor
from mlffbench.data import elements
from mlffbench.errors import ConfigError


@dataclass
class Curve:
    name: str
    distance: np.ndarray  # Å
    predicted: np.ndarray  # eV, relative to the reference point
    reference: np.ndarray | None = None  # eV, relative to the reference point
    predicted_force: np.ndarray | None = None  # eV/Å along the separation (positive: repulsive)
    reference_force: np.ndarray | None = None
    skipped: str = ""

    @property
    def energy_mae(self) -> float:
        if self.reference is None or self.skipped:
            return math.nan
        return float(np.mean(np.abs(self.predicted - self.reference)))

    @property
    def force_mae(self) -> float:
        if self.reference_force is None or self.predicted_force is None or self.skipped:
            return math.nan
        return float(np.mean(np.abs(self.predicted_force - self.reference_force)))

    def to_dict(self) -> dict:
        def lst(a):
            return None if a is None else [float(x) for x in a]

        return {
            "name": self.name,
            "skipped": self.skipped,
            "distance_A": lst(self.distance),
            "predicted_eV": lst(self.predicted),
            "reference_eV": lst(self.reference),
            "predicted_force_eV_per_A": lst(self.predicted_force),
            "reference_force_eV_per_A": lst(self.reference_force),
            "energy_mae_eV": self.energy_mae,
            "force_mae_eV_per_A": self.force_mae,
        }


@dataclass
class ScanResult:
    title: str
    curves: list[Curve] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)

    def evaluated(self) -> list[Curve]:
        return [c for c in self.curves if not c.skipped]

    def summary(self) -> dict:
        done = self.evaluated()
        e = [c.energy_mae for c in done if math.isfinite(c.energy_mae)]
        f = [c.force_mae for c in done if math.isfinite(c.force_mae)]
        return {
            "title": self.title,
            "curves": len(self.curves),
            "evaluated": len(done),
            "skipped": len(self.curves) - len(done),
            "mean_energy_mae_eV": float(np.mean(e)) if e else None,
            "mean_force_mae_eV_per_A": float(np.mean(f)) if f else None,
            "files": self.files,
        }


def monomers(config: Configuration) -> tuple[np.ndarray, np.ndarray]:
    """The atoms of the two monomers of a dimer: the largest connected component of the
    covalent-bond graph (1.2 × the sum of covalent radii) and the rest; for two atoms, each."""
    from ase.data import covalent_radii
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if config.n_atoms == 2:  # a diatomic curve: the atoms are the monomers
        return np.array([0]), np.array([1])
    pos = config.positions
    radii = covalent_radii[np.asarray(config.numbers)]
    d = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
    bonded = d < 1.2 * (radii[:, None] + radii[None])
    np.fill_diagonal(bonded, False)
    n, labels = connected_components(coo_matrix(bonded), directed=False)
    if n < 2:
        raise ConfigError("the structure is one connected molecule: no two monomers to separate")
    sizes = np.bincount(labels)
    big = int(np.argmax(sizes))
    a = np.flatnonzero(labels == big)
    b = np.flatnonzero(labels != big)
    return (a, b) if a.min() < b.min() else (b, a)


def _centre(config: Configuration, atoms: np.ndarray) -> np.ndarray:
    from ase.data import atomic_masses

    m = atomic_masses[np.asarray(config.numbers)[atoms]]
    return (config.positions[atoms] * m[:, None]).sum(axis=0) / m.sum()


def unknown_elements(numbers, species) -> list[str]:
    return [elements.symbol(int(z)) for z in sorted({int(z) for z in np.asarray(numbers)} - set(species))]


def scan_curves(predictor: Predictor, ds, title: str = "", groups=None, log=None) -> ScanResult:
    """Every group (dimer curve) of ``ds`` against its reference energies (and forces)."""
    if ds.group is None:
        raise ConfigError(f"dataset '{ds.name}' has no groups (curves) to scan; use --bond I J on a configuration")
    if ds.energy is None:
        raise ConfigError(f"dataset '{ds.name}' has no reference energies")
    result = ScanResult(title or f"dissociation curves of {ds.name}")
    names = ds.group_names
    chosen = range(len(names)) if not groups else [_group_index(names, g) for g in groups]
    known = set(predictor.species)
    usable = [Configuration.from_dataset(ds, int(i)) for i in np.flatnonzero(np.isin(ds.group, list(chosen)))]
    usable = [c for c in usable if {int(z) for z in c.numbers} <= known]
    shape = predictor.common_shape(usable) if usable else None  # one padded shape: one compilation
    for g in chosen:
        idx = np.flatnonzero(ds.group == g)
        if len(idx) < 2:
            continue
        configs = [Configuration.from_dataset(ds, int(i)) for i in idx]
        missing = unknown_elements(configs[0].numbers, predictor.species)
        if missing:
            result.curves.append(
                Curve(names[g], np.zeros(0), np.zeros(0), skipped=f"element {', '.join(missing)} unknown to the model")
            )
            continue
        a, b = monomers(configs[0])
        axis = np.array([_centre(c, b) - _centre(c, a) for c in configs])
        dist = np.linalg.norm(axis, axis=1)
        unit = axis / dist[:, None]
        preds = [predictor.predict_one(c, shape=shape) for c in configs]
        e_pred = np.array([p.energy for p in preds])
        f_pred = np.array([_pull(p.forces, a, b, u) for p, u in zip(preds, unit, strict=True)])
        e_ref = ds.energy[idx]
        f_ref = None
        if ds.forces is not None:
            f_ref = np.array([_pull(ds.forces[ds.atoms_of(int(i))], a, b, u) for i, u in zip(idx, unit, strict=True)])
        order = np.argsort(dist)
        last = order[-1]
        result.curves.append(
            Curve(
                names[g],
                dist[order],
                (e_pred - e_pred[last])[order],
                (e_ref - e_ref[last])[order],
                f_pred[order],
                None if f_ref is None else f_ref[order],
            )
        )
        if log:
            c = result.curves[-1]
            log(f"{c.name}: {len(idx)} points, energy MAE {1000 * c.energy_mae:.1f} meV")
    if not result.evaluated():
        reasons = sorted({c.skipped for c in result.curves if c.skipped})
        raise ConfigError(
            f"no curve of '{ds.name}' can be evaluated: {'; '.join(reasons) or 'no groups with 2+ points'}"
        )
    return result


def _group_index(names, name: str) -> int:
    if name in names:
        return names.index(name)
    raise ConfigError(f"unknown curve '{name}' (known: {', '.join(names[:8])}{', …' if len(names) > 8 else ''})")


def _pull(forces: np.ndarray, a, b, unit) -> float:
    """½ (F_B − F_A) · û: the force separating the monomers (positive: they repel)."""
    return float(0.5 * (forces[b].sum(axis=0) - forces[a].sum(axis=0)) @ unit)


def scan_bond(predictor: Predictor, config: Configuration, i: int, j: int, distances, name: str = "") -> ScanResult:
    """Atom ``j`` moved along the ``i``→``j`` vector to each of ``distances`` (Å)."""
    n = config.n_atoms
    for k in (i, j):
        if not 0 <= k < n:
            raise ConfigError(f"atom index {k} out of range (the configuration has {n} atoms)")
    if i == j:
        raise ConfigError("--bond needs two different atoms")
    missing = unknown_elements(config.numbers, predictor.species)
    if missing:
        raise ConfigError(
            f"element {', '.join(missing)} of the configuration is unknown to the model "
            f"(it knows {', '.join(elements.symbol(z) for z in predictor.species)})"
        )
    vec = config.positions[j] - config.positions[i]
    if config.periodic:
        cell = np.asarray(config.cell)
        frac = vec @ np.linalg.inv(cell)
        frac -= np.where(config.pbc, np.round(frac), 0.0)
        vec = frac @ cell
    unit = vec / np.linalg.norm(vec)
    distances = np.asarray(distances, float)
    configs = []
    for d in distances:
        pos = config.positions.copy()
        pos[j] = config.positions[i] + unit * d
        configs.append(config.replace(positions=pos))
    shape = predictor.common_shape(configs)
    preds = [predictor.predict_one(c, shape=shape) for c in configs]
    e = np.array([p.energy for p in preds])
    f = np.array([float(p.forces[j] @ unit) for p in preds])  # = −dE/dd: only atom j moves
    label = name or f"{elements.symbol(int(config.numbers[i]))}{i}–{elements.symbol(int(config.numbers[j]))}{j}"
    start = float(np.linalg.norm(vec))
    result = ScanResult(f"bond stretch {label} (start {start:.3f} Å)")
    result.curves.append(Curve(label, distances, e - e[0], predicted_force=f))
    return result


def plot(result: ScanResult, path: Path, max_panels: int = 72) -> str:
    """One panel per curve: predicted (and reference) relative energy vs distance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = result.evaluated()[:max_panels]
    cols = min(len(curves), 8)
    rows = -(-len(curves) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols + 1, 2.0 * rows + 0.8), squeeze=False)
    for ax, c in zip(axes.flat, curves, strict=False):
        ax.plot(c.distance, 1000 * c.predicted, "o-", ms=3, lw=1, label="model")
        if c.reference is not None:
            ax.plot(c.distance, 1000 * c.reference, "s--", ms=3, lw=1, label="reference")
            ax.set_title(f"{c.name}: MAE {1000 * c.energy_mae:.0f} meV", fontsize=7)
        else:
            ax.set_title(c.name, fontsize=7)
        ax.tick_params(labelsize=6)
    for ax in list(axes.flat)[len(curves) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=6)
    fig.supxlabel("distance (Å)")
    fig.supylabel("E − E(reference point) (meV)")
    fig.suptitle(result.title, fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)
