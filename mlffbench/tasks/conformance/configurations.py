"""The real configurations the suite runs on by default: a periodic one and a free molecule."""

from __future__ import annotations

from mlffbench.backends.predictor import Configuration
from mlffbench.data.loading import load_dataset
from mlffbench.errors import ConfigError

# (label, dataset card, configuration index): EAN, the periodic ionic liquid (225 atoms,
# H C N O, 12.9 Å box), and rMD17 ethanol (9 atoms, C H O, no cell)
STANDARD = (("EAN[0]", "ean", 0), ("ethanol[0]", "rmd17-ethanol", 0))


def dataset_configurations(dataset, indices=(0,), data_dir=None, cache_dir=None) -> list[tuple[str, Configuration]]:
    """Configurations ``indices`` of ``dataset`` (a name, a path or a card) as (label, configuration)."""

    ds = load_dataset(dataset, data_dir=data_dir, cache_dir=cache_dir, download=False)
    dataset = getattr(dataset, "name", dataset)
    out = []
    for i in indices:
        if not 0 <= int(i) < ds.n_configs:
            raise ConfigError(
                f"configuration index {i} out of range for dataset '{dataset}' ({ds.n_configs} configurations)"
            )
        out.append((f"{dataset}[{int(i)}]", Configuration.from_dataset(ds, int(i))))
    return out


def standard_configurations(data_dir=None, cache_dir=None) -> list[tuple[str, Configuration]]:
    """EAN configuration 0 (periodic) and rMD17 ethanol configuration 0 (free molecule)."""
    out = []
    for label, name, index in STANDARD:
        ((_, conf),) = dataset_configurations(name, (index,), data_dir, cache_dir)
        out.append((label, conf))
    return out
