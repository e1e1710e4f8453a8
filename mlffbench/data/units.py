"""Unit conversion to mlffbench's units: eV, Å, eV/Å, eV/Å³. Used by dataset loading only.

Units are declared (a card's ``[units]``, ``--unit``), never guessed. The factors come from
``scipy.constants`` (CODATA), not typed by hand. Stress conventions:

* ``stress_sign = "ase"``: sigma = (1/V) dE/d(strain), tensile positive (ASE, mlffbench);
  ``"vasp"``: pressure positive, the negative of ASE's sigma.
* a per-frame *virial* W (energy units) is turned into stress by the cell volume: sigma = -W / V.
"""

from __future__ import annotations

import functools
from typing import Any

from mlffbench.errors import DataError

_ANGSTROM3 = 1e-30  # m³
# the elementary charge in C, exact since the 2019 SI (equal to scipy.constants.eV, see the tests):
# eV/Å³ in GPa without loading scipy, for the modules that only report stress
GPA_PER_EV_A3 = 1.0 / (1e9 * _ANGSTROM3 / 1.602176634e-19)


@functools.cache
def _factors() -> dict[str, Any]:
    """The CODATA factors, from ``scipy.constants`` (loaded on first use: it takes a while)."""
    import scipy.constants as c

    ev, per_mol = c.eV, 1.0 / c.N_A  # J, mol
    hartree = c.physical_constants["Hartree energy in eV"][0]
    rydberg = c.physical_constants["Rydberg constant times hc in eV"][0]
    kcal_mol, kj_mol = c.kilo * c.calorie * per_mol / ev, c.kilo * per_mol / ev
    bohr = c.physical_constants["Bohr radius"][0] / c.angstrom
    energy = {"eV": 1.0, "meV": 1e-3, "hartree": hartree, "Ry": rydberg, "kcal/mol": kcal_mol, "kJ/mol": kj_mol}
    length = {"angstrom": 1.0, "bohr": bohr, "nm": c.nano / c.angstrom}
    # stress in eV/Å³ per unit: a pressure p [Pa = J/m³] is p * 1e-30 / e eV/Å³
    stress = {
        "eV/angstrom^3": 1.0,
        "GPa": c.giga * _ANGSTROM3 / ev,
        "kbar": c.kilo * c.bar * _ANGSTROM3 / ev,
        "bar": c.bar * _ANGSTROM3 / ev,
    }
    return {
        "HARTREE_EV": hartree,
        "RYDBERG_EV": rydberg,
        "KCAL_MOL_EV": kcal_mol,
        "KJ_MOL_EV": kj_mol,
        "BOHR_ANGSTROM": bohr,
        "ENERGY": energy,
        "LENGTH": length,
        "STRESS": stress,
        "TABLES": {"energy": energy, "length": length, "stress": stress},
    }


_LAZY = (
    "HARTREE_EV",
    "RYDBERG_EV",
    "KCAL_MOL_EV",
    "KJ_MOL_EV",
    "BOHR_ANGSTROM",
    "ENERGY",
    "LENGTH",
    "STRESS",
    "TABLES",
)


def __getattr__(name: str) -> Any:
    """The factor tables and constants (``ENERGY``, ``LENGTH``, ``STRESS``, ``TABLES``,
    ``HARTREE_EV``, ...), computed on first access."""
    if name not in _LAZY:  # the import system asks for __path__ and the like: never load scipy for those
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return _factors()[name]


STRESS_SIGNS = ("ase", "vasp")
# other spellings accepted on input, mapped to the names above
ALIASES = {
    "energy": {
        "ev": "eV",
        "mev": "meV",
        "ha": "hartree",
        "hartree": "hartree",
        "ry": "Ry",
        "rydberg": "Ry",
        "kcal/mol": "kcal/mol",
        "kj/mol": "kJ/mol",
    },
    "length": {"angstrom": "angstrom", "å": "angstrom", "a": "angstrom", "ang": "angstrom", "bohr": "bohr", "nm": "nm"},
    "stress": {
        "ev/angstrom^3": "eV/angstrom^3",
        "ev/a^3": "eV/angstrom^3",
        "ev/å^3": "eV/angstrom^3",
        "ev/å³": "eV/angstrom^3",
        "ev/a3": "eV/angstrom^3",
        "gpa": "GPa",
        "kbar": "kbar",
        "bar": "bar",
    },
}
QUANTITIES = ("energy", "length", "stress")


def canonical(quantity: str, unit: str, where: str = "") -> str:
    """The canonical name of ``unit`` for ``quantity`` (energy, length, stress); DataError otherwise."""
    prefix = f"{where}: " if where else ""
    if quantity not in QUANTITIES:
        raise DataError(f"{prefix}unknown quantity '{quantity}' for a unit (known: {', '.join(QUANTITIES)})")
    table = _factors()["TABLES"][quantity]
    if isinstance(unit, str):
        if unit in table:
            return unit
        found = ALIASES[quantity].get(unit.strip().lower())
        if found:
            return found
    raise DataError(f"{prefix}unknown {quantity} unit '{unit}' (known: {', '.join(table)})")


def _factor(table: dict[str, float], unit: str, what: str) -> float:
    return table[canonical(what, unit)]


def energy_factor(unit: str) -> float:
    return _factor(_factors()["ENERGY"], unit, "energy")


def length_factor(unit: str) -> float:
    return _factor(_factors()["LENGTH"], unit, "length")


def force_factor(energy_unit: str, length_unit: str) -> float:
    return energy_factor(energy_unit) / length_factor(length_unit)


def stress_factor(energy_unit: str, length_unit: str) -> float:
    """Factor of a stress in energy/length³ of the given units."""
    return energy_factor(energy_unit) / length_factor(length_unit) ** 3


def pressure_factor(unit: str) -> float:
    """Factor of a stress declared in a pressure unit (GPa, kbar, bar) or eV/Å³."""
    return _factor(_factors()["STRESS"], unit, "stress")


def stress_sign(sign: str, where: str = "") -> float:
    """+1 for ASE's sign (tensile positive), -1 for VASP's (pressure positive)."""
    if sign not in STRESS_SIGNS:
        prefix = f"{where}: " if where else ""
        raise DataError(f"{prefix}unknown stress_sign '{sign}' (known: {', '.join(STRESS_SIGNS)})")
    return 1.0 if sign == "ase" else -1.0
