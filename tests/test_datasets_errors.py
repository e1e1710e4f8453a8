"""Malformed input: small broken copies of the real files give one clear DataError naming the
file and the field, and the originals in the data directory are never touched."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest

from mlffbench.data.fetch import locate_files
from mlffbench.data.loading import load_dataset
from mlffbench.errors import DataError
from mlffbench.plugin.manager import get_registry
from mlffbench.plugin.registry import DataFile


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module", autouse=True)
def originals_untouched(data_dir):
    """After all tests of this module, every original file still has its published sha256."""
    yield
    for line in (data_dir / "SHA256SUMS").read_text().splitlines():
        digest, rel = line.split(None, 1)
        assert _sha(data_dir / rel.strip()) == digest, f"{rel} was modified"


def _broken_copy(name: str, data_dir: Path, tmp_path: Path, rel: str, mutate: Callable[[Path], None]):
    """Copy a dataset's files into tmp_path, break one, and load it with matching checksums."""
    card = get_registry().dataset(name)
    files = []
    for f in card.files:
        target = tmp_path / "data" / f.path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(data_dir / f.path, target)
        if f.path == rel:
            mutate(target)
        files.append(DataFile(path=f.path, sha256=_sha(target), url="", role=f.role))
    assert rel in {f.path for f in card.files}
    broken = card.replace(files=tuple(files))
    with pytest.raises(DataError) as err:
        load_dataset(broken, data_dir=tmp_path / "data", cache_dir=tmp_path / "cache", download=False)
    assert _sha(data_dir / rel) == next(f.sha256 for f in card.files if f.path == rel)
    message = str(err.value)
    assert "\n" not in message
    assert str(tmp_path / "data" / rel) in message  # names the broken file
    return message


# ------------------------------------------------------------------------------ NeuralIL JSON
EAN = "ean_neuralil/validation_original.json"


def _edit_line(index: int, edit: Callable[[dict], dict | str]):
    def mutate(path: Path) -> None:
        lines = path.read_text().splitlines()
        new = edit(json.loads(lines[index]))
        lines[index] = new if isinstance(new, str) else json.dumps(new)
        path.write_text("\n".join(lines) + "\n")

    return mutate


def test_ean_truncated_line(data_dir, tmp_path):
    def truncate(path: Path) -> None:
        text = path.read_text()
        lines = text.splitlines(keepends=True)
        path.write_text("".join(lines[:2]) + lines[2][: len(lines[2]) // 2])

    message = _broken_copy("ean", data_dir, tmp_path, EAN, truncate)
    assert "line 3: invalid JSON" in message


def test_ean_missing_key(data_dir, tmp_path):
    message = _broken_copy(
        "ean", data_dir, tmp_path, EAN, _edit_line(2, lambda r: {k: v for k, v in r.items() if k != "Forces"})
    )
    assert message.endswith("line 3: missing key 'Forces'")


def test_ean_nan_energy(data_dir, tmp_path):
    message = _broken_copy("ean", data_dir, tmp_path, EAN, _edit_line(1, lambda r: {**r, "Energy": float("nan")}))
    assert "line 2: field 'Energy' is NaN" in message


def test_ean_wrong_positions_shape(data_dir, tmp_path):
    message = _broken_copy(
        "ean", data_dir, tmp_path, EAN, _edit_line(3, lambda r: {**r, "Positions": r["Positions"][:-1]})
    )
    assert "line 4: field 'Positions' has shape (224, 3), expected (225, 3)" in message


def test_ean_nan_force(data_dir, tmp_path):
    def edit(r):
        r["Forces"][7][1] = float("nan")
        return r

    message = _broken_copy("ean", data_dir, tmp_path, EAN, _edit_line(5, edit))
    assert "line 6: field 'Forces' contains NaN" in message


def test_ean_atom_order_must_match_the_card(data_dir, tmp_path):
    card = get_registry().dataset("ean")
    wrong = card.replace(
        options={"species": [{"repeat": 14, "symbols": list("NHHHCHHCHHH")}, {"repeat": 15, "symbols": list("NOOO")}]}
    )
    with pytest.raises(
        DataError, match=r"validation_original.json line 1: field 'Natoms' is 225, but the card's atom order has 214"
    ):
        load_dataset(wrong, data_dir=data_dir, cache_dir=tmp_path, download=False)
    with pytest.raises(DataError, match=r"unknown element 'Qq' in dataset card 'ean' options"):
        load_dataset(
            card.replace(options={"symbols": ["Qq"] * 225}), data_dir=data_dir, cache_dir=tmp_path, download=False
        )


# --------------------------------------------------------------------------------- extxyz
ETHANOL = "botnet_ethanol/train.xyz"


def test_extxyz_unknown_element(data_dir, tmp_path):
    def mutate(path: Path) -> None:
        lines = path.read_text().splitlines(keepends=True)
        lines[2 * 11 + 2] = "Qq" + lines[2 * 11 + 2][1:]  # first atom of frame 2 (11 lines per frame)
        path.write_text("".join(lines))

    message = _broken_copy("botnet-ethanol", data_dir, tmp_path, ETHANOL, mutate)
    assert "frame 2: unknown element 'Qq' (field 'species')" in message


def test_extxyz_truncated(data_dir, tmp_path):
    def mutate(path: Path) -> None:
        lines = path.read_text().splitlines(keepends=True)
        path.write_text("".join(lines[: 11 * 5 + 6]))  # frame 5 stops after 4 of its 9 atoms

    message = _broken_copy("botnet-ethanol", data_dir, tmp_path, ETHANOL, mutate)
    assert "frame 5: malformed extended XYZ" in message


def test_extxyz_nan_energy(data_dir, tmp_path):
    def mutate(path: Path) -> None:
        lines = path.read_text().splitlines(keepends=True)
        header = lines[11 * 3 + 1]
        start = header.index(" energy=") + len(" energy=")
        end = header.index(" ", start)
        lines[11 * 3 + 1] = header[:start] + "nan" + header[end:]
        path.write_text("".join(lines))

    message = _broken_copy("botnet-ethanol", data_dir, tmp_path, ETHANOL, mutate)
    assert "frame 3: field 'energy' is NaN" in message


def test_extxyz_forces_missing_in_one_file(data_dir, tmp_path):
    def mutate(path: Path) -> None:  # rewrite the test file without its forces columns
        out = []
        for line in path.read_text().splitlines():
            parts = line.split()
            if "Properties=" in line:
                line = line.replace(":forces:R:3", "")
            elif len(parts) == 7:
                line = " ".join(parts[:4])
            out.append(line)
        path.write_text("\n".join(out) + "\n")

    message = _broken_copy("botnet-ethanol", data_dir, tmp_path, "botnet_ethanol/test_MD.xyz", mutate)
    assert "no field 'forces'" in message


# ----------------------------------------------------------------------------------- HDF5
ANI = "ani1_gdb_s01/ani_gdb_s01.h5"
COMP6 = "comp6_s66x8/s66x8_wb97x6-31gd.h5"


def test_truncated_hdf5(data_dir, tmp_path):
    def mutate(path: Path) -> None:
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])

    message = _broken_copy("ani1-s01", data_dir, tmp_path, ANI, mutate)
    assert "truncated or corrupt" in message


def test_hdf5_missing_dataset(data_dir, tmp_path):
    def mutate(path: Path) -> None:
        with h5py.File(path, "a") as f:
            del f["s66x8/mol07/energies"]

    message = _broken_copy("comp6-s66x8", data_dir, tmp_path, COMP6, mutate)
    assert "group '/s66x8/mol07': missing dataset 'energies'" in message


def test_hdf5_nan_energy_and_wrong_shape(data_dir, tmp_path):
    def nan(path: Path) -> None:
        with h5py.File(path, "a") as f:
            f["gdb11_s01/gdb11_s01-1/energies"][17] = np.nan

    message = _broken_copy("ani1-s01", data_dir, tmp_path / "nan", ANI, nan)
    assert "group '/gdb11_s01/gdb11_s01-1': field 'energies' contains NaN or infinity (conformation 17)" in message

    def shape(path: Path) -> None:
        with h5py.File(path, "a") as f:
            coords = f["s66x8/mol03/coordinates"][()]
            del f["s66x8/mol03/coordinates"]
            f["s66x8/mol03/coordinates"] = coords[:, :-1]

    message = _broken_copy("comp6-s66x8", data_dir, tmp_path / "shape", COMP6, shape)
    assert "group '/s66x8/mol03': field 'coordinates' has shape" in message


def test_hdf5_unknown_species(data_dir, tmp_path):
    def mutate(path: Path) -> None:
        with h5py.File(path, "a") as f:
            species = f["gdb11_s01/gdb11_s01-2/species"][()]
            species[0] = b"Q"
            f["gdb11_s01/gdb11_s01-2/species"][...] = species

    message = _broken_copy("ani1-s01", data_dir, tmp_path, ANI, mutate)
    assert "unknown element 'Q'" in message and "field 'species'" in message


# ------------------------------------------------------------------------------------ npz / npy
BENZENE = "rmd17_split01/rmd17_benzene_test_01.npz"


def _rewrite_npz(edit: Callable[[dict], dict]):
    def mutate(path: Path) -> None:
        with np.load(path) as raw:
            arrays = {k: raw[k] for k in raw.files}
        np.savez(path.with_suffix(""), **edit(arrays))  # np.savez adds the .npz suffix back

    return mutate


def test_npz_missing_key(data_dir, tmp_path):
    message = _broken_copy(
        "rmd17-benzene",
        data_dir,
        tmp_path,
        BENZENE,
        _rewrite_npz(lambda a: {k: v for k, v in a.items() if k != "forces"}),
    )
    assert message.endswith("missing key 'forces'")


def test_npz_wrong_shape_and_nan(data_dir, tmp_path):
    message = _broken_copy(
        "rmd17-benzene", data_dir, tmp_path / "a", BENZENE, _rewrite_npz(lambda a: {**a, "coords": a["coords"][:, :11]})
    )
    assert "field 'coords' has shape (1000, 11, 3), expected (n, 12, 3)" in message

    def nan(a):
        a["forces"][123, 4, 2] = np.inf
        return a

    message = _broken_copy("rmd17-benzene", data_dir, tmp_path / "b", BENZENE, _rewrite_npz(nan))
    assert "field 'forces' contains NaN or infinity (configuration 123)" in message


def test_npz_truncated(data_dir, tmp_path):
    def mutate(path: Path) -> None:
        path.write_bytes(path.read_bytes()[:5000])

    message = _broken_copy("rmd17-benzene", data_dir, tmp_path, BENZENE, mutate)
    assert "cannot be read as .npz" in message


def test_deepmd_wrong_coord_shape_and_unknown_type(data_dir, tmp_path):
    rel = "water_deepmd/data_2/set.000/coord.npy"

    def shape(path: Path) -> None:
        np.save(path, np.load(path)[:, :-1])

    message = _broken_copy("water", data_dir, tmp_path / "a", rel, shape)
    assert "field 'coord' has shape (80, 575), expected (n, 576)" in message

    rel = "water_deepmd/data_1/type_map.raw"
    message = _broken_copy("water", data_dir, tmp_path / "b", rel, lambda p: p.write_text("Ox\nH\n"))
    assert "unknown element 'Ox'" in message

    rel = "water_deepmd/data_3/set.000/energy.npy"
    message = _broken_copy("water", data_dir, tmp_path / "c", rel, lambda p: p.write_bytes(p.read_bytes()[:200]))
    assert "cannot be read as .npy" in message


# ------------------------------------------------------------------------- locating the files
def test_sha256_mismatch_names_file_expected_and_actual(data_dir, tmp_path):
    card = get_registry().dataset("ean")
    target = tmp_path / EAN
    target.parent.mkdir(parents=True)
    target.write_bytes((data_dir / EAN).read_bytes() + b"\n")
    with pytest.raises(DataError) as err:
        locate_files(card, tmp_path, download=False)
    message = str(err.value)
    assert str(target) in message
    assert f"expected {card.files[0].sha256}" in message
    assert _sha(target) in message
    assert target.read_bytes() == (data_dir / EAN).read_bytes() + b"\n"  # left for the user to inspect


def test_missing_file_without_download(tmp_path):
    card = get_registry().dataset("rmd17-toluene")
    with pytest.raises(DataError) as err:
        load_dataset("rmd17-toluene", data_dir=tmp_path, cache_dir=tmp_path / "cache", download=False)
    assert str(err.value).startswith(
        f"dataset 'rmd17-toluene': file '{card.files[0].path}' not found in DATA_DIR ({tmp_path})"
    )
    assert list(tmp_path.iterdir()) == []  # nothing created in the data dir


def test_unknown_dataset_and_format(tmp_path):
    from mlffbench.errors import UnknownNameError

    with pytest.raises(UnknownNameError, match="unknown dataset 'rmd17-nope'"):
        load_dataset("rmd17-nope", data_dir=tmp_path)
    card = get_registry().dataset("ean").replace(format="json-nope")
    with pytest.raises(UnknownNameError, match="unknown format 'json-nope'"):
        load_dataset(card, data_dir=tmp_path)
