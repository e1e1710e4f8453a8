"""Unit conversion to mlffbench's units: eV, Å, eV/Å, eV/Å³. Used by dataset loading only.

Units are declared (a card's ``[units]``, ``--unit``), never guessed. The factors come from
``scipy.constants`` (CODATA), not typed by hand. Stress conventions:

* ``stress_sign = "ase"``: sigma = (1/V) dE/d(strain), tensile positive (ASE, mlffbench);
  ``"vasp"``: pressure positive, the negative of ASE's sigma.
* a per-frame *virial* W (energy units) is turned into stress by the cell volume: sigma = -W / V.
"""

from __future__ import annotations

import scipy.constants as _c

from mlffbench.errors import DataError

_EV = _c.eV  # J
_PER_MOL = 1.0 / _c.N_A
_ANGSTROM3 = 1e-30  # m³

HARTREE_EV = _c.physical_constants["Hartree energy in eV"][0]
RYDBERG_EV = _c.physical_constants["Rydberg constant times hc in eV"][0]
KCAL_MOL_EV = _c.kilo * _c.calorie * _PER_MOL / _EV
KJ_MOL_EV = _c.kilo * _PER_MOL / _EV
BOHR_ANGSTROM = _c.physical_constants["Bohr radius"][0] / _c.angstrom

ENERGY = {"eV": 1.0, "meV": 1e-3, "hartree": HARTREE_EV, "Ry": RYDBERG_EV, "kcal/mol": KCAL_MOL_EV, "kJ/mol": KJ_MOL_EV}
LENGTH = {"angstrom": 1.0, "bohr": BOHR_ANGSTROM, "nm": _c.nano / _c.angstrom}
# stress in eV/Å³ per unit: a pressure p [Pa = J/m³] is p * 1e-30 / e eV/Å³
STRESS = {
    "eV/angstrom^3": 1.0,
    "GPa": _c.giga * _ANGSTROM3 / _EV,
    "kbar": _c.kilo * _c.bar * _ANGSTROM3 / _EV,
    "bar": _c.bar * _ANGSTROM3 / _EV,
}
STRESS_SIGNS = ("ase", "vasp")
# other spellings accepted on input, mapped to the names above
ALIASES = {
    "energy": {"ev": "eV", "mev": "meV", "ha": "hartree", "hartree": "hartree", "ry": "Ry", "rydberg": "Ry",
               "kcal/mol": "kcal/mol", "kj/mol": "kJ/mol"},
    "length": {"angstrom": "angstrom", "å": "angstrom", "a": "angstrom", "ang": "angstrom", "bohr": "bohr", "nm": "nm"},
    "stress": {"ev/angstrom^3": "eV/angstrom^3", "ev/a^3": "eV/angstrom^3", "ev/å^3": "eV/angstrom^3",
               "ev/å³": "eV/angstrom^3", "ev/a3": "eV/angstrom^3", "gpa": "GPa", "kbar": "kbar", "bar": "bar"},
}
TABLES = {"energy": ENERGY, "length": LENGTH, "stress": STRESS}


def canonical(quantity: str, unit: str, where: str = "") -> str:
    """The canonical name of ``unit`` for ``quantity`` (energy, length, stress); DataError otherwise."""
    prefix = f"{where}: " if where else ""
    if quantity not in TABLES:
        raise DataError(f"{prefix}unknown quantity '{quantity}' for a unit (known: {', '.join(TABLES)})")
    table = TABLES[quantity]
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
    return _factor(ENERGY, unit, "energy")


def length_factor(unit: str) -> float:
    return _factor(LENGTH, unit, "length")


def force_factor(energy_unit: str, length_unit: str) -> float:
    return energy_factor(energy_unit) / length_factor(length_unit)


def stress_factor(energy_unit: str, length_unit: str) -> float:
    """Factor of a stress in energy/length³ of the given units."""
    return energy_factor(energy_unit) / length_factor(length_unit) ** 3


def pressure_factor(unit: str) -> float:
    """Factor of a stress declared in a pressure unit (GPa, kbar, bar) or eV/Å³."""
    return _factor(STRESS, unit, "stress")


def stress_sign(sign: str, where: str = "") -> float:
    """+1 for ASE's sign (tensile positive), -1 for VASP's (pressure positive)."""
    if sign not in STRESS_SIGNS:
        prefix = f"{where}: " if where else ""
        raise DataError(f"{prefix}unknown stress_sign '{sign}' (known: {', '.join(STRESS_SIGNS)})")
    return 1.0 if sign == "ase" else -1.0
