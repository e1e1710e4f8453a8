"""Chemical element symbols and atomic numbers."""

from __future__ import annotations

from mlffbench.errors import DataError

SYMBOLS = [
    "X",
    "H",
    "He",
    "Li",
    "Be",
    "B",
    "C",
    "N",
    "O",
    "F",
    "Ne",
    "Na",
    "Mg",
    "Al",
    "Si",
    "P",
    "S",
    "Cl",
    "Ar",
    "K",
    "Ca",
    "Sc",
    "Ti",
    "V",
    "Cr",
    "Mn",
    "Fe",
    "Co",
    "Ni",
    "Cu",
    "Zn",
    "Ga",
    "Ge",
    "As",
    "Se",
    "Br",
    "Kr",
    "Rb",
    "Sr",
    "Y",
    "Zr",
    "Nb",
    "Mo",
    "Tc",
    "Ru",
    "Rh",
    "Pd",
    "Ag",
    "Cd",
    "In",
    "Sn",
    "Sb",
    "Te",
    "I",
    "Xe",
    "Cs",
    "Ba",
    "La",
    "Ce",
    "Pr",
    "Nd",
    "Pm",
    "Sm",
    "Eu",
    "Gd",
    "Tb",
    "Dy",
    "Ho",
    "Er",
    "Tm",
    "Yb",
    "Lu",
    "Hf",
    "Ta",
    "W",
    "Re",
    "Os",
    "Ir",
    "Pt",
    "Au",
    "Hg",
    "Tl",
    "Pb",
    "Bi",
    "Po",
    "At",
    "Rn",
    "Fr",
    "Ra",
    "Ac",
    "Th",
    "Pa",
    "U",
    "Np",
    "Pu",
    "Am",
    "Cm",
    "Bk",
    "Cf",
    "Es",
    "Fm",
    "Md",
    "No",
    "Lr",
    "Rf",
    "Db",
    "Sg",
    "Bh",
    "Hs",
    "Mt",
    "Ds",
    "Rg",
    "Cn",
    "Nh",
    "Fl",
    "Mc",
    "Lv",
    "Ts",
    "Og",
]
NUMBERS = {s: z for z, s in enumerate(SYMBOLS) if z > 0}


def atomic_number(symbol: str, where: str = "") -> int:
    """Atomic number of an element symbol; a clear error names the symbol otherwise."""
    key = symbol.strip()
    key = key[:1].upper() + key[1:].lower()
    if key not in NUMBERS:
        suffix = f" in {where}" if where else ""
        raise DataError(f"unknown element '{symbol}'{suffix}")
    return NUMBERS[key]


def symbol(number: int) -> str:
    if not 0 < int(number) < len(SYMBOLS):
        raise DataError(f"unknown atomic number {number}")
    return SYMBOLS[int(number)]


def formula(numbers) -> str:
    """Hill-ordered formula (C first, then H, then alphabetical), e.g. 'C2H6O'."""
    counts: dict[str, int] = {}
    for z in numbers:
        s = symbol(int(z))
        counts[s] = counts.get(s, 0) + 1
    order = sorted(counts, key=lambda s: (s != "C", s != "H", s)) if "C" in counts else sorted(counts)
    return "".join(f"{s}{counts[s] if counts[s] > 1 else ''}" for s in order)
