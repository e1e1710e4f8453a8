"""COMP6 benchmark HDF5 (e.g. ``s66x8_wb97x6-31gd.h5``): one group per molecule or dimer curve.

Like ANI-1 plus ``forces`` (n_conf, n_atoms, 3). COMP6 stores the energy **gradient** dE/dx under
the name ``forces`` (verified along the S66x8 dissociation curves), so by default the sign is
flipped to give physical forces F = -dE/dx. A card may set ``options.forces_are_gradients =
false`` for files that store true forces. Charge-model extras (cm5, hirshfeld, ...) are ignored.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mlffbench.data.formats._ani_layout import read_ani_layout
from mlffbench.data.structures import StructureSet
from mlffbench.errors import DataError
from mlffbench.plugin.registry import DatasetCard, FormatSpec


def read(paths: Sequence[Path], card: DatasetCard) -> StructureSet:
    gradients = card.options.get("forces_are_gradients", True)
    if not isinstance(gradients, bool):
        raise DataError(f"dataset card '{card.name}': options.forces_are_gradients must be true or false")
    return read_ani_layout(paths, card, forces=True, force_sign=-1.0 if gradients else 1.0)


FORMAT = FormatSpec(
    name="comp6-hdf5",
    read=read,
    description="COMP6 HDF5 (ANI layout with forces stored as energy gradients; sign flipped on read)",
)
