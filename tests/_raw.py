"""Read the real datasets in /work/shared/data straight from their original files, for tests.

A stop-gap independent of the dataset layer: each reader builds a StructureSet with
``mlffbench.data.structures.from_arrays`` in eV / Å / eV/Å. The data folder comes from
MLFFBENCH_DATA_DIR, else the ``shared/data`` folder beside the repository.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import numpy as np

from mlffbench.data.elements import atomic_number
from mlffbench.data.structures import StructureSet, concatenate, from_arrays
from mlffbench.data.units import HARTREE_EV, KCAL_MOL_EV


def data_dir() -> Path:
    env = os.environ.get("MLFFBENCH_DATA_DIR")
    path = Path(env) if env else Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
    if not path.is_dir():
        raise FileNotFoundError(f"test data folder not found: {path} (set MLFFBENCH_DATA_DIR)")
    return path


EAN_CATION = ["N", "H", "H", "H", "C", "H", "H", "C", "H", "H", "H"]
EAN_ANION = ["N", "O", "O", "O"]
EAN_NUMBERS = np.array([atomic_number(s) for s in 15 * EAN_CATION + 15 * EAN_ANION], dtype=np.int32)


@functools.cache
def ean() -> StructureSet:
    """EAN validation set: 75 periodic configurations of 225 atoms (cubic 12.9 Å)."""
    positions, forces, energy, cells = [], [], [], []
    with open(data_dir() / "ean_neuralil" / "validation_original.json") as f:
        for line in f:
            if not line.strip():
                continue
            rec = json.loads(line)
            positions.append(np.asarray(rec["Positions"], dtype=np.float64))
            forces.append(np.asarray(rec["Forces"], dtype=np.float64))
            energy.append(float(rec["Energy"]))
            cells.append(np.diag(np.asarray(rec["Cell-Size"], dtype=np.float64)))
    c = len(energy)
    return from_arrays(
        numbers=np.tile(EAN_NUMBERS, c),
        positions=np.concatenate(positions),
        n_atoms=np.full(c, EAN_NUMBERS.size),
        cell=np.stack(cells),
        pbc=np.ones((c, 3), bool),
        energy=energy,
        forces=np.concatenate(forces),
        name="ean",
    ).validate()


@functools.cache
def water() -> StructureSet:
    """DeePMD water: 400 periodic configurations of 192 atoms (64 H2O)."""
    root = data_dir() / "water_deepmd"
    sets = []
    for system in sorted(root.glob("data_*")):
        type_map = (system / "type_map.raw").read_text().split()
        types = np.loadtxt(system / "type.raw", dtype=np.int64).reshape(-1)
        numbers = np.array([atomic_number(type_map[t]) for t in types], dtype=np.int32)
        for part in sorted(system.glob("set.*")):
            box = np.load(part / "box.npy").astype(np.float64).reshape(-1, 3, 3)
            coord = np.load(part / "coord.npy").astype(np.float64).reshape(-1, numbers.size, 3)
            energy = np.load(part / "energy.npy").astype(np.float64).reshape(-1)
            force = np.load(part / "force.npy").astype(np.float64).reshape(-1, numbers.size, 3)
            c = energy.shape[0]
            sets.append(
                from_arrays(
                    numbers=np.tile(numbers, c),
                    positions=coord.reshape(-1, 3),
                    n_atoms=np.full(c, numbers.size),
                    cell=box,
                    pbc=np.ones((c, 3), bool),
                    energy=energy,
                    forces=force.reshape(-1, 3),
                    origin=np.zeros(c),
                    origin_names=(f"{system.name}/{part.name}",),
                )
            )
    return concatenate(sets, name="water").validate()


HFO2_FILES = ("HfO2_mp352_ads_form_sorted.extxyz", "Hf_mp103_ads_form_sorted.extxyz")


@functools.cache
def hfo2() -> StructureSet:
    """HfO2/Hf slabs: 76 (train file) + 29 (test file) periodic configurations with vacuum."""
    import ase.io

    sets = []
    for name in HFO2_FILES:
        frames = ase.io.read(data_dir() / "hfo2_slabs_potentiallearning" / name, index=":")
        c = len(frames)
        # ase moves the extxyz energy/forces onto a single-point calculator
        sets.append(
            from_arrays(
                numbers=np.concatenate([a.numbers for a in frames]),
                positions=np.concatenate([a.positions for a in frames]),
                n_atoms=[len(a) for a in frames],
                cell=np.stack([a.cell[:] for a in frames]),
                pbc=np.stack([a.pbc for a in frames]),
                energy=[a.get_potential_energy() for a in frames],
                forces=np.concatenate([a.get_forces() for a in frames]),
                origin=np.zeros(c),
                origin_names=(name,),
            )
        )
    return concatenate(sets, name="hfo2").validate()


@functools.cache
def ani1() -> StructureSet:
    """ANI-1 s01: 10,800 free molecules (CH4, NH3, H2O), energies converted to eV, no forces."""
    import h5py

    sets = []
    with h5py.File(data_dir() / "ani1_gdb_s01" / "ani_gdb_s01.h5", "r") as f:
        root = f["gdb11_s01"]
        for key in sorted(root):
            g = root[key]
            symbols = [b.decode() for b in g["species"][()]]
            numbers = np.array([atomic_number(s) for s in symbols], dtype=np.int32)
            coords = g["coordinates"][()].astype(np.float64)
            energies = g["energies"][()].astype(np.float64) * HARTREE_EV
            c = coords.shape[0]
            sets.append(
                from_arrays(
                    numbers=np.tile(numbers, c),
                    positions=coords.reshape(-1, 3),
                    n_atoms=np.full(c, numbers.size),
                    energy=energies,
                    group=np.zeros(c),
                    group_names=(key,),
                )
            )
    return concatenate(sets, name="ani1").validate()


@functools.cache
def rmd17(molecule: str, part: str = "train") -> StructureSet:
    """One rMD17 file (split 01): 1000 free molecules, energies in eV and forces in eV/Å."""
    name = f"rmd17_{molecule}_{part}_01.npz"
    with np.load(data_dir() / "rmd17_split01" / name) as f:
        z = f["nuclear_charges"].astype(np.int32)
        coords = f["coords"].astype(np.float64)
        energies = f["energies"].astype(np.float64) * KCAL_MOL_EV
        forces = f["forces"].astype(np.float64) * KCAL_MOL_EV
    c = coords.shape[0]
    return from_arrays(
        numbers=np.tile(z, c),
        positions=coords.reshape(-1, 3),
        n_atoms=np.full(c, z.size),
        energy=energies,
        forces=forces.reshape(-1, 3),
        origin=np.zeros(c),
        origin_names=(name,),
        name=f"rmd17_{molecule}",
    ).validate()
