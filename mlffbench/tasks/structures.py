"""Helpers of the property tasks (eos, elastic, phonons): the periodic structure a task starts
from, and its relaxation with ASE's optimisers under a cell filter.

The structure is ``structure`` (an ASE ``Atoms``, or a file ASE reads; ``index`` picks a frame)
when given, else configuration ``config_index`` of ``dataset`` (a name, a path or a card), else
of the model's own dataset (its run's card). It must be periodic along all three cell vectors
and hold only elements the model knows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mlffbench.errors import ConfigError
from mlffbench.tasks.base import TaskOption, calculator_of

GPA_PER_EV_A3 = 160.21766208  # 1 eV/Å³ in GPa

STRUCTURE_OPTIONS = (
    TaskOption(
        "structure", "path", None, "A structure file (any format ASE reads) instead of a dataset configuration."
    ),
    TaskOption("dataset", "str", None, "Dataset of the configuration (default: the model's own)."),
    TaskOption("config_index", "int", 0, "Configuration of the dataset (or frame of the structure file)."),
    TaskOption("relax", "bool", True, "Relax positions and cell first (ASE's FIRE under a FrechetCellFilter)."),
    TaskOption("fmax", "float", 0.005, "Relaxation: largest force (eV/Å) and cell force (eV/Å per cell vector)."),
    TaskOption("max_steps", "int", 300, "Relaxation: at most this many optimiser steps."),
)


def dataset_of(model: Any, dataset: str | None, data_dir: Path | None):
    """(label, the StructureSet) of ``dataset`` or of the model's run."""
    from mlffbench.data.loading import load_dataset
    from mlffbench.data.user import card_of_run, resolve_card

    run = getattr(model, "run", None)
    if dataset:
        card = resolve_card(dataset)
    elif run is not None:
        card = card_of_run(run.config)
    else:
        raise ConfigError("the model names no dataset: give the option dataset=NAME or structure=FILE")
    folder = data_dir or (run.data_dir if run is not None else None)
    return card.name, load_dataset(card, data_dir=folder, download=False)


def start_structure(model: Any, options: dict[str, Any], task: str):
    """(label, ASE Atoms) the task starts from; ConfigError naming the problem where it is not
    periodic in 3D or holds elements the model does not know."""
    from mlffbench.backends.predictor import Configuration
    from mlffbench.tasks.md import atoms_of

    given = options.get("structure")
    index = int(options.get("config_index") or 0)
    if given is not None and not isinstance(given, (str, Path)):
        atoms, label = given.copy(), options.get("label") or given.get_chemical_formula()
    elif given is not None:
        import ase.io

        path = Path(given)
        if not path.is_file():
            raise ConfigError(f"task '{task}': structure file '{path}' not found")
        try:
            atoms = ase.io.read(path, index=index)
        except Exception as exc:  # noqa: BLE001 - any reader error is the file's problem
            raise ConfigError(f"task '{task}': cannot read structure file '{path}': {exc}".splitlines()[0]) from None
        label = f"{path.name}[{index}]"
    else:
        name, ds = dataset_of(model, options.get("dataset"), options.get("data_dir"))
        if not 0 <= index < ds.n_configs:
            raise ConfigError(
                f"task '{task}': configuration index {index} out of range for dataset '{name}' ({ds.n_configs} configurations)"
            )
        atoms = atoms_of(Configuration.from_dataset(ds, index))
        label = f"{name}[{index}]"
    if not np.all(atoms.pbc) or abs(float(np.linalg.det(atoms.cell.array))) < 1e-9:
        raise ConfigError(
            f"task '{task}': {label} is not periodic along all three cell vectors (pbc {atoms.pbc.tolist()}); "
            f"'{task}' needs a periodic crystal"
        )
    species = getattr(model, "species", None)
    if species:
        unknown = sorted({int(z) for z in atoms.numbers} - {int(z) for z in species})
        if unknown:
            from ase.data import chemical_symbols

            names = ", ".join(chemical_symbols[z] for z in unknown)
            raise ConfigError(f"task '{task}': {label} holds elements the model does not know: {names}")
    return label, atoms


def relax(atoms, calc, fmax: float, max_steps: int, cell: bool = True) -> dict[str, Any]:
    """Relax ``atoms`` in place (positions, and the cell where ``cell``) with FIRE; returns the
    steps taken, whether it converged and the final largest force."""
    import io

    from ase.filters import FrechetCellFilter
    from ase.optimize import FIRE

    atoms.calc = calc
    target = FrechetCellFilter(atoms) if cell else atoms
    opt = FIRE(target, logfile=io.StringIO())
    converged = bool(opt.run(fmax=fmax, steps=max_steps))
    forces = np.abs(atoms.get_forces()).max() if len(atoms) else 0.0
    return {
        "steps": int(opt.get_number_of_steps()),
        "converged": converged,
        "fmax_eV_per_A": float(forces),
        "cell": atoms.cell.array.tolist(),
    }


def prepared(model: Any, options: dict[str, Any], task: str):
    """(label, relaxed Atoms with the model's calculator attached, relaxation record)."""
    label, atoms = start_structure(model, options, task)
    calc = calculator_of(model)
    record: dict[str, Any] = {"relaxed": False}
    if options.get("relax", True):
        record = {"relaxed": True, **relax(atoms, calc, float(options["fmax"]), int(options["max_steps"]))}
    atoms.calc = calc
    return label, atoms, record


def strained(atoms, strain: np.ndarray):
    """A copy of ``atoms`` with the cell deformed by (1 + ``strain``) (atoms move with it);
    the calculator stays attached."""
    out = atoms.copy()
    out.calc = atoms.calc
    out.set_cell(atoms.cell.array @ (np.eye(3) + np.asarray(strain)).T, scale_atoms=True)
    return out
