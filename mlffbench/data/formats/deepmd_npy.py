"""DeePMD-kit "npy system" folders.

A system folder holds ``type.raw`` (one integer type per atom), ``type_map.raw`` (the element
symbol of each type; or ``options.type_map`` in the card) and one or more ``set.*`` folders with
``coord.npy`` (F, 3N), ``box.npy`` (F, 9: the 3×3 cell, row-major, lattice vectors as rows),
``energy.npy`` (F,) and optionally ``force.npy`` (F, 3N). A ``nopbc`` file marks a
non-periodic system (then ``box.npy`` may be absent). ``virial.npy`` and other files are ignored.

The card lists every file; systems and sets are found from the file paths, in card order, or
read in the order of ``options.sets`` (set folders relative to the data directory) when given.
The StructureSet's ``origin`` is the set folder (``data_0/set.000``), its ``group`` the system.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import numpy as np

from mlffbench.data.formats._common import check_finite, check_shape, file_labels, symbols_to_numbers
from mlffbench.data.structures import StructureSet, concatenate, from_arrays
from mlffbench.errors import DataError
from mlffbench.plugin.registry import DatasetCard, FormatSpec

SYSTEM_FILES = ("type.raw", "type_map.raw", "nopbc")
SET_FILES = ("coord.npy", "box.npy", "energy.npy", "force.npy")


def read(paths: Sequence[Path], card: DatasetCard) -> StructureSet:
    labels = file_labels(paths, card)
    systems: dict[str, dict[str, Path]] = {}
    sets: dict[str, dict[str, Path]] = {}
    set_system: dict[str, str] = {}
    for path, label in zip(paths, labels, strict=True):
        path, rel = Path(path), PurePosixPath(label)
        if rel.name in SYSTEM_FILES:
            systems.setdefault(str(rel.parent), {})[rel.name] = path
        elif rel.parent.name.startswith("set.") and rel.name.endswith(".npy"):
            sets.setdefault(str(rel.parent), {})[rel.name] = path
            set_system[str(rel.parent)] = str(rel.parent.parent)
        else:
            raise DataError(f"{path}: not a file of a DeePMD system (expected type.raw, type_map.raw or set.*/*.npy)")

    order = list(sets)
    if "sets" in card.options:
        wanted = card.options["sets"]
        if not isinstance(wanted, list) or not all(isinstance(s, str) for s in wanted) or not wanted:
            raise DataError(f"dataset card '{card.name}': options.sets must be a non-empty array of set folders")
        for s in wanted:
            if s not in sets:
                raise DataError(
                    f"dataset card '{card.name}': options.sets names '{s}', but no file of the card is in it"
                )
        order = list(wanted)

    type_map_opt = card.options.get("type_map")
    parsed_systems: dict[str, tuple[np.ndarray, bool]] = {}
    parts = []
    for set_name in order:
        system = set_system[set_name]
        if system not in parsed_systems:
            parsed_systems[system] = _system(system, systems.get(system, {}), type_map_opt, card.name)
        numbers, periodic = parsed_systems[system]
        parts.append(_read_set(set_name, sets[set_name], numbers, periodic, system, card.name))
    have = [p.forces is not None for p in parts]
    if any(have) and not all(have):
        raise DataError(
            f"DeePMD set '{order[have.index(False)]}': no force.npy, but set '{order[have.index(True)]}' has one"
        )
    return concatenate(parts, name=card.name).validate(card.name)


def _system(system: str, files: dict[str, Path], type_map_opt, name: str) -> tuple[np.ndarray, bool]:
    if "type.raw" not in files:
        raise DataError(f"DeePMD system '{system}': type.raw is not among the card's files")
    types_path = files["type.raw"]
    types = _read_ints(types_path)
    if "type_map.raw" in files:
        type_map = _read_text(files["type_map.raw"]).split()
        map_where = f"{files['type_map.raw']}"
    elif isinstance(type_map_opt, list) and type_map_opt and all(isinstance(s, str) for s in type_map_opt):
        type_map, map_where = list(type_map_opt), f"dataset card '{name}' options.type_map"
    else:
        raise DataError(f"DeePMD system '{system}': no type_map.raw among the card's files and no options.type_map")
    if not type_map:
        raise DataError(f"{map_where}: no element symbols")
    species = symbols_to_numbers(type_map, map_where)
    if types.min() < 0 or types.max() >= len(species):
        raise DataError(f"{types_path}: type {int(types.max())} out of range for {len(species)} types in {map_where}")
    return species[types], "nopbc" not in files


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot be read as text ({exc})") from None


def _read_ints(path: Path) -> np.ndarray:
    tokens = _read_text(path).split()
    try:
        types = np.array([int(t) for t in tokens], dtype=np.int64)
    except ValueError:
        raise DataError(f"{path}: expected one integer atom type per atom") from None
    if types.size == 0:
        raise DataError(f"{path}: no atoms")
    return types


def _load_npy(path: Path) -> np.ndarray:
    try:
        with open(path, "rb") as handle:
            arr = np.load(handle, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"{path}: cannot be read as .npy (truncated or corrupt: {exc})") from None
    if not isinstance(arr, np.ndarray) or not np.issubdtype(arr.dtype, np.number):
        raise DataError(f"{path}: not a numeric .npy array")
    return arr.astype(np.float64)


def _read_set(set_name: str, files: dict[str, Path], numbers: np.ndarray, periodic: bool, system: str, name: str):
    for key in ("coord.npy", "energy.npy", *(("box.npy",) if periodic else ())):
        if key not in files:
            raise DataError(f"DeePMD set '{set_name}': {key} is not among the card's files")
    n = numbers.shape[0]
    coord = _load_npy(files["coord.npy"])
    f = coord.shape[0] if coord.ndim else 0
    if coord.ndim == 3:
        coord = coord.reshape(f, -1)
    coord = check_shape(coord, (None, 3 * n), str(files["coord.npy"]), "coord").reshape(f * n, 3)
    if f == 0:
        raise DataError(f"{files['coord.npy']}: no frames")
    energy = _load_npy(files["energy.npy"])
    if energy.ndim == 2 and energy.shape[1] == 1:
        energy = energy[:, 0]
    check_shape(energy, (f,), str(files["energy.npy"]), "energy")
    check_finite(coord.reshape(f, -1), str(files["coord.npy"]), "coord", "frame")
    check_finite(energy, str(files["energy.npy"]), "energy", "frame")
    if periodic:
        box = _load_npy(files["box.npy"])
        box = check_shape(box.reshape(box.shape[0], -1) if box.ndim == 3 else box, (f, 9), str(files["box.npy"]), "box")
        check_finite(box, str(files["box.npy"]), "box", "frame")
        cell = box.reshape(f, 3, 3)
        if not (np.linalg.norm(cell, axis=-1) > 0).all():
            raise DataError(f"{files['box.npy']}: field 'box' has a zero lattice vector")
    else:
        cell = np.zeros((f, 3, 3))
    forces = None
    if "force.npy" in files:
        forces = _load_npy(files["force.npy"])
        if forces.ndim == 3:
            forces = forces.reshape(forces.shape[0], -1)
        check_shape(forces, (f, 3 * n), str(files["force.npy"]), "force")
        check_finite(forces, str(files["force.npy"]), "force", "frame")
        forces = forces.reshape(f * n, 3)
    return from_arrays(
        numbers=np.tile(numbers, f),
        positions=coord,
        n_atoms=np.full(f, n),
        cell=cell,
        pbc=np.full((f, 3), periodic),
        energy=energy,
        forces=forces,
        group=np.zeros(f, np.int64),
        group_names=(system,),
        origin=np.zeros(f, np.int64),
        origin_names=(set_name,),
        name=name,
    )


FORMAT = FormatSpec(
    name="deepmd-npy",
    read=read,
    description="DeePMD-kit npy systems (type.raw, type_map.raw, set.*/{coord,box,energy,force}.npy)",
)
