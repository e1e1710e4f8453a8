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
  Nine values (a full 3×3, row-major) or six Voigt values (xx yy zz yz xz xy, or the card's
  ``options.voigt_order``, e.g. VASP's ``"xx yy zz xy yz zx"``) are accepted. Other units and
  VASP's sign are declared in the card (``[units] stress``, ``options.stress_sign``) and
  converted by the loader. ``options.virial_key`` names a per-frame virial W (energy units,
  3×3/9/6 values) instead: stress = -W / V, V the cell volume.
* A quantity must be present in every frame of a file or in none (and in all files or none).

The generic ``ase`` format reads any file ASE reads (``ase.io.read``; OUTCAR, vasprun.xml,
``.traj``, ``.db``, ``.xsf``, ...) the same way, with ASE's format detection or
``options.ase_format``; energy/forces/stress come from the calculator results or info/arrays keys.
"""

from __future__ import annotations

import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mlffbench.data.formats._common import check_finite, file_labels, zero_open_directions
from mlffbench.data.structures import StructureSet, concatenate, from_arrays
from mlffbench.errors import DataError
from mlffbench.plugin.registry import DatasetCard, FormatSpec

_FIELDS = ("energy", "forces", "stress")
VOIGT_ASE = "xx yy zz yz xz xy"
_AXIS = {"x": 0, "y": 1, "z": 2}


def read(paths: Sequence[Path], card: DatasetCard) -> StructureSet:
    return _read(paths, card, "extxyz")


def read_ase(paths: Sequence[Path], card: DatasetCard) -> StructureSet:
    fmt = card.options.get("ase_format")
    if fmt is not None and (not isinstance(fmt, str) or not fmt):
        raise DataError(f"dataset card '{card.name}': options.ase_format must be a non-empty string")
    return _read(paths, card, fmt)


def _read(paths: Sequence[Path], card: DatasetCard, ase_format: str | None) -> StructureSet:
    keys: dict[str, Any] = {}
    for field in _FIELDS:
        key = card.options.get(f"{field}_key", field)
        if not isinstance(key, str) or not key:
            raise DataError(f"dataset card '{card.name}': options.{field}_key must be a non-empty string")
        keys[field] = key
    virial_key = card.options.get("virial_key")
    if virial_key is not None:
        if not isinstance(virial_key, str) or not virial_key:
            raise DataError(f"dataset card '{card.name}': options.virial_key must be a non-empty string")
        keys["stress"] = virial_key
    keys["virial"] = virial_key is not None
    keys["voigt"] = str(card.options.get("voigt_order", VOIGT_ASE))
    group_key = card.options.get("group_key")
    if group_key is not None and (not isinstance(group_key, str) or not group_key):
        raise DataError(f"dataset card '{card.name}': options.group_key must be a non-empty string")
    labels = file_labels(paths, card)
    sets = [_read_file(Path(p), labels[i], keys, card.name, group_key, ase_format) for i, p in enumerate(paths)]
    for field in _FIELDS:
        have = [getattr(s, field) is not None for s in sets]
        if any(have) and not all(have):
            with_, without = paths[have.index(True)], paths[have.index(False)]
            raise DataError(f"{without}: no field '{keys[field]}' although {with_} has it")
    return concatenate(sets, name=card.name).validate(card.name)


def _ase_frames(path: Path, ase_format: str | None):
    """All frames of a file in any format ASE reads; DataError with ASE's reason otherwise."""
    import ase.io
    from ase.io.formats import UnknownFileTypeError

    try:
        frames = ase.io.read(path, index=":", format=ase_format)
    except UnknownFileTypeError as exc:
        raise DataError(f"{path}: ASE does not know this file's format ({exc}); give it with --format") from None
    except UnicodeDecodeError:
        raise DataError(
            f"{path}: ASE cannot read it as {ase_format or 'its detected format'} (not a text file)"
        ) from None
    except Exception as exc:  # noqa: BLE001 - readers raise anything: ValueError, IndexError, StopIteration, ...
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{path}: ASE cannot read it as {ase_format or 'its detected format'} ({reason})") from None
    return iter(frames if isinstance(frames, list) else [frames])


def _read_file(
    path: Path, label: str, keys: dict, name: str, group_key: str | None = None, ase_format: str | None = "extxyz"
) -> StructureSet:
    import ase.io

    if not path.is_file():
        raise DataError(f"{path}: file not found")
    frames: list[dict] = []
    iterator = (
        ase.io.iread(path, index=":", format="extxyz") if ase_format == "extxyz" else _ase_frames(path, ase_format)
    )
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
            except Exception as exc:  # noqa: BLE001 - ASE raises XYZError, ValueError, IndexError... on malformed frames
                message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise DataError(f"{where}: malformed extended XYZ ({message}; truncated file?)") from None
            frame = _frame(atoms, keys, where)
            if group_key is not None:
                if group_key not in atoms.info:
                    raise DataError(f"{where}: no info key '{group_key}' (the card's options.group_key)")
                frame["group"] = str(atoms.info[group_key])
            frames.append(frame)
    finally:
        if hasattr(iterator, "close"):
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


def _frame(atoms, keys: dict[str, Any], where: str) -> dict:
    n = len(atoms)
    if n == 0:
        raise DataError(f"{where}: no atoms")
    out: dict[str, Any] = {
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
        try:
            stress = np.asarray(stress, np.float64)
        except (TypeError, ValueError):
            raise DataError(f"{where}: field '{keys['stress']}' is not an array of numbers") from None
        from_calc = atoms.calc is not None and keys["stress"] in atoms.calc.results
        if stress.shape == (6,):  # ASE's calculator results are in ASE's Voigt order
            stress = voigt_to_matrix(stress, VOIGT_ASE if from_calc else keys["voigt"])
        elif stress.shape == (9,):
            stress = stress.reshape(3, 3)
        if stress.shape != (3, 3):
            raise DataError(
                f"{where}: field '{keys['stress']}' has shape {stress.shape}, expected 6, 9 or (3, 3) values"
            )
        check_finite(stress[None], where, keys["stress"])
        if keys["virial"]:
            volume = abs(float(np.linalg.det(out["cell"]))) if out["pbc"].all() else 0.0
            if not volume > 0:
                raise DataError(f"{where}: a virial ('{keys['stress']}') needs a periodic cell with a volume")
            stress = -stress / volume
    out["stress"] = stress
    return out


def voigt_to_matrix(values: np.ndarray, order: str = VOIGT_ASE) -> np.ndarray:
    """Six stress components in the given order (e.g. ``"xx yy zz yz xz xy"``) as a symmetric 3×3."""
    out = np.zeros((3, 3))
    for value, pair in zip(values, order.lower().replace(",", " ").split(), strict=True):
        i, j = _AXIS[pair[0]], _AXIS[pair[1]]
        out[i, j] = out[j, i] = value
    return out


FORMAT = FormatSpec(
    name="extxyz",
    read=read,
    description="extended XYZ via ASE (energy, forces, stress; dummy cells of non-periodic frames dropped)",
)
ASE_FORMAT = FormatSpec(
    name="ase",
    read=read_ase,
    description="any file ASE reads (OUTCAR, vasprun.xml, .traj, .db, .xsf, extxyz...; options.ase_format)",
)
