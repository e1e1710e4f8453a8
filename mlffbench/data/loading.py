"""Load a dataset by name: card → files (located, downloaded, verified) → format adapter →
unit conversion → validation → HDF5 cache.

This module is the only place where units are converted: adapters return the card's units,
:func:`convert_units` turns them into eV, Å, eV/Å and eV/Å³.

The parsed set is cached as HDF5 under the cache directory, keyed by the card name, the
format, the units and options, the sha256 of every source file and :data:`FORMAT_VERSION`
(bump it when an adapter's output changes). A cache file that cannot be read, fails
validation or whose fingerprint differs from the one recorded in it is ignored and rewritten.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import uuid
from pathlib import Path

import numpy as np

from mlffbench import settings
from mlffbench.data import units
from mlffbench.data.fetch import file_sha256, locate_files
from mlffbench.data.structures import StructureSet
from mlffbench.errors import DataError, PluginError
from mlffbench.plugin.manager import get_plugins
from mlffbench.plugin.registry import DatasetCard

log = logging.getLogger(__name__)

FORMAT_VERSION = "mlffbench-datasets-2"


def default_data_dir(explicit: str | os.PathLike | None = None) -> Path:
    """Where original dataset files live: ``explicit`` > $MLFFBENCH_DATA_DIR > settings files >
    ~/.cache/mlffbench/data (see :mod:`mlffbench.settings`)."""
    return settings.path("data_dir", explicit)


def default_cache_dir() -> Path:
    """Where parsed sets and hashes are cached: $MLFFBENCH_CACHE_DIR > ~/.cache/mlffbench/cache."""
    return settings.cache_dir()


def resolve_card(name_or_card: str | DatasetCard) -> DatasetCard:
    """A card object as is; a name or a path as :func:`mlffbench.data.user.resolve_card`."""
    if isinstance(name_or_card, DatasetCard):
        return name_or_card
    from mlffbench.data.user import resolve_card as resolve

    return resolve(str(name_or_card))


def load_dataset(
    name_or_card: str | DatasetCard,
    data_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    download: bool = True,
) -> StructureSet:
    """The dataset as a validated StructureSet in eV, Å, eV/Å, eV/Å³ (cached after the first load)."""

    card = resolve_card(name_or_card)
    plugins = get_plugins()
    fmt = plugins.registry.format(card.format)
    data_dir = default_data_dir(data_dir)
    cache_root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()

    if card.root:  # a user's card: its files beside the card (or absolute), never downloaded
        data_dir = Path(card.root)
        for entry in card.files:
            if not (data_dir / entry.path).is_file():
                raise DataError(
                    f"{data_dir / entry.path}: file not found (listed in dataset card {card.source or card.name})"
                )
    paths = locate_files(card, data_dir, download and not card.root, cache_root)
    hashes = [file_sha256(p, cache_root) for p in paths]
    provider = plugins.registry.provider.get(("formats", card.format), "")
    versions = {i.name: i.version for i in plugins.info}
    key = cache_key(card, hashes, f"{provider}=={versions.get(provider, '?')}")
    safe_name = re.sub(r"[^A-Za-z0-9._-]", "_", card.name)
    cache_file = cache_root / "datasets" / f"{safe_name}-{key[:24]}.h5"

    cached = _read_cache(cache_file, key, card.name)
    if cached is not None:
        return cached

    ds = fmt.read(paths, card)
    if not isinstance(ds, StructureSet):
        raise PluginError(f"format '{card.format}' returned {type(ds).__name__}, not a StructureSet")
    ds = convert_units(ds, card)
    ds = dataclasses.replace(ds, name=card.name).validate(card.name)
    _write_cache(cache_file, ds, key)
    return ds


def cache_key(card: DatasetCard, hashes: list[str], format_provider: str = "") -> str:
    """sha256 over everything that determines the parsed set."""
    payload = {
        "version": FORMAT_VERSION,
        "name": card.name,
        "format": card.format,
        "format_provider": format_provider,
        "units": dict(card.units),
        "options": card.options,
        "files": [[f.path, f.role, h] for f, h in zip(card.files, hashes, strict=True)],
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def convert_units(ds: StructureSet, card: DatasetCard) -> StructureSet:
    """From the card's units to eV, Å, eV/Å, eV/Å³, and stress to ASE's sign.

    Stress is in ``units.stress`` when the card declares it, else in energy/length³ of the card
    (a virial turned into stress by the adapter; or an undeclared stress, kept as read — see
    :func:`require_stress_units`); ``options.stress_sign = "vasp"`` flips its sign.
    """
    energy_unit = card.units.get("energy", "eV")
    length_unit = card.units.get("length", "angstrom")
    e = units.energy_factor(energy_unit)
    length = units.length_factor(length_unit)
    f = units.force_factor(energy_unit, length_unit)
    if "stress" in card.units:
        s = units.pressure_factor(card.units["stress"])
    else:
        s = units.stress_factor(energy_unit, length_unit)
    s *= units.stress_sign(card.options.get("stress_sign", "ase"), f"dataset card {card.source or card.name}")

    def scale(arr, factor):
        return arr if arr is None or factor == 1.0 else arr * factor

    return dataclasses.replace(
        ds,
        positions=scale(ds.positions, length),
        cell=scale(ds.cell, length),
        energy=scale(ds.energy, e),
        forces=scale(ds.forces, f),
        stress=scale(ds.stress, s),
    )


def stress_declared(card: DatasetCard) -> bool:
    """Whether the card says what unit its stress is in (``units.stress``, or a virial in energy units)."""
    return "stress" in card.units or "virial_key" in card.options


def require_stress_units(card: DatasetCard) -> None:
    """Stop with one line naming the file when stress is to be used but its unit is not declared."""
    if stress_declared(card):
        return
    first = card.files[0].path if card.files else card.name
    where = str(Path(card.root) / first) if card.root else f"dataset '{card.name}' ({first})"
    raise DataError(
        f'{where}: holds stress but declares no stress unit; declare it (\'[units] stress = "GPa"|"kbar"|'
        f'"bar"|"eV/angstrom^3"\' in the card or --unit stress=..., and --stress-sign vasp if pressure is positive)'
    )


def limit_configs(ds: StructureSet, card: DatasetCard, max_configs: int) -> StructureSet:
    """The quick-run subset of ``--max-configs N``: the first N configurations; for a dataset
    with its own train/test files, the first N of each file (so both parts stay)."""
    if not max_configs or max_configs <= 0:
        return ds
    if {"train", "test"} <= {f.role for f in card.files} and ds.origin is not None:
        keep = np.concatenate([np.flatnonzero(ds.origin == o)[:max_configs] for o in np.unique(ds.origin)])
        return ds.select(np.sort(keep))
    return ds.select(np.arange(min(max_configs, ds.n_configs)))


def config_roles(ds: StructureSet, card: DatasetCard) -> np.ndarray:
    """The card role ("train", "test" or "") of each configuration, via its origin.

    An origin name is a card file path or a folder of card files (DeePMD sets); its role is the
    role its files share ("" when they differ or none match).
    """
    roles = []
    for origin in ds.origin_names:
        found = {f.role for f in card.files if f.path == origin or f.path.startswith(origin.rstrip("/") + "/")}
        roles.append(found.pop() if len(found) == 1 else "")
    if ds.origin is None or not roles:
        return np.full(ds.n_configs, "", dtype=object)
    return np.asarray(roles, dtype=object)[ds.origin]


def _read_cache(path: Path, key: str, name: str) -> StructureSet | None:
    if not path.is_file():
        return None
    try:
        import h5py

        with h5py.File(path, "r") as f:
            stored_key = str(f.attrs.get("mlffbench_cache_key", ""))
            stored_fp = str(f.attrs.get("mlffbench_fingerprint", ""))
        if stored_key != key:
            raise DataError("cache key differs")
        ds = StructureSet.load(path).validate(name)
        if ds.fingerprint() != stored_fp:
            raise DataError("fingerprint differs")
        return ds
    except Exception as exc:  # noqa: BLE001 - any problem with a cache file means: parse again and rewrite it
        log.warning("ignoring unreadable dataset cache %s (%s)", path, str(exc).splitlines()[0] if str(exc) else exc)
        return None


def _write_cache(path: Path, ds: StructureSet, key: str) -> None:
    try:
        import h5py

        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.{uuid.uuid4().hex[:8]}.h5")
        try:
            ds.save(tmp)
            with h5py.File(tmp, "a") as f:
                f.attrs["mlffbench_cache_key"] = key
                f.attrs["mlffbench_fingerprint"] = ds.fingerprint()
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
            Path(str(tmp) + ".tmp").unlink(missing_ok=True)
    except OSError as exc:  # an unwritable cache only costs speed
        log.warning("cannot write dataset cache %s: %s", path, exc)


__all__ = [
    "FORMAT_VERSION",
    "cache_key",
    "config_roles",
    "convert_units",
    "default_cache_dir",
    "default_data_dir",
    "limit_configs",
    "load_dataset",
    "require_stress_units",
    "resolve_card",
    "stress_declared",
]
