"""Models with planted defects: wrappers around a predictor that each break one physical
law, so that the suite can be shown to catch them (and a user can try it on their model).

* :class:`BrokenRotation`: adds c·Σ(x_i − x̄)², an energy that depends on the orientation
  (translation and permutation invariant, forces consistent with it).
* :class:`CutoffJump`: adds a constant per pair within the cutoff: the energy steps when a
  pair crosses it (forces unchanged: they are the gradient everywhere else).
* :class:`WrongForceSign`: returns +∇E instead of −∇E.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mlffbench.backends.predictor import Configuration, Prediction, Predictor
from mlffbench.graph.neighbors import neighbor_list
from mlffbench.tasks.conformance.checks import ModelUnderTest


class Wrapped(Predictor):
    def __init__(self, inner: Predictor) -> None:
        self.inner = inner
        self.species, self.cutoff, self.dtype = inner.species, inner.cutoff, inner.dtype

    def predict(self, configs: Sequence[Configuration], stress: bool = False, shape=None) -> list[Prediction]:
        return [self.change(c, p) for c, p in zip(configs, self.inner.predict(configs, stress, shape), strict=True)]

    def change(self, config: Configuration, pred: Prediction) -> Prediction:
        return pred


class BrokenRotation(Wrapped):
    def __init__(self, inner: Predictor, strength: float = 0.01) -> None:
        super().__init__(inner)
        self.strength = strength

    def change(self, config, pred):
        x = config.positions[:, 0] - config.positions[:, 0].mean()
        forces = pred.forces.copy()
        forces[:, 0] -= 2 * self.strength * x
        return Prediction(pred.energy + self.strength * float(np.sum(x**2)), forces, pred.stress)


class CutoffJump(Wrapped):
    def __init__(self, inner: Predictor, step: float = 1e-3) -> None:
        super().__init__(inner)
        self.step = step

    def change(self, config, pred):

        senders, _, _ = neighbor_list(config.positions, config.cell, config.pbc, self.cutoff)
        return Prediction(pred.energy + self.step * len(senders) / 2, pred.forces, pred.stress)


class WrongForceSign(Wrapped):
    def change(self, config, pred):
        return Prediction(pred.energy, -pred.forces, pred.stress)


DEFECTS = {"rotation": BrokenRotation, "cutoff": CutoffJump, "force-sign": WrongForceSign}


def planted(model: ModelUnderTest, defect: str) -> ModelUnderTest:
    """``model`` with the defect ``defect`` (a key of ``DEFECTS``) planted in every predictor."""
    wrap = DEFECTS[defect]

    def wrapped_save_load(folder):
        return wrap(model.save_load(folder))

    from_seed = model.from_seed
    return ModelUnderTest(
        predictor=wrap(model.predictor),
        name=f"{model.name} + {defect} defect",
        hard_cutoff=False,
        save_load=wrapped_save_load if model.save_load else None,
        from_seed=(lambda s: wrap(from_seed(s))) if from_seed else None,
    )
