"""Task ``phonons``: harmonic phonons of a relaxed periodic structure with phonopy.

phonopy's finite displacements (``displacement`` Å, symmetry-reduced) on the ``supercell``
(n₁,n₂,n₃ of the relaxed cell, which is also phonopy's primitive cell); the model's forces on
each displaced supercell, minus those of the undisplaced one, give the force constants.
Reported: the band structure along ASE's standard path of the cell (``ase.Cell.bandpath``),
the total DOS on a ``mesh``³ grid, the frequencies at the path's special points, the lowest
and highest frequency (THz; imaginary frequencies are negative, phonopy's convention) and a
flag for imaginary modes (lowest below −``imaginary_tol``). Plot: bands and DOS (``phonons.png``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mlffbench.errors import ConfigError
from mlffbench.tasks.base import TaskOption, TaskResult, TaskSpec, model_label, pyplot, save_plot
from mlffbench.tasks.structures import STRUCTURE_OPTIONS, prepared


def phonopy_of(atoms, supercell, displacement: float, forces_of) -> Any:
    """A phonopy object with force constants of ``atoms`` (the unit = primitive cell) on the
    ``supercell`` (3 ints), from ``forces_of(ase_atoms) -> (n, 3)`` on each displaced supercell
    (minus the undisplaced supercell's forces)."""
    from ase import Atoms
    from phonopy import Phonopy
    from phonopy.structure.atoms import PhonopyAtoms

    unit = PhonopyAtoms(
        symbols=atoms.get_chemical_symbols(), cell=atoms.cell.array, scaled_positions=atoms.get_scaled_positions()
    )
    ph = Phonopy(unit, supercell_matrix=np.diag([int(n) for n in supercell]), primitive_matrix="P")
    ph.generate_displacements(distance=float(displacement))

    def ase_of(cell):
        return Atoms(symbols=cell.symbols, cell=cell.cell, scaled_positions=cell.scaled_positions, pbc=True)

    base = np.asarray(forces_of(ase_of(ph.supercell)), float)
    displaced = ph.supercells_with_displacements or []
    ph.forces = np.array([np.asarray(forces_of(ase_of(c)), float) - base for c in displaced])
    ph.produce_force_constants()
    return ph


def frequencies_at(ph, qpoints) -> np.ndarray:
    """Frequencies (THz) at ``qpoints`` (reduced coordinates of the primitive cell's reciprocal)."""
    ph.run_qpoints(np.asarray(qpoints, float))
    return np.asarray(ph.get_qpoints_dict()["frequencies"])


def run(model: Any, options: dict[str, Any]) -> TaskResult:
    label, atoms, relaxation = prepared(model, options, "phonons")
    supercell = tuple(options["supercell"])
    if len(supercell) != 3 or min(supercell) < 1:
        raise ConfigError(f"phonons: supercell must be three positive integers, got {supercell}")
    calc = atoms.calc

    def forces_of(a):
        a.calc = calc
        return a.get_forces()

    ph = phonopy_of(atoms, supercell, float(options["displacement"]), forces_of)
    path = atoms.cell.bandpath(npoints=int(options["band_points"]))
    bands = frequencies_at(ph, path.kpts)
    x, special_x, special_labels = path.get_linear_kpoint_axis()
    special = {name: np.asarray(q, float) for name, q in path.special_points.items() if name in set(path.path)}
    at_special = {name: frequencies_at(ph, [q])[0] for name, q in special.items()}
    mesh = int(options["mesh"])
    ph.run_mesh([mesh] * 3, is_gamma_center=True)
    mesh_freqs = np.asarray(ph.get_mesh_dict()["frequencies"])
    ph.run_total_dos()
    dos = ph.get_total_dos_dict()
    lowest = float(min(bands.min(), mesh_freqs.min()))
    highest = float(max(bands.max(), mesh_freqs.max()))
    tol = float(options["imaginary_tol"])
    result = TaskResult(
        "phonons",
        model=model_label(model),
        note=f"{label}, {len(atoms)} atoms, supercell {'×'.join(map(str, supercell))}",
    )
    result.figure("lowest_frequency", lowest, "THz", "lowest frequency on the band path and mesh (negative: imaginary)")
    result.figure("highest_frequency", highest, "THz", "highest frequency")
    result.figure("imaginary_modes", bool(lowest < -tol), "", f"a frequency below −{tol:g} THz")
    result.figure("displacements", len(ph.supercells_with_displacements or []), "", "displaced supercells evaluated")
    result.table(
        "special_points",
        ["point", "q (reduced)", "frequencies THz"],
        [[n, " ".join(f"{v:.3f}" for v in special[n]), " ".join(f"{f:.3f}" for f in at_special[n])] for n in special],
    )
    result.data = {
        "structure": label,
        "relaxation": relaxation,
        "supercell": list(supercell),
        "path": path.path,
        "special_points": {n: {"q": special[n], "frequencies_THz": at_special[n]} for n in special},
        "band_x": x,
        "band_frequencies_THz": bands,
        "dos_frequency_THz": np.asarray(dos["frequency_points"]),
        "dos": np.asarray(dos["total_dos"]),
    }
    result.plots["phonons"] = _plot(
        x, bands, special_x, special_labels, dos, result.model, Path(options["out_dir"]), lowest
    )
    return result


def _plot(x, bands, special_x, special_labels, dos, name, out_dir: Path, lowest: float) -> str:
    plt = pyplot()
    fig, (ax, ax_dos) = plt.subplots(1, 2, figsize=(8, 4.2), sharey=True, gridspec_kw={"width_ratios": [3, 1]})
    ax.plot(x, bands, color="C0", lw=1)
    for sx in special_x:
        ax.axvline(sx, color="grey", lw=0.5)
    ax.axhline(0, color="black", lw=0.5)
    ax.set_xticks(special_x, [("Γ" if s == "G" else s) for s in special_labels])
    ax.set_xlim(x[0], x[-1])
    ax.set_ylabel("frequency (THz)")
    ax.set_title(f"phonons — {name}: lowest {lowest:.3f} THz", fontsize=9)
    ax_dos.plot(dos["total_dos"], dos["frequency_points"], color="C1", lw=1)
    ax_dos.set_xlabel("DOS (states/THz)")
    fig.tight_layout()
    return save_plot(fig, out_dir, "phonons")


SPEC = TaskSpec(
    name="phonons",
    run=run,
    description="Phonons with phonopy (finite displacements on a supercell): bands, DOS, lowest frequency, imaginary modes",
    options=(
        *STRUCTURE_OPTIONS,
        TaskOption("supercell", "ints", (2, 2, 2), "Supercell of the relaxed cell, n1,n2,n3."),
        TaskOption("displacement", "float", 0.01, "Finite displacement, Å."),
        TaskOption("mesh", "int", 8, "q-point mesh (n×n×n) of the DOS."),
        TaskOption("band_points", "int", 60, "q-points along the band path."),
        TaskOption("imaginary_tol", "float", 0.05, "Imaginary modes: a frequency below minus this, THz."),
    ),
)
