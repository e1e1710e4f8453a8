"""The built-in dataset plugin: every format adapter and every dataset card shipped with mlffbench.

Registered through the entry point ``builtin_datasets`` in the group ``mlffbench``, exactly as a
third-party plugin would be.
"""

from __future__ import annotations

from mlffbench import hookimpl
from mlffbench.data.cards import builtin_cards
from mlffbench.data.formats import ani1_hdf5, comp6_hdf5, deepmd_npy, extxyz, neuralil_jsonl, rmd17_npz

FORMATS = (
    neuralil_jsonl.FORMAT,
    ani1_hdf5.FORMAT,
    comp6_hdf5.FORMAT,
    rmd17_npz.FORMAT,
    extxyz.FORMAT,
    extxyz.ASE_FORMAT,
    deepmd_npy.FORMAT,
)


@hookimpl
def mlffbench_formats(register):
    """Registers the built-in file-format adapters."""
    for spec in FORMATS:
        register(spec)


@hookimpl
def mlffbench_datasets(register):
    """Registers the built-in dataset cards (``cards/*.toml``)."""
    for card in builtin_cards():
        register(card)
