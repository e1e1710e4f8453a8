"""Error metrics, computed once here for every backend (numpy)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mlffbench.data.units import GPA_PER_EV_A3

GPA = GPA_PER_EV_A3  # GPa per eV/Å³ (tables and MLflow show stress errors in GPa)


@dataclass
class ErrorAccumulator:
    """Collects predictions batch by batch; ``result()`` gives the metrics dict.

    energy_*_per_atom: |ΔE|/N per configuration, averaged over configurations (eV/atom);
    force_*: over all force components of all real atoms (eV/Å);
    stress_*: over the 9 components of the stress of every periodic configuration with a
    reference stress (``batch.stress_mask``), eV/Å³.
    """

    de_per_atom: list[np.ndarray] = field(default_factory=list)
    df: list[np.ndarray] = field(default_factory=list)
    pred_forces: list[np.ndarray] = field(default_factory=list)
    ref_forces: list[np.ndarray] = field(default_factory=list)
    ds: list[np.ndarray] = field(default_factory=list)
    keep_forces: bool = False

    def add(
        self,
        batch,
        energy: np.ndarray,
        forces: np.ndarray | None,
        has_energy: bool,
        has_forces: bool,
        stress: np.ndarray | None = None,
    ) -> None:
        """One batch's predictions; ``stress`` (G, 3, 3) eV/Å³ where stress errors are wanted."""
        graphs = np.asarray(batch.graph_mask)
        atoms = np.asarray(batch.atom_mask)
        mask = np.asarray(batch.stress_mask) & graphs if stress is not None else None
        self.add_values(
            energy=np.asarray(energy)[graphs] if has_energy else None,
            energy_ref=batch.energy[graphs],
            n_atoms=batch.n_atoms[graphs],
            forces=np.asarray(forces)[atoms] if has_forces and forces is not None else None,
            forces_ref=batch.forces[atoms],
            stress=None if stress is None else np.asarray(stress)[mask],
            stress_ref=None if stress is None else batch.stress[mask],
        )

    def add_values(
        self,
        energy: np.ndarray | None = None,
        energy_ref: np.ndarray | None = None,
        n_atoms: np.ndarray | None = None,
        forces: np.ndarray | None = None,
        forces_ref: np.ndarray | None = None,
        stress: np.ndarray | None = None,
        stress_ref: np.ndarray | None = None,
    ) -> None:
        """Predictions of real configurations and atoms (no padding): energies (C,) eV with their
        references and atom counts, forces (A, 3) eV/Å, stress (S, 3, 3) eV/Å³ of the
        configurations with a reference stress; a part left None is not counted."""
        if energy is not None:
            self.de_per_atom.append((np.asarray(energy) - energy_ref) / n_atoms)
        if forces is not None:
            pf, rf = np.asarray(forces), np.asarray(forces_ref)
            self.df.append((pf - rf).reshape(-1))
            if self.keep_forces:
                self.pred_forces.append(pf)
                self.ref_forces.append(rf)
        if stress is not None:
            self.ds.append((np.asarray(stress) - stress_ref).reshape(-1))

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
        ds = np.concatenate(self.ds) if self.ds else np.zeros(0)
        if ds.size:
            out["stress_mae"] = float(np.mean(np.abs(ds)))
            out["stress_rmse"] = float(np.sqrt(np.mean(ds**2)))
        return out


def constant_stress_baseline(train_stress: np.ndarray, stress: np.ndarray) -> float:
    """Stress MAE (eV/Å³, over the 9 components) on ``stress`` (C, 3, 3) of a model that
    predicts the mean training stress ``train_stress`` (C', 3, 3) for every configuration."""
    mean = np.asarray(train_stress, np.float64).reshape(-1, 3, 3).mean(axis=0)
    return float(np.mean(np.abs(np.asarray(stress, np.float64).reshape(-1, 3, 3) - mean)))


def zero_force_baseline(forces: np.ndarray) -> float:
    """Force MAE of a model that predicts zero force (eV/Å)."""
    return float(np.mean(np.abs(forces)))
