"""A third-party mlffbench plugin, as small as it gets: a text format and one dataset.

The dataset ``example-h2`` is an H2 molecule stretched along x, with Morse-potential energies
(kcal/mol) and forces (kcal/mol/Å); ``write_example_data(data_dir)`` writes its one file. Each
line of the format "example-h2-text" is: energy, then x y z of both atoms, then the force on each.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np

from mlffbench import hookimpl
from mlffbench.data.structures import concatenate, from_arrays
from mlffbench.errors import DataError
from mlffbench.plugin.registry import DataFile, DatasetCard, FormatSpec

FILE = "example_h2/h2_morse.txt"
DEPTH, WIDTH, R0 = 109.5, 1.94, 0.741  # Morse D (kcal/mol), a (1/Å), r0 (Å)
DISTANCES = [0.60 + 0.02 * i for i in range(21)]


def example_text() -> str:
    lines = ["# E[kcal/mol] x1 y1 z1 x2 y2 z2 fx1 fy1 fz1 fx2 fy2 fz2"]
    for r in DISTANCES:
        damp = math.exp(-WIDTH * (r - R0))
        energy = DEPTH * (1.0 - damp) ** 2
        de_dr = 2.0 * DEPTH * WIDTH * (1.0 - damp) * damp
        values = [energy, 0.0, 0.0, 0.0, r, 0.0, 0.0, de_dr, 0.0, 0.0, -de_dr, 0.0, 0.0]
        lines.append(" ".join(f"{v:.10f}" for v in values))
    return "\n".join(lines) + "\n"


def write_example_data(data_dir) -> Path:
    target = Path(data_dir) / FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(example_text().encode())
    return target


def read(paths, card):
    sets = []
    for index, path in enumerate(paths):
        try:
            table = np.loadtxt(path, ndmin=2)
        except ValueError as exc:
            raise DataError(f"{path}: not a table of numbers ({exc})") from None
        if table.shape[1] != 13:
            raise DataError(f"{path}: expected 13 columns, found {table.shape[1]}")
        c = table.shape[0]
        sets.append(
            from_arrays(
                numbers=np.ones(2 * c),
                positions=table[:, 1:7].reshape(-1, 3),
                n_atoms=np.full(c, 2),
                energy=table[:, 0],
                forces=table[:, 7:13].reshape(-1, 3),
                origin=np.zeros(c),
                origin_names=(card.files[index].path,),
                name=card.name,
            )
        )
    return concatenate(sets, name=card.name)


@hookimpl
def mlffbench_formats(register):
    register(FormatSpec(name="example-h2-text", read=read, description="H2 curve as a text table"))


@hookimpl
def mlffbench_datasets(register):
    register(
        DatasetCard(
            name="example-h2",
            format="example-h2-text",
            files=(DataFile(path=FILE, sha256=hashlib.sha256(example_text().encode()).hexdigest()),),
            units={"energy": "kcal/mol", "length": "angstrom"},
            description="H2 Morse curve (test fixture of a third-party plugin)",
            license="CC0-1.0",
            family="example",
            split={"policy": "random", "fractions": [0.8, 0.1, 0.1], "seed": 0},
        )
    )
