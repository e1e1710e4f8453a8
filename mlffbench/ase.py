"""An ASE calculator for any run: ``mlffbench.ase.calculator(RUN_DIR)``.

Energy (eV), forces (eV/Å) and, for fully periodic structures, stress (eV/Å³, Voigt order
xx yy zz yz xz xy, ASE's sign: (1/V) dE/dε) of the model the run trained (its ``best``
checkpoint by default), through the same restore path as every other command
(:meth:`mlffbench.runs.trained.TrainedModel.from_run`). Neighbour lists are rebuilt at every call, so atoms may
move freely (MD, relaxations).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes
from ase.stress import full_3x3_to_voigt_6_stress

from mlffbench.backends.predictor import Configuration, Predictor
from mlffbench.graph.batching import bucket
from mlffbench.runs.trained import TrainedModel


class MlffbenchCalculator(Calculator):
    """ASE calculator around a :class:`mlffbench.backends.predictor.Predictor`.

    Structures are padded to one shape (the first structure's atoms and its neighbour count
    plus ``slack``, grown by that factor when a structure no longer fits), so that a compiled
    model (JAX) compiles once for a whole trajectory instead of at every bucket boundary.
    """

    # ASE declares it an instance attribute (a ClassVar annotation clashes with that)
    implemented_properties: list[str] = ["energy", "free_energy", "forces", "stress"]  # noqa: RUF012

    def __init__(self, predictor: Predictor, slack: float = 0.25, **kwargs) -> None:
        super().__init__(**kwargs)
        self.predictor = predictor
        self.slack = float(slack)
        self.shape: tuple[int, int] | None = None
        self.n_shapes = 0  # padded shapes used so far (each one compiles a JAX model once)

    def _padded(self, config: Configuration) -> tuple[int, int]:

        atoms, edges = self.predictor.common_shape([config])
        if self.shape is None or atoms > self.shape[0] or edges > self.shape[1]:
            grow = 1.0 + self.slack
            self.shape = (max(atoms, self.shape[0] if self.shape else 0), bucket(int(edges * grow) + 16))
            self.n_shapes += 1
        return self.shape

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        config = Configuration.from_atoms(self.atoms)
        want_stress = "stress" in properties
        if want_stress and not config.pbc.all():
            raise PropertyNotImplementedError("stress needs a structure periodic along all three cell vectors")
        pred = self.predictor.predict_one(config, stress=want_stress, shape=self._padded(config))
        self.results = {"energy": pred.energy, "free_energy": pred.energy, "forces": np.asarray(pred.forces)}
        if want_stress:
            self.results["stress"] = full_3x3_to_voigt_6_stress(np.asarray(pred.stress))


def calculator(run_dir: str | Path, checkpoint: str = "best", dtype: str | None = None) -> MlffbenchCalculator:
    """The ASE calculator of the model trained in ``run_dir`` (``checkpoint``: best or last;
    ``dtype``: float32/float64 instead of the run's precision)."""

    return MlffbenchCalculator(TrainedModel.from_run(Path(run_dir), checkpoint=checkpoint, dtype=dtype).predictor())
