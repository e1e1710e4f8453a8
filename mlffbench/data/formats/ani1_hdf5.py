"""ANI-1 release HDF5 (``ani_gdb_s0X.h5``): energies only, one group per molecule.

Energies are stored in Hartree and coordinates in Å (the card says so in ``[units]``; the
conversion happens in :func:`mlffbench.data.loading.load_dataset`). The empty
``coordinatesHE``/``energiesHE`` placeholders and ``smiles`` are ignored. ``forces`` is None.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mlffbench.data.formats._ani_layout import read_ani_layout
from mlffbench.data.structures import StructureSet
from mlffbench.plugin.registry import DatasetCard, FormatSpec


def read(paths: Sequence[Path], card: DatasetCard) -> StructureSet:
    return read_ani_layout(paths, card, forces=False)


FORMAT = FormatSpec(
    name="ani1-hdf5",
    read=read,
    description="ANI-1 release HDF5 (species, coordinates, energies per molecule group; no forces)",
)
