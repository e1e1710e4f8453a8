"""Task ``eos``: the equation of state of a periodic structure with the model.

The structure (a configuration of the model's dataset or a structure file) is relaxed
(positions and cell, FIRE under ASE's ``FrechetCellFilter``), then scaled isotropically to
volumes ``V0 (1 + s)`` for the strains ``s`` of ``volume_range`` (atoms move with the cell) and
the model's energies fitted by a Birch–Murnaghan equation of state (ASE's
``EquationOfState``): V0 (Å³/atom), E0 (eV/atom), B0 (GPa), B0′. Where the dataset holds a
volume series (configurations of one structure, same atoms and fractional coordinates, cells
differing only by a scale factor, at least 5 volumes), the same fit on its reference energies
is reported beside the model's, and the model's energies on those very configurations too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mlffbench.errors import ConfigError
from mlffbench.tasks.base import TaskOption, TaskResult, TaskSpec, model_label, pyplot, save_plot
from mlffbench.tasks.structures import GPA_PER_EV_A3, STRUCTURE_OPTIONS, dataset_of, prepared

MIN_SERIES = 5  # volumes a dataset's volume series needs


def birch_murnaghan(volumes, energies) -> dict[str, float]:
    """Birch–Murnaghan fit (ASE): V0 (Å³), E0 (eV), B0 (eV/Å³), B0′, for the whole cell."""
    from ase.eos import EquationOfState

    if len(volumes) < 4:
        raise ConfigError(f"an equation-of-state fit needs at least 4 volumes, got {len(volumes)}")
    eos = EquationOfState(np.asarray(volumes, float), np.asarray(energies, float), eos="birchmurnaghan")
    try:
        v0, e0, b0 = eos.fit(warn=False)
    except (RuntimeError, ValueError) as exc:
        raise ConfigError(f"the Birch–Murnaghan fit failed: {exc}") from None
    params = getattr(eos, "eos_parameters", None)
    bp = float(params[2]) if params is not None and len(params) > 2 else float("nan")
    return {"V0": float(v0), "E0": float(e0), "B0": float(b0), "B0_prime": bp}


def volume_series(ds, numbers=None, tol: float = 1e-3) -> list[np.ndarray]:
    """Groups of configuration indices of ``ds`` that are one structure at several volumes:
    same atomic numbers (in order), cells equal up to a scale factor and the same fractional
    coordinates (within ``tol``); each with at least :data:`MIN_SERIES` distinct volumes."""
    if ds.cell is None or ds.energy is None:
        return []
    groups: list[tuple[np.ndarray, np.ndarray, np.ndarray, list[int]]] = []
    for i in range(ds.n_configs):
        if not np.all(ds.pbc[i]):
            continue
        cell = np.asarray(ds.cell[i], float)
        det = abs(np.linalg.det(cell))
        if det < 1e-9:
            continue
        z = np.asarray(ds.numbers[ds.atoms_of(i)])
        if numbers is not None and (len(z) != len(numbers) or np.any(z != numbers)):
            continue
        shape = cell / det ** (1 / 3)
        frac = np.asarray(ds.positions[ds.atoms_of(i)]) @ np.linalg.inv(cell)
        for gz, gshape, gfrac, members in groups:
            if len(gz) == len(z) and np.all(gz == z) and np.allclose(gshape, shape, atol=tol):
                d = frac - gfrac
                if np.abs(d - np.round(d)).max() < tol:
                    members.append(i)
                    break
        else:
            groups.append((z, shape, frac, [i]))
    out = []
    for _, _, _, members in groups:
        vols = np.array([abs(np.linalg.det(ds.cell[i])) for i in members])
        if np.unique(np.round(vols, 6)).size >= MIN_SERIES:
            out.append(np.asarray(members))
    return out


def run(model: Any, options: dict[str, Any]) -> TaskResult:
    from mlffbench.backends.predictor import Configuration
    from mlffbench.tasks.base import calculator_of
    from mlffbench.tasks.md import atoms_of
    from mlffbench.tasks.structures import strained

    label, atoms, relaxation = prepared(model, options, "eos")
    n = len(atoms)
    span, points = float(options["volume_range"]), int(options["points"])
    if not (0 < span < 0.5 and points >= 5):
        raise ConfigError(f"eos: volume_range must be in (0, 0.5) and points >= 5, got {span:g} and {points}")
    scales = np.linspace(1 - span, 1 + span, points)
    volumes, energies = [], []
    for s in scales:
        a = strained(atoms, (s ** (1 / 3) - 1) * np.eye(3))
        volumes.append(a.get_volume())
        energies.append(a.get_potential_energy())
    result = TaskResult("eos", model=model_label(model), note=f"{label}, {n} atoms")
    try:
        fit = birch_murnaghan(volumes, energies)
    except ConfigError as exc:  # e.g. no minimum in the range: the figures are NaN, the reason noted
        fit = {"V0": float("nan"), "E0": float("nan"), "B0": float("nan"), "B0_prime": float("nan")}
        result.note += f"; {exc}"
    result.figure("V0", fit["V0"] / n, "Å³/atom", "equilibrium volume (Birch–Murnaghan)")
    result.figure("E0", fit["E0"] / n, "eV/atom", "energy at V0")
    result.figure("B0", fit["B0"] * GPA_PER_EV_A3, "GPa", "bulk modulus")
    result.figure("B0_prime", fit["B0_prime"], "", "pressure derivative of the bulk modulus")
    series = {}
    if options.get("structure") is None:
        series = _reference_series(model, options, atoms, calculator_of(model), atoms_of, Configuration)
        if series:
            result.figure("V0_ref", series["ref"]["V0"] / series["n_atoms"], "Å³/atom", "V0 of the dataset's energies")
            result.figure("B0_ref", series["ref"]["B0"] * GPA_PER_EV_A3, "GPa", "B0 of the dataset's energies")
            result.figure("B0_prime_ref", series["ref"]["B0_prime"], "", "B0′ of the dataset's energies")
            result.figure(
                "B0_series", series["model"]["B0"] * GPA_PER_EV_A3, "GPa", "B0 of the model on the same configurations"
            )
    rows = [[f"{v / n:.4f}", f"{e / n:.6f}"] for v, e in zip(volumes, energies, strict=True)]
    result.table("energy_volume", ["V Å³/atom", "E eV/atom"], rows)
    result.data = {
        "structure": label,
        "n_atoms": n,
        "relaxation": relaxation,
        "volumes_A3": volumes,
        "energies_eV": energies,
        "fit": fit,
        "series": series,
    }
    result.plots["eos"] = _plot(result, volumes, energies, fit, series, n, Path(options["out_dir"]))
    return result


def _reference_series(model, options, atoms, calc, atoms_of, Configuration) -> dict[str, Any]:
    """The dataset's volume series of the start structure's composition (the largest one), fitted
    on its reference energies and on the model's energies of the same configurations."""
    try:
        name, ds = dataset_of(model, options.get("dataset"), options.get("data_dir"))
    except ConfigError:
        return {}
    groups = [g for g in volume_series(ds) if len(g)]
    if not groups:
        return {}
    want = sorted(atoms.numbers.tolist())
    groups = [g for g in groups if sorted(ds.numbers[ds.atoms_of(int(g[0]))].tolist()) == want] or groups
    group = max(groups, key=len)
    vols, e_ref, e_model = [], [], []
    for i in group:
        a = atoms_of(Configuration.from_dataset(ds, int(i)))
        a.calc = calc
        vols.append(a.get_volume())
        e_ref.append(float(ds.energy[int(i)]))
        e_model.append(a.get_potential_energy())
    n = len(ds.numbers[ds.atoms_of(int(group[0]))])
    return {
        "dataset": name,
        "configs": [int(i) for i in group],
        "n_atoms": n,
        "volumes_A3": vols,
        "reference_eV": e_ref,
        "model_eV": e_model,
        "ref": _fit_or_nan(vols, e_ref),
        "model": _fit_or_nan(vols, e_model),
    }


def _fit_or_nan(volumes, energies) -> dict[str, float]:
    try:
        return birch_murnaghan(volumes, energies)
    except ConfigError:
        return {"V0": float("nan"), "E0": float("nan"), "B0": float("nan"), "B0_prime": float("nan")}


def _plot(result, volumes, energies, fit, series, n, out_dir: Path) -> str:
    from ase.eos import birchmurnaghan

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.2))
    v = np.asarray(volumes) / n
    ax.plot(v, np.asarray(energies) / n, "o", label=f"{result.model or 'model'}")
    if np.isfinite(fit["B0"]):
        grid = np.linspace(v.min(), v.max(), 100)
        curve = birchmurnaghan(grid * n, fit["E0"], fit["B0"], fit["B0_prime"], fit["V0"]) / n
        ax.plot(grid, curve, "-", lw=1, label=f"BM fit: B0 {fit['B0'] * GPA_PER_EV_A3:.1f} GPa")
    if series:
        m = series["n_atoms"]
        sv = np.asarray(series["volumes_A3"]) / m
        ref = np.asarray(series["reference_eV"]) / m
        mod = np.asarray(series["model_eV"]) / m
        shift = float(np.min(mod) - np.min(ref))  # the reference's energy zero may differ
        ax.plot(sv, ref + shift, "s", mfc="none", label=f"{series['dataset']} reference (shifted)")
    ax.set_xlabel("volume (Å³/atom)")
    ax.set_ylabel("energy (eV/atom)")
    ax.set_title(f"equation of state: V0 {fit['V0'] / n:.3f} Å³/atom")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_plot(fig, out_dir, "eos")


SPEC = TaskSpec(
    name="eos",
    run=run,
    description="Equation of state: relaxed cell scaled isotropically, Birch–Murnaghan V0, B0, B0′ (and the dataset's volume series)",
    options=(
        *STRUCTURE_OPTIONS,
        TaskOption("volume_range", "float", 0.06, "Volumes from V0 (1 − r) to V0 (1 + r)."),
        TaskOption("points", "int", 9, "Number of volumes."),
    ),
)
