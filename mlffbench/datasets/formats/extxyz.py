"""Extended XYZ files, read with ASE (``ase.io.iread(..., format="extxyz")``).

Per frame: species and positions (Å), ``Lattice`` and ``pbc``, the energy, per-atom forces and
the stress. ASE turns the ``energy``/``forces``/``stress`` keys into calculator results; the
card may name other keys with ``options.energy_key``/``forces_key``/``stress_key``.
``options.group_key`` names a per-frame info key whose values group the configurations (e.g. one
group per dissociation curve); every frame must have it.

* Cell: rows of non-periodic directions are stored as zeros, so a molecule in a dummy box with
  ``pbc="F F F"`` becomes a free molecule (cell all zeros, pbc all False).
* Stress: ASE's convention, kept as is — the 3×3 tensor sigma = (1/V) dE/d(strain) in energy/length³
  of the card's units (eV/Å³ after loading); positive = tensile, pressure = -trace(sigma)/3.
  Nine values (a full 3×3, row-major) or six Voigt values (xx yy zz yz xz xy) are accepted.
* A quantity must be present in every frame of a file or in none (and in all files or none).
"""

from __future__ import annotations

import traceback
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mlffbench.datasets.formats._common import check_finite, file_labels, zero_open_directions
from mlffbench.errors import DataError
from mlffbench.registry import DatasetCard, FormatSpec
from mlffbench.structures import StructureSet, concatenate, from_arrays

_FIELDS = ("energy", "forces", "stress")


def read(paths: Sequence[Path], card: DatasetCard) -> StructureSet:
    keys = {}
    for field in _FIELDS:
        key = card.options.get(f"{field}_key", field)
        if not isinstance(key, str) or not key:
            raise DataError(f"dataset card '{card.name}': options.{field}_key must be a non-empty string")
        keys[field] = key
    group_key = card.options.get("group_key")
    if group_key is not None and (not isinstance(group_key, str) or not group_key):
        raise DataError(f"dataset card '{card.name}': options.group_key must be a non-empty string")
    labels = file_labels(paths, card)
    sets = [_read_file(Path(p), labels[i], keys, card.name, group_key) for i, p in enumerate(paths)]
    for field in _FIELDS:
        have = [getattr(s, field) is not None for s in sets]
        if any(have) and not all(have):
            with_, without = paths[have.index(True)], paths[have.index(False)]
            raise DataError(f"{without}: no field '{keys[field]}' although {with_} has it")
    return concatenate(sets, name=card.name).validate(card.name)


def _read_file(path: Path, label: str, keys: dict[str, str], name: str, group_key: str | None = None) -> StructureSet:
    import ase.io

    if not path.is_file():
        raise DataError(f"{path}: file not found")
    frames: list[dict] = []
    iterator = ase.io.iread(path, index=":", format="extxyz")
    try:
        while True:
            where = f"{path} frame {len(frames)}"
            try:
                atoms = next(iterator)
            except StopIteration:
                break
            except KeyError as exc:
                key = exc.args[0] if exc.args else "?"
                # ASE maps symbols in ase.symbols.symbols2numbers; a KeyError there is an unknown symbol
                if traceback.extract_tb(exc.__traceback__)[-1].name == "symbols2numbers":
                    raise DataError(f"{where}: unknown element '{key}' (field 'species')") from None
                raise DataError(f"{where}: missing field {key!r}") from None
            except UnicodeDecodeError:
                raise DataError(f"{path}: not a text file") from None
            except Exception as exc:  # ASE raises XYZError, ValueError, IndexError... on malformed frames
                message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise DataError(f"{where}: malformed extended XYZ ({message}; truncated file?)") from None
            frame = _frame(atoms, keys, where)
            if group_key is not None:
                if group_key not in atoms.info:
                    raise DataError(f"{where}: no info key '{group_key}' (the card's options.group_key)")
                frame["group"] = str(atoms.info[group_key])
            frames.append(frame)
    finally:
        iterator.close()
    if not frames:
        raise DataError(f"{path}: no configurations (empty file)")

    present = {}
    for field in _FIELDS:
        have = [f[field] is not None for f in frames]
        if any(have) and not all(have):
            missing = have.index(False) if have[0] else have.index(True)
            state = "missing" if have[0] else "present"
            raise DataError(
                f"{path} frame {missing}: field '{keys[field]}' is {state} here but not in frame 0 "
                "(a field must be in every frame or in none)"
            )
        present[field] = have[0]

    c = len(frames)
    group_names = tuple(dict.fromkeys(f["group"] for f in frames)) if group_key is not None else ()
    group = np.array([group_names.index(f["group"]) for f in frames], np.int64) if group_key is not None else None
    pbc = np.array([f["pbc"] for f in frames], bool)
    cell = zero_open_directions(np.array([f["cell"] for f in frames]), pbc)
    return from_arrays(
        numbers=np.concatenate([f["numbers"] for f in frames]),
        positions=np.concatenate([f["positions"] for f in frames]),
        n_atoms=[f["numbers"].shape[0] for f in frames],
        cell=cell,
        pbc=pbc,
        energy=np.array([f["energy"] for f in frames]) if present["energy"] else None,
        forces=np.concatenate([f["forces"] for f in frames]) if present["forces"] else None,
        stress=np.array([f["stress"] for f in frames]) if present["stress"] else None,
        origin=np.zeros(c, np.int64),
        origin_names=(label,),
        group=group,
        group_names=group_names,
        name=name,
    )


def _lookup(atoms, key: str):
    calc_results = atoms.calc.results if atoms.calc is not None else {}
    if key in calc_results:
        return calc_results[key]
    if key in atoms.info:
        return atoms.info[key]
    if key in atoms.arrays:
        return atoms.arrays[key]
    return None


def _frame(atoms, keys: dict[str, str], where: str) -> dict:
    n = len(atoms)
    if n == 0:
        raise DataError(f"{where}: no atoms")
    out = {
        "numbers": np.asarray(atoms.numbers, np.int32),
        "positions": np.asarray(atoms.positions, np.float64),
        "cell": np.asarray(atoms.cell.array, np.float64),
        "pbc": np.asarray(atoms.pbc, bool),
    }
    check_finite(out["positions"][None], where, "pos")

    energy = _lookup(atoms, keys["energy"])
    if energy is not None:
        try:
            energy = float(np.asarray(energy, np.float64).reshape(()))
        except (TypeError, ValueError):
            raise DataError(f"{where}: field '{keys['energy']}' is not a single number") from None
        if not np.isfinite(energy):
            raise DataError(f"{where}: field '{keys['energy']}' is NaN or infinite")
    out["energy"] = energy

    forces = _lookup(atoms, keys["forces"])
    if forces is not None:
        forces = np.asarray(forces, np.float64)
        if forces.shape != (n, 3):
            raise DataError(f"{where}: field '{keys['forces']}' has shape {forces.shape}, expected ({n}, 3)")
        check_finite(forces[None], where, keys["forces"])
    out["forces"] = forces

    stress = _lookup(atoms, keys["stress"])
    if stress is not None:
        stress = np.asarray(stress, np.float64)
        if stress.shape == (6,):
            xx, yy, zz, yz, xz, xy = stress
            stress = np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
        elif stress.shape == (9,):
            stress = stress.reshape(3, 3)
        if stress.shape != (3, 3):
            raise DataError(
                f"{where}: field '{keys['stress']}' has shape {stress.shape}, expected 6, 9 or (3, 3) values"
            )
        check_finite(stress[None], where, keys["stress"])
    out["stress"] = stress
    return out


FORMAT = FormatSpec(
    name="extxyz",
    read=read,
    description="extended XYZ via ASE (energy, forces, stress; dummy cells of non-periodic frames dropped)",
)
