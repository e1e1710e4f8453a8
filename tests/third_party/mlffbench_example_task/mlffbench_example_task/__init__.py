"""A third-party task: the pressure of the model on a configuration of its dataset, scaled cells.

Registered only through the entry point ``example_task`` in the group ``mlffbench``;
``mlffbench task pressure RUN_DIR`` runs it and ``mlffbench compare`` shows its figures.
"""

from __future__ import annotations

import numpy as np

from mlffbench import hookimpl
from mlffbench.tasks.base import TaskOption, TaskResult, TaskSpec, calculator_of
from mlffbench.tasks.structures import GPA_PER_EV_A3, start_structure


def run(model, options) -> TaskResult:
    label, atoms = start_structure(model, options, "pressure")
    atoms.calc = calculator_of(model)
    scale = float(options["scale"])
    atoms.set_cell(atoms.cell.array * scale, scale_atoms=True)
    stress = atoms.get_stress(voigt=True)
    result = TaskResult("pressure", note=f"{label} scaled by {scale:g}")
    result.figure("pressure", float(-np.mean(stress[:3]) * GPA_PER_EV_A3), "GPa", "−trace(σ)/3")
    result.figure("energy_per_atom", float(atoms.get_potential_energy() / len(atoms)), "eV/atom")
    return result


@hookimpl
def mlffbench_tasks(register):
    register(
        TaskSpec(
            name="pressure",
            run=run,
            description="Pressure of the model on a dataset configuration (an example third-party task)",
            options=(
                TaskOption("dataset", "str", None, "Dataset (default: the model's)."),
                TaskOption("config_index", "int", 0, "Configuration."),
                TaskOption("structure", "path", None, "A structure file instead."),
                TaskOption("scale", "float", 1.0, "Scale the cell lengths by this factor."),
            ),
        )
    )
