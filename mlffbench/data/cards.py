"""Dataset cards: one TOML file per dataset, read into :class:`mlffbench.plugin.registry.DatasetCard`.

A card names the original files (path relative to the data directory, source URL, sha256,
optional role), the format adapter that reads them, the units they are stored in, and the
default split policy. The built-in cards live in the ``cards/`` folder of the repository,
installed as the package ``mlffbench.cards``.
"""

from __future__ import annotations

import math
import re
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from mlffbench.data import units
from mlffbench.errors import DataError
from mlffbench.plugin.registry import DataFile, DatasetCard

SPLIT_POLICIES = ("random", "group", "formula", "files")
FILE_ROLES = ("", "train", "test")

_REQUIRED = ("name", "format", "units", "files")
_OPTIONAL_STR = ("description", "license", "citation", "family")
_KNOWN = set(_REQUIRED) | set(_OPTIONAL_STR) | {"split", "options"}
_RECORD = {"root", "source"}  # keys of a card recorded in a run (DatasetCard.to_dict), not of a TOML card
# card options about stress, checked here for every format
STRESS_OPTIONS = ("stress_sign", "stress_key", "virial_key", "voigt_order")
VOIGT_ASE = "xx yy zz yz xz xy"
_FILE_KEYS = {"path", "sha256", "url", "role"}
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def load_card(path, user: bool = False) -> DatasetCard:
    """Read and validate one card file (a Path or an importlib.resources Traversable).

    ``user``: a card of the user's own (a file given as the dataset, or found in
    $MLFFBENCH_CARDS / --cards): its file paths are relative to the card's folder (or absolute).
    """
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"dataset card {source}: cannot be read ({exc})") from None
    root = str(Path(str(path)).resolve().parent) if user else ""
    return parse_card(text, source, root=root)


def parse_card(text: str, source: str = "<card>", root: str = "") -> DatasetCard:
    """Validate the TOML text of a card; DataError names the card and the key otherwise."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DataError(f"dataset card {source}: invalid TOML ({exc})") from None
    if root:
        raw = {**raw, "root": root}
    return card_from_dict(raw, source)


def card_from_dict(raw: dict[str, Any], source: str = "<card>") -> DatasetCard:
    """Build a DatasetCard from the parsed TOML table (or a recorded card with ``root`` and
    ``source``, see :meth:`DatasetCard.to_dict`), checking every key."""

    def fail(message: str) -> DataError:
        return DataError(f"dataset card {source}: {message}")

    raw = dict(raw)
    root = raw.pop("root", "") or ""
    source = raw.pop("source", "") or source
    if not isinstance(root, str) or not isinstance(source, str):
        raise fail("keys 'root' and 'source' must be strings")
    for key in _REQUIRED:
        if key not in raw:
            raise fail(f"missing key '{key}'")
    unknown = sorted(set(raw) - _KNOWN)
    if unknown:
        raise fail(f"unknown key '{unknown[0]}' (known: {', '.join(sorted(_KNOWN))})")
    for key in ("name", "format", *_OPTIONAL_STR):
        if key in raw and not isinstance(raw[key], str):
            raise fail(f"key '{key}' must be a string")
    name = raw["name"]
    if not _NAME.match(name):
        raise fail(f"key 'name': '{name}' is not a valid dataset name (lower case letters, digits, '.', '_', '-')")
    if not raw["format"]:
        raise fail("key 'format' is empty")

    card_units = _check_units(raw["units"], fail)
    files = _check_files(raw["files"], fail, user=bool(root))
    split = _check_split(raw.get("split", {}), fail, files)
    options = raw.get("options", {})
    if not isinstance(options, dict):
        raise fail("key 'options' must be a table")
    _check_stress_options(options, card_units, fail)

    return DatasetCard(
        name=name,
        format=raw["format"],
        files=files,
        units=card_units,
        description=raw.get("description", "").strip(),
        license=raw.get("license", ""),
        citation=raw.get("citation", "").strip(),
        family=raw.get("family", ""),
        split=split,
        options=options,
        source=source,
        root=root,
    )


def _check_units(table: Any, fail) -> dict[str, str]:
    if not isinstance(table, dict):
        raise fail("key 'units' must be a table with 'energy' and 'length'")
    for key in ("energy", "length"):
        if key not in table:
            raise fail(f"missing key 'units.{key}'")
    extra = sorted(set(table) - {"energy", "length", "stress"})
    if extra:
        raise fail(f"unknown key 'units.{extra[0]}' (energy, length, stress; forces are energy/length)")
    out = {}
    for key in ("energy", "length", "stress"):
        if key in table:
            try:
                out[key] = units.canonical(key, table[key])
            except DataError as exc:
                raise fail(f"key 'units.{key}': {exc}") from None
    return out


def _check_stress_options(options: dict[str, Any], card_units: dict[str, str], fail) -> None:
    """Stress conventions: sign, the info key of a stress or of a virial, the Voigt order."""
    for key in STRESS_OPTIONS:
        if key in options and (not isinstance(options[key], str) or not options[key]):
            raise fail(f"key 'options.{key}' must be a non-empty string")
    if "stress_sign" in options and options["stress_sign"] not in units.STRESS_SIGNS:
        raise fail(
            f"key 'options.stress_sign': unknown sign '{options['stress_sign']}' "
            f"(known: {', '.join(units.STRESS_SIGNS)}; 'vasp' = pressure positive)"
        )
    if "virial_key" in options:
        if "stress_key" in options:
            raise fail("give either options.stress_key or options.virial_key, not both")
        if "stress" in card_units:
            raise fail("a virial is in energy units: 'units.stress' does not apply with options.virial_key")
        if options.get("stress_sign", "ase") != "ase":
            raise fail("options.stress_sign does not apply to a virial (stress = -virial/volume)")
    if "voigt_order" in options:
        pairs = options["voigt_order"].lower().replace(",", " ").split()
        canonical_pairs = sorted("".join(sorted(p)) for p in pairs)
        if len(pairs) != 6 or canonical_pairs != sorted("".join(sorted(p)) for p in VOIGT_ASE.split()):
            raise fail(
                f"key 'options.voigt_order': '{options['voigt_order']}' must name the six components, "
                f"e.g. '{VOIGT_ASE}' (ASE) or 'xx yy zz xy yz zx' (VASP)"
            )


def _check_files(entries: Any, fail, user: bool = False) -> tuple[DataFile, ...]:
    if not isinstance(entries, list) or not entries:
        raise fail("key 'files' must be a non-empty array of tables ([[files]])")
    files: list[DataFile] = []
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        where = f"files[{i}]"
        if not isinstance(entry, dict):
            raise fail(f"key '{where}' must be a table")
        for key in ("path", "sha256"):
            if key not in entry:
                raise fail(f"missing key '{where}.{key}'")
        extra = sorted(set(entry) - _FILE_KEYS)
        if extra:
            raise fail(f"unknown key '{where}.{extra[0]}' (known: {', '.join(sorted(_FILE_KEYS))})")
        for key in _FILE_KEYS & set(entry):
            if not isinstance(entry[key], str):
                raise fail(f"key '{where}.{key}' must be a string")
        path = entry["path"]
        if not path:
            raise fail(f"key '{where}.path' is empty")
        if not user and (path.startswith(("/", "\\")) or ".." in Path(path).parts):
            raise fail(f"key '{where}.path': '{path}' must be a relative path inside the data directory")
        if path in seen:
            raise fail(f"key '{where}.path': '{path}' is listed twice")
        seen.add(path)
        sha = entry["sha256"].lower()
        if not _SHA256.match(sha):
            raise fail(f"key '{where}.sha256': not a sha256 hex digest")
        role = entry.get("role", "")
        if role not in FILE_ROLES:
            raise fail(f"key '{where}.role': '{role}' is not one of {', '.join(repr(r) for r in FILE_ROLES)}")
        url = entry.get("url", "")
        if url and not url.startswith(("https://", "http://")):
            raise fail(f"key '{where}.url': '{url}' is not an http(s) URL")
        files.append(DataFile(path=path, sha256=sha, url=url, role=role))
    return tuple(files)


def _check_split(table: Any, fail, files: tuple[DataFile, ...]) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise fail("key 'split' must be a table")
    split = dict(table)
    policy = split.get("policy", "random")
    if policy not in SPLIT_POLICIES:
        raise fail(f"key 'split.policy': '{policy}' is not one of {', '.join(SPLIT_POLICIES)}")
    split["policy"] = policy
    if "fractions" in split:
        fr = split["fractions"]
        if (
            not isinstance(fr, list)
            or not 2 <= len(fr) <= 3
            or not all(isinstance(x, int | float) and not isinstance(x, bool) and 0 <= x <= 1 for x in fr)
            or not math.isclose(sum(fr), 1.0, abs_tol=1e-9)
        ):
            raise fail("key 'split.fractions' must be 2 or 3 numbers in [0, 1] that sum to 1")
    if "seed" in split and (not isinstance(split["seed"], int) or isinstance(split["seed"], bool)):
        raise fail("key 'split.seed' must be an integer")
    if "holdout" in split:
        if policy != "formula":
            raise fail("key 'split.holdout' is only used with policy 'formula'")
        if not isinstance(split["holdout"], list) or not all(isinstance(x, str) for x in split["holdout"]):
            raise fail("key 'split.holdout' must be an array of formulas")
    if policy == "files":
        roles = {f.role for f in files}
        if not {"train", "test"} <= roles:
            raise fail("key 'split.policy': 'files' needs files with role 'train' and role 'test'")
    return split


def _cards_folder():
    """The folder holding the built-in cards: package ``mlffbench.cards`` when installed,
    else ``cards/`` beside the ``mlffbench`` package (a source checkout on PYTHONPATH)."""
    try:
        return resources.files("mlffbench.cards")
    except ModuleNotFoundError:
        return Path(__file__).resolve().parents[2] / "cards"


def builtin_cards() -> list[DatasetCard]:
    """All built-in dataset cards (``*.toml`` in ``mlffbench.cards``), sorted by name.

    Each card's ``name`` must equal its file name without ``.toml``, so names are unique.
    """
    folder = _cards_folder()
    cards = []
    for entry in sorted((e for e in folder.iterdir() if e.name.endswith(".toml")), key=lambda e: e.name):
        card = load_card(entry)
        if entry.name != f"{card.name}.toml":
            raise DataError(f"dataset card {entry}: key 'name' is '{card.name}', expected '{entry.name[:-5]}'")
        cards.append(card)
    return cards
