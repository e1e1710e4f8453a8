"""Error metrics, computed once here for every backend (numpy)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class ErrorAccumulator:
    """Collects predictions batch by batch; ``result()`` gives the metrics dict.

    energy_*_per_atom: |ΔE|/N per configuration, averaged over configurations (eV/atom);
    force_*: over all force components of all real atoms (eV/Å).
    """

    de_per_atom: list[np.ndarray] = field(default_factory=list)
    df: list[np.ndarray] = field(default_factory=list)
    pred_forces: list[np.ndarray] = field(default_factory=list)
    ref_forces: list[np.ndarray] = field(default_factory=list)
    keep_forces: bool = False

    def add(self, batch, energy: np.ndarray, forces: np.ndarray | None, has_energy: bool, has_forces: bool) -> None:
        graphs = np.asarray(batch.graph_mask)
        if has_energy:
            de = (np.asarray(energy)[graphs] - batch.energy[graphs]) / batch.n_atoms[graphs]
            self.de_per_atom.append(de)
        if has_forces and forces is not None:
            atoms = np.asarray(batch.atom_mask)
            pf, rf = np.asarray(forces)[atoms], batch.forces[atoms]
            self.df.append((pf - rf).reshape(-1))
            if self.keep_forces:
                self.pred_forces.append(pf)
                self.ref_forces.append(rf)

    def result(self) -> dict[str, float]:
        out: dict[str, float] = {}
        if self.de_per_atom:
            de = np.concatenate(self.de_per_atom)
            out["energy_mae_per_atom"] = float(np.mean(np.abs(de)))
            out["energy_rmse_per_atom"] = float(np.sqrt(np.mean(de**2)))
        if self.df:
            df = np.concatenate(self.df)
            out["force_mae"] = float(np.mean(np.abs(df)))
            out["force_rmse"] = float(np.sqrt(np.mean(df**2)))
        return out


def zero_force_baseline(forces: np.ndarray) -> float:
    """Force MAE of a model that predicts zero force (eV/Å)."""
    return float(np.mean(np.abs(forces)))
