"""Unit conversion to mlffbench's units: eV, Å, eV/Å, eV/Å³. Used by dataset loading only."""

from __future__ import annotations

from mlffbench.errors import DataError

HARTREE_EV = 27.211386245988  # CODATA 2018
KCAL_MOL_EV = 0.0433641043  # 1 kcal/mol in eV
KJ_MOL_EV = 0.0103642688
BOHR_ANGSTROM = 0.529177210903

ENERGY = {"eV": 1.0, "hartree": HARTREE_EV, "kcal/mol": KCAL_MOL_EV, "kJ/mol": KJ_MOL_EV, "meV": 1e-3}
LENGTH = {"angstrom": 1.0, "bohr": BOHR_ANGSTROM, "nm": 10.0}


def _factor(table: dict[str, float], unit: str, what: str) -> float:
    if unit not in table:
        raise DataError(f"unknown {what} unit '{unit}' (known: {', '.join(table)})")
    return table[unit]


def energy_factor(unit: str) -> float:
    return _factor(ENERGY, unit, "energy")


def length_factor(unit: str) -> float:
    return _factor(LENGTH, unit, "length")


def force_factor(energy_unit: str, length_unit: str) -> float:
    return energy_factor(energy_unit) / length_factor(length_unit)


def stress_factor(energy_unit: str, length_unit: str) -> float:
    return energy_factor(energy_unit) / length_factor(length_unit) ** 3
