"""The dataset layer: cards (``cards/*.toml``), format adapters, locating/downloading and
verifying files, unit conversion, the parsed-set cache and summaries.

Typical use::

    from mlffbench.data import load_dataset, describe
    ds = load_dataset("ean")               # StructureSet in eV, Å, eV/Å, eV/Å³
    describe(ds, get_registry().dataset("ean"))
"""

from mlffbench.data.cards import builtin_cards, load_card
from mlffbench.data.fetch import locate_files
from mlffbench.data.loading import config_roles, default_cache_dir, default_data_dir, load_dataset
from mlffbench.data.summary import describe

__all__ = [
    "builtin_cards",
    "config_roles",
    "default_cache_dir",
    "default_data_dir",
    "describe",
    "load_card",
    "load_dataset",
    "locate_files",
]
