"""Datasets of the user's own: a path wherever a dataset name is accepted, and card folders.

:func:`resolve_card` is the one place a user-given dataset (``--dataset``) becomes a
:class:`~mlffbench.plugin.registry.DatasetCard`:

* a registered name (built-in or plugin card);
* the name of a card in a card folder (``$MLFFBENCH_CARDS=dir1:dir2``, ``--cards DIR``);
* a card file (``*.toml``; its file paths relative to the card);
* an existing data file, several (``a.xyz,b.xyz``; ``train=a.xyz,test=b.xyz`` for a dataset with
  its own test file) or a folder of them: a card is made on the fly — name from the file name,
  each file's sha256, the format from ASE's detection (``--format`` overrides).

The command line's data options (``--unit``, ``--stress-sign``, ``--key``, ``--format``,
``--cards``) are one frozen :class:`DataRequest`, which a command builds from its options
(:mod:`mlffbench.cli.dataopts`) and passes to :func:`resolve_card` (``request``); a card recorded
in a run (config.json ``dataset_card``) is read back as recorded (:func:`card_of_run`).

Code that resolves a dataset name without being handed a request (the training, tuning, comparison
and conformance modules called by a command) gets the request of the command running it:
:func:`command_request`, entered by the command around that call, scopes it to the call (a
context variable, reset on exit: nothing outlives the command, and nothing is shared between
commands run in one process). Pass a request to ``resolve_card`` where you can.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from mlffbench.data import elements
from mlffbench.data import units as _units
from mlffbench.data.cards import card_from_dict, load_card
from mlffbench.data.fetch import file_sha256
from mlffbench.data.loading import default_cache_dir
from mlffbench.errors import DataError, UnknownNameError
from mlffbench.plugin.manager import get_registry
from mlffbench.plugin.registry import DatasetCard

CARDS_ENV = "MLFFBENCH_CARDS"
# ASE's readers of these formats return ASE's units and sign (eV/Å³, tensile positive):
# their stress unit is known, not guessed. An extxyz file holds whatever its writer put there.
ASE_NATIVE_STRESS = frozenset(
    {"vasp-out", "vasp-xml", "traj", "db", "espresso-out", "castep-castep", "aims-output", "gpaw-out", "json"}
)
_SKIP = re.compile(r"^(readme|license|licence|copying)|\.(md|txt|rst|toml|pdf|png|jpg|py|sh|h5|lock)$", re.IGNORECASE)
KEY_FIELDS = {
    "energy": "energy_key",
    "forces": "forces_key",
    "stress": "stress_key",
    "virial": "virial_key",
    "group": "group_key",
}


@dataclass(frozen=True)
class DataRequest:
    """The data options of one command, applied to every dataset it resolves by name or path:
    ``units`` (quantity → canonical unit, ``--unit``), card ``options`` (``stress_sign``, the
    ``*_key`` fields: ``--stress-sign``, ``--key``), ``format`` (``--format``) and card folders
    ``cards`` (``--cards``). Frozen, its mappings read-only: :meth:`of` parses the options."""

    units: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    format: str | None = None
    cards: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "units", MappingProxyType(dict(self.units)))
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))
        object.__setattr__(self, "cards", tuple(str(c) for c in self.cards))

    @classmethod
    def of(
        cls,
        units: Iterable[str] = (),
        stress_sign: str | None = None,
        keys: Iterable[str] = (),
        format: str | None = None,
        cards: Iterable[str] = (),
    ) -> DataRequest:
        """From the command line's values: ``units`` ``quantity=unit`` items, ``keys``
        ``field=KEY`` items (DataError on a bad one), the rest as given."""
        options = {**parse_keys(keys), **({"stress_sign": stress_sign} if stress_sign else {})}
        return cls(parse_units(units), options, format or None, tuple(cards))

    def empty(self) -> bool:
        return not (self.units or self.options or self.format)


NO_REQUEST = DataRequest()
_COMMAND_REQUEST: ContextVar[DataRequest] = ContextVar("mlffbench_data_request", default=NO_REQUEST)


@contextlib.contextmanager
def command_request(request: DataRequest) -> Iterator[DataRequest]:
    """``request`` as the running command's data options inside the block (for code that
    resolves names without being handed a request, see the module's docstring); the previous
    value is restored on exit."""
    token = _COMMAND_REQUEST.set(request)
    try:
        yield request
    finally:
        _COMMAND_REQUEST.reset(token)


def request() -> DataRequest:
    """The running command's data options (:func:`command_request`; none outside a command)."""
    return _COMMAND_REQUEST.get()


def parse_units(items: Iterable[str], where: str = "--unit") -> dict[str, str]:
    """``["stress=kbar", "energy=kcal/mol"]`` -> canonical units; DataError on an unknown one."""
    out = {}
    for item in items:
        quantity, sep, unit = str(item).partition("=")
        quantity = quantity.strip()
        if not sep or not quantity or not unit.strip():
            raise DataError(f"{where} '{item}' is not of the form quantity=unit (e.g. stress=kbar)")
        out[quantity] = _units.canonical(quantity, unit.strip(), f"{where} '{item}'")
    return out


def parse_keys(items: Iterable[str], where: str = "--key") -> dict[str, str]:
    """``["stress=virial_kbar"]`` -> card options ``{"stress_key": "virial_kbar"}``."""
    out = {}
    for item in items:
        name, sep, key = str(item).partition("=")
        name = name.strip()
        if not sep or name not in KEY_FIELDS or not key.strip():
            raise DataError(f"{where} '{item}' is not of the form field=KEY with field one of {', '.join(KEY_FIELDS)}")
        out[KEY_FIELDS[name]] = key.strip()
    return out


# ------------------------------------------------------------------ card folders
def card_dirs(extra: Iterable[str] = (), request: DataRequest | None = None) -> list[Path]:
    """Folders of user cards: ``$MLFFBENCH_CARDS`` (``dir1:dir2``), then the request's ``--cards``, then ``extra``."""
    raw = [p for p in os.environ.get(CARDS_ENV, "").split(os.pathsep) if p.strip()]
    cards = _request_or_command(request).cards
    return [Path(p).expanduser() for p in [*raw, *cards, *extra]]


def user_cards(extra: Iterable[str] = (), request: DataRequest | None = None) -> list[DatasetCard]:
    """The cards in the card folders (:func:`card_dirs`), validated like built-in cards (name = file name)."""

    found: dict[str, DatasetCard] = {}
    for folder in card_dirs(extra, request):
        if not folder.is_dir():
            raise DataError(f"{folder}: card folder not found ({CARDS_ENV} / --cards)")
        for path in sorted(folder.glob("*.toml")):
            card = load_card(path, user=True)
            if path.name != f"{card.name}.toml":
                raise DataError(f"dataset card {path}: key 'name' is '{card.name}', expected '{path.stem}'")
            found.setdefault(card.name, card)
    return list(found.values())


# ------------------------------------------------------------------ resolution
def _request_or_command(request: DataRequest | None) -> DataRequest:
    return request if request is not None else _COMMAND_REQUEST.get()


def resolve_card(
    name_or_path: str | os.PathLike | DatasetCard,
    request: DataRequest | None = None,
    *,
    units: Mapping[str, str] | None = None,
    options: Mapping[str, Any] | None = None,
    format: str | None = None,
) -> DatasetCard:
    """The card of a dataset name, card file, data file(s) or folder, with the data options of
    ``request`` applied (None: the running command's, :func:`command_request`); ``units``,
    ``options``, ``format`` given here replace the request's."""
    req = _request_or_command(request)
    units = dict(req.units if units is None else units)
    options = dict(req.options if options is None else options)
    format = format or req.format
    if isinstance(name_or_path, DatasetCard):
        return _apply(name_or_path, units, options, format)
    text = str(name_or_path)

    registry = get_registry()
    if text in registry.datasets:
        return _apply(registry.datasets[text], units, options, format)
    for card in user_cards(request=req):
        if card.name == text:
            return _apply(card, units, options, format)
    parts = _parts(text)
    if parts is None:
        known = ", ".join(sorted(registry.datasets)) or "none registered"
        raise UnknownNameError(
            f"unknown dataset '{text}' (not a registered name, nor an existing file or folder; known: {known})"
        )
    if len(parts) == 1 and parts[0][1].suffix == ".toml" and parts[0][1].is_file():
        return _apply(load_card(parts[0][1], user=True), units, options, format)
    return card_for_files(parts, units=units, options=options, format=format)


def card_of_run(saved: Mapping[str, Any]) -> DatasetCard:
    """The card a run used: the one recorded in its config.json, else its registered name."""
    if saved.get("dataset_card"):
        return DatasetCard.from_dict(saved["dataset_card"], f"recorded in the run ({saved.get('dataset', '?')})")

    return get_registry().dataset(saved["dataset"])


def _apply(card: DatasetCard, units: dict[str, str], options: dict[str, Any], format: str | None) -> DatasetCard:
    if not units and not options and not format:
        return card

    raw = card.to_dict()
    raw["units"] = {**raw["units"], **units}
    merged = {**raw.get("options", {}), **options}
    if "virial_key" in options:
        merged.pop("stress_key", None)
    if "stress_key" in options:
        merged.pop("virial_key", None)
    if format:
        fmt, ase_format = _format_choice(format)
        raw["format"] = fmt
        if ase_format:
            merged["ase_format"] = ase_format
    raw["options"] = merged
    return card_from_dict(raw, card.source or card.name)


def _parts(text: str) -> list[tuple[str, Path]] | None:
    """``[(role, path)]`` of a path list ``a,b`` / ``train=a,test=b``; None when not all exist."""
    whole = Path(text).expanduser()
    items = [text] if whole.exists() else text.split(",")
    out = []
    for item in items:
        role, sep, rest = item.partition("=")
        if sep and role in ("train", "test") and not Path(item).expanduser().exists():
            item = rest
        else:
            role = ""
        path = Path(item).expanduser()
        if not item or not path.exists():
            return None
        out.append((role, path))
    return out


def _format_choice(name: str) -> tuple[str, str | None]:
    """``--format``: an mlffbench format name, else an ASE format name (read by the ``ase`` adapter)."""

    formats = get_registry().formats
    if name in formats:
        return name, None
    from ase.io.formats import ioformats

    if name in ioformats:
        return ("extxyz", None) if name == "extxyz" else ("ase", name)
    raise UnknownNameError(
        f"unknown format '{name}' (mlffbench: {', '.join(sorted(formats))}; or any ASE format, see `ase info --formats`)"
    )


def detect_format(path: Path) -> tuple[str, str | None]:
    """The adapter (and ASE format) of one data file: JSON lines with ``Positions`` are NeuralIL's,
    everything else as ASE's format detection says."""
    if path.suffix.lower() in (".jsonl", ".json"):
        try:
            with path.open("r", encoding="utf-8") as handle:
                first = handle.readline()
        except (OSError, UnicodeDecodeError):
            first = ""
        if '"Positions"' in first and '"Energy"' in first:
            return "neuralil-jsonl", None
    from ase.io.formats import UnknownFileTypeError, filetype

    try:
        detected = filetype(str(path))
    except UnknownFileTypeError as exc:
        raise DataError(f"{path}: ASE cannot tell the file's format ({exc}); give it with --format") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror})") from None
    return ("extxyz", None) if detected in ("extxyz", "xyz") else ("ase", detected)


def _files_of(role: str, path: Path) -> list[tuple[str, Path]]:
    if path.is_file():
        return [(role, path)]
    files = [
        p
        for p in sorted(path.rglob("*"))
        if p.is_file() and not any(s.startswith(".") for s in p.relative_to(path).parts) and not _SKIP.search(p.name)
    ]
    if not files:
        raise DataError(f"{path}: folder holds no data files")
    return [(role, p) for p in files]


def _name(path: Path) -> str:
    stem = path.name if path.is_dir() else path.name.split(".")[0] or path.stem
    name = re.sub(r"[^a-z0-9._-]+", "-", stem.lower()).strip("-._")
    return name or "data"


def card_for_files(
    parts: list[tuple[str, Path]],
    units: Mapping[str, str] | None = None,
    options: Mapping[str, Any] | None = None,
    format: str | None = None,
) -> DatasetCard:
    """A complete card for data files (sha256 of each, format, units): what a path as
    ``--dataset`` stands for, and what ``mlffbench datasets card`` prints."""

    files = [f for role, p in parts for f in _files_of(role, p)]
    resolved = [(role, p.resolve()) for role, p in files]
    if format:
        chosen = {_format_choice(format)}
    else:
        chosen = {detect_format(p) for _, p in resolved}
    if len(chosen) > 1:
        shown = ", ".join(sorted(f"{a}" + (f" ({b})" if b else "") for a, b in chosen))
        raise DataError(f"{parts[0][1]}: the files are in different formats ({shown}); give one dataset per format")
    fmt, ase_format = chosen.pop()
    paths = [p for _, p in resolved]
    root = Path(os.path.commonpath([str(p.parent) for p in paths]))
    card_units = {"energy": "eV", "length": "angstrom"}
    if fmt == "ase" and ase_format in ASE_NATIVE_STRESS:
        card_units["stress"] = "eV/angstrom^3"
    card_units.update(units or {})
    card_options: dict[str, Any] = {"ase_format": ase_format} if ase_format else {}
    card_options.update(options or {})
    cache = default_cache_dir()
    roles = {role for role, _ in files}
    raw: dict[str, Any] = {
        "name": _name(parts[0][1]),
        "format": fmt,
        "description": "made from " + ", ".join(str(p) for _, p in parts),
        "units": card_units,
        "options": card_options,
        "files": [
            {
                "path": p.relative_to(root).as_posix(),
                "sha256": file_sha256(p, cache),
                **({"role": role} if role else {}),
            }
            for role, p in resolved
        ],
        "root": str(root),
        "source": ", ".join(str(p) for _, p in parts),
    }
    if roles - {""}:
        if roles != {"train", "test"}:
            raise DataError(f"{parts[0][1]}: give both train=FILE and test=FILE (or neither)")
        raw["split"] = {"policy": "files", "fractions": [0.9, 0.1]}
    return card_from_dict(raw, raw["source"])


def card_toml(card: DatasetCard, counts: Mapping[str, Any] | None = None) -> str:
    """The card as TOML text that loads as is when saved beside the files (``datasets card``)."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return repr(v)
        if isinstance(v, list | tuple):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + "}"
        text = str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{text}"'

    raw = card.to_dict(record=False)
    lines = []
    if counts:
        lines += [f"# {k}: {v}" for k, v in counts.items()]
    for key in ("name", "format", "description", "license", "citation", "family"):
        if key in raw:
            lines.append(f"{key} = {value(raw[key])}")
    for table in ("units", "options", "split"):
        if raw.get(table):
            lines += ["", f"[{table}]"] + [f"{k} = {value(v)}" for k, v in raw[table].items()]
    for entry in raw["files"]:
        lines += ["", "[[files]]"] + [f"{k} = {value(v)}" for k, v in entry.items()]
    return "\n".join(lines) + "\n"


def describe_card(card: DatasetCard, ds) -> dict[str, Any]:
    """What ``datasets card`` reports as comments: counts, elements, the quantities present."""

    return {
        "configurations": ds.n_configs,
        "atoms": int(ds.n_atoms.sum()),
        "elements": " ".join(elements.SYMBOLS[z] for z in ds.elements),
        "periodic": "yes" if ds.periodic else "no",
        "present": ", ".join(q for q in ("energy", "forces", "stress") if getattr(ds, q) is not None) or "none",
    }


def card_params(card: DatasetCard) -> dict[str, Any]:
    """The card's identity for MLflow params: format, units, options, files with sha256, root."""
    return {
        "format": card.format,
        "units": dict(card.units),
        "options": dict(card.options),
        "files": [f"{f.role + ':' if f.role else ''}{f.path}@{f.sha256}" for f in card.files],
        "root": card.root,
    }
