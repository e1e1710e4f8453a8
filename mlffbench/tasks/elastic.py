"""Task ``elastic``: the elastic tensor of a relaxed periodic structure from stress–strain.

The relaxed cell is deformed by ±δ (``strain``, and ±δ/2 with ``points=4``) in each of the six
Voigt strain components (ε₁..ε₃ normal, ε₄..ε₆ the engineering shears γ = 2ε), the ions are
relaxed at fixed cell where ``relax_ions`` (relaxed-ion constants), and the model's stress
(ASE's sign: σ = (1/V) ∂E/∂ε, tensile positive) is differentiated by central differences:
C_ij = ∂σ_i/∂ε_j (GPa), symmetrised. From C: Voigt, Reuss and Hill bulk and shear moduli, and
the Born stability criterion in its general form (C positive definite; Mouhat & Coudert,
PRB 90, 224104 (2014)): the smallest eigenvalue of C.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mlffbench.errors import ConfigError
from mlffbench.tasks.base import TaskOption, TaskResult, TaskSpec, model_label, pyplot, save_plot
from mlffbench.tasks.structures import GPA_PER_EV_A3, STRUCTURE_OPTIONS, prepared, relax, strained

VOIGT = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))


def voigt_strain(j: int, amount: float) -> np.ndarray:
    """The symmetric strain tensor of Voigt component ``j`` (0..5) = ``amount`` (engineering
    shear for j >= 3)."""
    eps = np.zeros((3, 3))
    a, b = VOIGT[j]
    if a == b:
        eps[a, a] = amount
    else:
        eps[a, b] = eps[b, a] = amount / 2
    return eps


def stress_voigt(atoms) -> np.ndarray:
    return np.asarray(atoms.get_stress(voigt=True), float)  # xx yy zz yz xz xy, eV/Å³


def moduli(c: np.ndarray) -> dict[str, float]:
    """Voigt, Reuss, Hill bulk (K) and shear (G) moduli of the 6×6 tensor ``c`` (its units)."""
    s = np.linalg.inv(c)
    kv = (c[0, 0] + c[1, 1] + c[2, 2] + 2 * (c[0, 1] + c[0, 2] + c[1, 2])) / 9
    gv = (c[0, 0] + c[1, 1] + c[2, 2] - (c[0, 1] + c[0, 2] + c[1, 2]) + 3 * (c[3, 3] + c[4, 4] + c[5, 5])) / 15
    kr = 1 / (s[0, 0] + s[1, 1] + s[2, 2] + 2 * (s[0, 1] + s[0, 2] + s[1, 2]))
    gr = 15 / (
        4 * (s[0, 0] + s[1, 1] + s[2, 2]) - 4 * (s[0, 1] + s[0, 2] + s[1, 2]) + 3 * (s[3, 3] + s[4, 4] + s[5, 5])
    )
    return {
        "K_V": float(kv),
        "K_R": float(kr),
        "K_VRH": float((kv + kr) / 2),
        "G_V": float(gv),
        "G_R": float(gr),
        "G_VRH": float((gv + gr) / 2),
    }


def elastic_tensor(atoms, delta: float, points: int = 2, relax_ions: bool = False, fmax: float = 0.005, steps=200):
    """C (6×6, eV/Å³) of ``atoms`` (its calculator attached) by central differences of the stress."""
    if points not in (2, 4):
        raise ConfigError(f"elastic: points must be 2 or 4, got {points}")
    c = np.zeros((6, 6))
    for j in range(6):
        amounts = (delta, -delta) if points == 2 else (delta, -delta, delta / 2, -delta / 2)
        sig = []
        for amount in amounts:
            a = strained(atoms, voigt_strain(j, amount))
            if relax_ions and len(a) > 1:
                relax(a, atoms.calc, fmax, steps, cell=False)
            sig.append(stress_voigt(a))
        if points == 2:
            c[:, j] = (sig[0] - sig[1]) / (2 * delta)
        else:  # fourth-order central difference
            c[:, j] = (8 * (sig[2] - sig[3]) - (sig[0] - sig[1])) / (6 * delta)
    return 0.5 * (c + c.T)


def run(model: Any, options: dict[str, Any]) -> TaskResult:
    label, atoms, relaxation = prepared(model, options, "elastic")
    delta = float(options["strain"])
    if not 0 < delta <= 0.05:
        raise ConfigError(f"elastic: strain must be in (0, 0.05], got {delta:g}")
    c = elastic_tensor(
        atoms,
        delta,
        int(options["points"]),
        bool(options["relax_ions"]),
        float(options["fmax"]),
        int(options["max_steps"]),
    )
    c_gpa = c * GPA_PER_EV_A3
    result = TaskResult("elastic", model=model_label(model), note=f"{label}, {len(atoms)} atoms")
    for i in range(6):
        for j in range(i, 6):
            if i < 3 and j < 3 or i == j:
                result.figure(f"C{i + 1}{j + 1}", float(c_gpa[i, j]), "GPa")
    eig = np.linalg.eigvalsh(c_gpa)
    try:
        m = moduli(c_gpa)
    except np.linalg.LinAlgError:
        m = {k: float("nan") for k in ("K_V", "K_R", "K_VRH", "G_V", "G_R", "G_VRH")}
    for key, value in m.items():
        result.figure(key, value, "GPa", {"K": "bulk", "G": "shear"}[key[0]] + " modulus, " + key.split("_")[1])
    result.figure("min_eigenvalue", float(eig.min()), "GPa", "smallest eigenvalue of C")
    result.figure("born_stable", bool(eig.min() > 0), "", "Born criterion: C positive definite")
    result.table(
        "C",
        ["", "1", "2", "3", "4", "5", "6"],
        [[str(i + 1), *(f"{v:.2f}" for v in row)] for i, row in enumerate(c_gpa)],
    )
    result.data = {
        "structure": label,
        "relaxation": relaxation,
        "C_GPa": c_gpa.tolist(),
        "eigenvalues_GPa": eig.tolist(),
        "moduli_GPa": m,
        "volume_A3": float(atoms.get_volume()),
    }
    result.plots["elastic"] = _plot(c_gpa, result.model, Path(options["out_dir"]))
    return result


def _plot(c: np.ndarray, name: str, out_dir: Path) -> str:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 4.4))
    lim = float(np.abs(c).max()) or 1.0
    im = ax.imshow(c, cmap="RdBu_r", vmin=-lim, vmax=lim)
    for i in range(6):
        for j in range(6):
            ax.text(j, i, f"{c[i, j]:.0f}", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(6), [str(k + 1) for k in range(6)])
    ax.set_yticks(range(6), [str(k + 1) for k in range(6)])
    ax.set_title(f"elastic tensor C_ij (GPa) — {name}")
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    return save_plot(fig, out_dir, "elastic")


SPEC = TaskSpec(
    name="elastic",
    run=run,
    description="Elastic tensor C_ij from stress–strain of the relaxed cell; Voigt–Reuss–Hill K, G; Born stability",
    options=(
        *STRUCTURE_OPTIONS,
        TaskOption("strain", "float", 0.005, "Largest strain δ of each Voigt component (±δ)."),
        TaskOption("points", "int", 2, "Strains per component: 2 (±δ) or 4 (±δ, ±δ/2; fourth-order differences)."),
        TaskOption("relax_ions", "bool", True, "Relax the ions at each strained cell (relaxed-ion constants)."),
    ),
)
