"""The dataset layer on the real files: cards, counts, units, force signs, summaries, caching."""

from __future__ import annotations

import functools
import itertools
import json
import re
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from mlffbench.data import fetch, units
from mlffbench.data.cards import builtin_cards, load_card
from mlffbench.data.loading import config_roles, default_cache_dir, default_data_dir, load_dataset
from mlffbench.data.summary import describe
from mlffbench.errors import DataError
from mlffbench.plugin.manager import get_registry
from mlffbench.plugin.registry import FormatSpec

RMD17 = (
    "aspirin",
    "azobenzene",
    "benzene",
    "ethanol",
    "malonaldehyde",
    "naphthalene",
    "paracetamol",
    "salicylic",
    "toluene",
    "uracil",
)
RMD17_ATOMS = {
    "aspirin": 21,
    "azobenzene": 24,
    "benzene": 12,
    "ethanol": 9,
    "malonaldehyde": 9,
    "naphthalene": 18,
    "paracetamol": 20,
    "salicylic": 16,
    "toluene": 15,
    "uracil": 12,
}
NAMES = {
    "ean",
    "ani1-s01",
    "comp6-s66x8",
    "botnet-acac",
    "botnet-ethanol",
    "botnet-ethanol-dimers",
    "hfo2-slabs",
    "water",
} | {f"rmd17-{m}" for m in RMD17}

# name: (configurations, atoms per configuration (min, max), configurations per card role)
EXPECTED = {
    "ean": (75, (225, 225), {"": 75}),
    "ani1-s01": (10_800, (3, 5), {"": 10_800}),
    "comp6-s66x8": (528, (6, 34), {"": 528}),
    "botnet-acac": (1800, (15, 15), {"train": 500, "test": 1300}),
    "botnet-ethanol": (2000, (9, 9), {"train": 1000, "test": 1000}),
    "botnet-ethanol-dimers": (429, (2, 2), {"": 429}),
    "hfo2-slabs": (105, (60, 98), {"train": 76, "test": 29}),
    "water": (400, (192, 192), {"": 400}),
    **{f"rmd17-{m}": (2000, (n, n), {"train": 1000, "test": 1000}) for m, n in RMD17_ATOMS.items()},
}


@functools.cache
def _load(name: str, data_dir: Path):
    return load_dataset(name, data_dir=data_dir, download=False)


@pytest.fixture(scope="session")
def load(data_dir):
    return lambda name: _load(name, data_dir)


def _sums(data_dir: Path) -> dict[str, str]:
    out = {}
    for line in (data_dir / "SHA256SUMS").read_text().splitlines():
        digest, path = line.split(None, 1)
        out[path.strip()] = digest
    return out


# ----------------------------------------------------------------------------- cards & registry
def test_builtin_cards_are_registered_through_the_entry_point(data_dir):
    registry = get_registry()
    assert set(registry.datasets) == NAMES
    assert set(registry.formats) >= {"neuralil-jsonl", "ani1-hdf5", "comp6-hdf5", "rmd17-npz", "extxyz", "deepmd-npy"}
    assert not [p for p in registry.problems if "builtin_datasets" in p]
    for name in NAMES:
        assert registry.provider[("datasets", name)] == "builtin_datasets"
        card = registry.dataset(name)
        assert card.format in registry.formats
        assert card.family in {"ean", "ani1", "rmd17", "water", "hfo2", "botnet", "comp6"}
        assert card.license and card.citation and card.description


def test_card_checksums_and_urls_match_the_data_manifest(data_dir):
    sums = _sums(data_dir)
    cards = builtin_cards()
    assert {c.name for c in cards} == NAMES
    for card in cards:
        for f in card.files:
            assert sums[f.path] == f.sha256, (card.name, f.path)
            # raw file of a pinned commit: .../<owner>/<repo>/<40-hex commit>/<path ending in the file name>
            assert re.match(r"^https://raw\.githubusercontent\.com/[^/]+/[^/]+/[0-9a-f]{40}/.+", f.url), f.url
            assert f.url.endswith(Path(f.path).name)
    water = next(c for c in cards if c.name == "water")
    assert len(water.files) == 4 * 2 + 5 * 4  # type.raw + type_map.raw per system, 4 arrays per set


_HEAD = 'name = "x"\nformat = "extxyz"\n'
_UNITS = '[units]\nenergy = "eV"\nlength = "angstrom"\n'
_FILE = '[[files]]\npath = "a.xyz"\nsha256 = "' + "0" * 64 + '"\n'


@pytest.mark.parametrize(
    "text, message",
    [
        ('format = "extxyz"\n' + _UNITS + _FILE, "missing key 'name'"),
        (_HEAD + _UNITS, "missing key 'files'"),
        (_HEAD + _UNITS.replace('"eV"', '"erg"') + _FILE, "key 'units.energy': unknown energy unit 'erg'"),
        (_HEAD + _UNITS + _FILE.replace("0" * 64, "abc"), "key 'files[0].sha256'"),
        (_HEAD + _UNITS + _FILE + 'role = "val"\n', "key 'files[0].role'"),
        (_HEAD + _UNITS + _FILE + _FILE, "'a.xyz' is listed twice"),
        (_HEAD + _UNITS + _FILE.replace("a.xyz", "../a.xyz"), "key 'files[0].path'"),
        (_HEAD + _UNITS + _FILE + '[split]\npolicy = "files"\n', "key 'split.policy': 'files' needs"),
        (_HEAD + _UNITS + _FILE + '[split]\npolicy = "molecule"\n', "key 'split.policy'"),
        (_HEAD + _UNITS + _FILE + "[split]\nfractions = [0.5, 0.1]\n", "key 'split.fractions'"),
        (_HEAD + "units = 3\n" + _FILE, "key 'units'"),
        (_HEAD + "splitt = 1\n" + _UNITS + _FILE, "unknown key 'splitt'"),
        ('name = "x"\nformat = \n', "invalid TOML"),
    ],
    ids=lambda v: v if " " in v and "=" not in v else None,
)
def test_bad_cards_name_the_file_and_the_key(tmp_path, text, message):
    path = tmp_path / "bad_card.toml"
    path.write_text(text)
    with pytest.raises(DataError) as err:
        load_card(path)
    assert str(path) in str(err.value)
    assert message in str(err.value)


def test_a_card_round_trips_its_fields(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(
        'name = "tiny"\nfamily = "rmd17"\nformat = "rmd17-npz"\nlicense = "CC0-1.0"\n'
        '[units]\nenergy = "kcal/mol"\nlength = "angstrom"\n'
        '[[files]]\npath = "t/a.npz"\nsha256 = "' + "A" * 64 + '"\nrole = "train"\n'
        '[[files]]\npath = "t/b.npz"\nsha256 = "' + "b" * 64 + '"\nrole = "test"\nurl = "https://example.org/b.npz"\n'
        '[split]\npolicy = "files"\nfractions = [0.9, 0.1]\n[options]\nx = 1\n'
    )
    card = load_card(path)
    assert card.name == "tiny" and card.format == "rmd17-npz" and card.family == "rmd17"
    assert card.units == {"energy": "kcal/mol", "length": "angstrom"}
    assert [f.role for f in card.files] == ["train", "test"]
    assert card.files[0].sha256 == "a" * 64  # normalised to lower case
    assert card.files[1].url == "https://example.org/b.npz"
    assert card.split["policy"] == "files" and card.options == {"x": 1}
    assert card.source == str(path)


# ------------------------------------------------------------------------------------- counts
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_counts_and_roles(load, name):
    ds = load(name)
    card = get_registry().dataset(name)
    configs, (lo, hi), roles = EXPECTED[name]
    assert ds.n_configs == configs
    assert int(ds.n_atoms.min()) == lo and int(ds.n_atoms.max()) == hi
    got = dict(zip(*np.unique(config_roles(ds, card).astype(str), return_counts=True), strict=True))
    assert {k: int(v) for k, v in got.items()} == roles
    assert ds.name == name
    ds.validate()


# -------------------------------------------------------------------------------------- units
def test_ean_values_are_the_files_values(load, data_dir):
    ds = load("ean")
    lines = (data_dir / "ean_neuralil/validation_original.json").read_text().splitlines()
    first, last = json.loads(lines[0]), json.loads(lines[-1])
    assert ds.energy[0] == first["Energy"]  # eV, unchanged
    assert ds.energy[-1] == last["Energy"]
    np.testing.assert_array_equal(ds.positions[ds.atoms_of(0)], np.array(first["Positions"]))
    np.testing.assert_array_equal(ds.forces[ds.atoms_of(74)], np.array(last["Forces"]))
    np.testing.assert_allclose(ds.cell[0], np.diag([12.9] * 3))
    assert ds.pbc.all()
    cation, anion = ["N", "H", "H", "H", "C", "H", "H", "C", "H", "H", "H"], ["N", "O", "O", "O"]
    from mlffbench.data import elements

    assert [elements.symbol(z) for z in ds.numbers[ds.atoms_of(3)]] == cation * 15 + anion * 15


def test_ani1_energies_are_hartree_times_27_211386(load, data_dir):
    ds = load("ani1-s01")
    assert ds.forces is None and ds.stress is None and not ds.pbc.any()
    with h5py.File(data_dir / "ani1_gdb_s01/ani_gdb_s01.h5", "r") as f:
        root = f["gdb11_s01"]
        assert sorted(ds.group_names) == sorted(root.keys())
        for name in root:
            sel = np.flatnonzero(ds.group == ds.group_names.index(name))
            hartree = root[name]["energies"][()]
            np.testing.assert_allclose(ds.energy[sel], hartree * 27.211386, rtol=1e-6)
            coords = root[name]["coordinates"][()]
            got = np.concatenate([ds.positions[ds.atoms_of(i)] for i in sel[:50]])
            np.testing.assert_array_equal(got, coords[:50].reshape(-1, 3).astype(np.float64))
    formulas = {ds.group_names[g]: ds.formula(int(np.flatnonzero(ds.group == g)[0])) for g in range(3)}
    assert formulas == {"gdb11_s01-0": "CH4", "gdb11_s01-1": "H3N", "gdb11_s01-2": "H2O"}


@pytest.mark.parametrize("molecule", RMD17)
def test_rmd17_is_kcal_per_mol_times_0_0433641(load, data_dir, molecule):
    ds = load(f"rmd17-{molecule}")
    card = get_registry().dataset(f"rmd17-{molecule}")
    roles = config_roles(ds, card)
    for role in ("train", "test"):
        with np.load(data_dir / f"rmd17_split01/rmd17_{molecule}_{role}_01.npz") as raw:
            sel = np.flatnonzero(roles == role)
            np.testing.assert_allclose(ds.energy[sel], raw["energies"] * 0.0433641, rtol=1e-6)
            n = raw["nuclear_charges"].shape[0]
            forces = np.concatenate([ds.forces[ds.atoms_of(i)] for i in sel[:20]]).reshape(20, n, 3)
            np.testing.assert_allclose(forces, raw["forces"][:20] * 0.0433641, rtol=1e-6)
            assert (ds.numbers[ds.atoms_of(int(sel[0]))] == raw["nuclear_charges"]).all()


def test_water_frames_cell_and_species(load, data_dir):
    ds = load("water")
    assert ds.n_configs == 400 and set(ds.n_atoms.tolist()) == {192}
    assert ds.pbc.all()
    np.testing.assert_allclose(ds.cell, np.broadcast_to(np.eye(3) * 12.444661, (400, 3, 3)), atol=1e-5)
    assert ds.formula(0) == "H128O64"
    assert (ds.numbers[:64] == 8).all() and (ds.numbers[64:192] == 1).all()
    assert list(ds.origin_names) == [
        "water_deepmd/data_0/set.000",
        "water_deepmd/data_1/set.000",
        "water_deepmd/data_1/set.001",
        "water_deepmd/data_2/set.000",
        "water_deepmd/data_3/set.000",
    ]
    raw = np.load(data_dir / "water_deepmd/data_1/set.001/energy.npy")
    sel = np.flatnonzero(ds.origin == 2)
    np.testing.assert_array_equal(ds.energy[sel], raw.astype(np.float64))
    force = np.load(data_dir / "water_deepmd/data_3/set.000/force.npy")
    last = ds.forces[ds.atoms_of(399)]
    np.testing.assert_array_equal(last, force[-1].reshape(192, 3).astype(np.float64))
    assert len(ds.group_names) == 4  # one group per DeePMD system


def test_hfo2_has_stress_in_ase_convention_and_pbc(load, data_dir):
    ds = load("hfo2-slabs")
    assert ds.stress is not None and ds.stress.shape == (105, 3, 3)
    assert ds.pbc.all() and (np.linalg.norm(ds.cell, axis=2) > 5).all()
    header = (data_dir / "hfo2_slabs_potentiallearning/HfO2_mp352_ads_form_sorted.extxyz").read_text().splitlines()[1]
    stress = np.array(re.search(r'stress="([^"]+)"', header).group(1).split(), float).reshape(3, 3)
    energy = float(re.search(r"\benergy=(\S+)", header).group(1))
    np.testing.assert_array_equal(ds.stress[0], stress)  # eV/Å³, stored as written (ASE sign convention)
    assert ds.energy[0] == energy
    np.testing.assert_allclose(ds.stress, ds.stress.transpose(0, 2, 1))
    assert set(ds.elements) == {8, 72}


@pytest.mark.parametrize(
    "name, file", [("botnet-acac", "botnet_acac/train_300K.xyz"), ("botnet-ethanol", "botnet_ethanol/train.xyz")]
)
def test_botnet_molecules_are_not_periodic(load, data_dir, name, file):
    ds = load(name)
    assert not ds.pbc.any()
    assert (ds.cell == 0).all()  # the dummy 50 Å lattice is dropped
    header = (data_dir / file).read_text().splitlines()[1]
    assert 'pbc="F F F"' in header and 'Lattice="50.0' in header
    assert ds.energy[0] == float(re.search(r"\benergy=(\S+)", header).group(1))
    first_atom = (data_dir / file).read_text().splitlines()[2].split()
    np.testing.assert_array_equal(ds.forces[0], np.array(first_atom[4:7], float))


# ------------------------------------------------------------------- energy/force consistency
def _work_ratio(e1, e2, x1, x2, f1, f2, box=None) -> float:
    """ΔE / (−½(F₁+F₂)·Δx): ≈ +1 when forces are −dE/dx in the energy's units."""
    dx = x2 - x1
    if box is not None:
        dx -= box * np.round(dx / box)
    return float((e2 - e1) / (-0.5 * np.sum((f1 + f2) * dx)))


def test_ean_energy_decreases_along_the_forces(load):
    ds = load("ean")
    c = ds.n_configs
    pos = ds.positions.reshape(c, 225, 3)
    frc = ds.forces.reshape(c, 225, 3)
    box = np.diagonal(ds.cell, axis1=1, axis2=2)
    pairs = []
    for i in range(c):
        for j in range(i + 1, c):
            if not np.array_equal(ds.cell[i], ds.cell[j]):
                continue  # a few frames store the box as float32; compare like with like
            dx = pos[j] - pos[i]
            dx -= box[i] * np.round(dx / box[i])
            pairs.append((float(np.linalg.norm(dx)), i, j))
    pairs.sort()
    ratios = [_work_ratio(ds.energy[i], ds.energy[j], pos[i], pos[j], frc[i], frc[j], box[i]) for _, i, j in pairs[:5]]
    assert all(0.7 < r < 1.3 for r in ratios), ratios
    # with the sign of the forces flipped, the same pairs give clearly negative ratios
    flipped = [
        _work_ratio(ds.energy[i], ds.energy[j], pos[i], pos[j], -frc[i], -frc[j], box[i]) for _, i, j in pairs[:5]
    ]
    assert all(r < -0.7 for r in flipped)


def test_comp6_forces_are_minus_the_stored_gradients(load, data_dir):
    ds = load("comp6-s66x8")
    assert len(ds.group_names) == 66 and ds.stress is None
    closest = []
    offsets = ds.offsets
    for g in range(66):
        idx = np.flatnonzero(ds.group == g)
        assert idx.size == 8
        best = None
        for a, b in itertools.pairwise(idx):
            xa, xb = ds.positions[offsets[a] : offsets[a + 1]], ds.positions[offsets[b] : offsets[b + 1]]
            fa, fb = ds.forces[offsets[a] : offsets[a + 1]], ds.forces[offsets[b] : offsets[b + 1]]
            dist = float(np.linalg.norm(xb - xa))
            if best is None or dist < best[0]:
                best = (dist, _work_ratio(ds.energy[a], ds.energy[b], xa, xb, fa, fb))
        closest.append(best[1])
    closest = np.array(closest)
    assert 0.9 < np.median(closest) < 1.1
    assert np.mean((closest > 0.7) & (closest < 1.3)) > 0.8
    # and the numbers are the file's gradients × −27.211386 (Hartree/Å → eV/Å, sign flipped)
    with h5py.File(data_dir / "comp6_s66x8/s66x8_wb97x6-31gd.h5", "r") as f:
        grad = f["s66x8/mol00/forces"][()].astype(np.float64)
        hartree = f["s66x8/mol00/energies"][()]
    sel = np.flatnonzero(ds.group == ds.group_names.index("mol00"))
    np.testing.assert_allclose(ds.forces[ds.atoms_of(int(sel[0]))], -grad[0] * units.HARTREE_EV, rtol=1e-6)
    np.testing.assert_allclose(ds.energy[sel], hartree * 27.211386, rtol=1e-6)


# -------------------------------------------------------------------------------------- summary
def test_describe_ean_matches_the_reference_statistics(load):
    ds = load("ean")
    d = describe(ds, get_registry().dataset("ean"))
    assert json.loads(json.dumps(d)) == d  # plain JSON types only
    assert d["configurations"] == 75 and d["atoms_total"] == 75 * 225
    assert d["elements"] == ["H", "C", "N", "O"]
    assert d["formulas"] == {"C30H120N30O45": 75}
    assert d["periodic"] == "yes"
    np.testing.assert_allclose(d["cell"], [12.9] * 3, atol=1e-6)
    assert d["has_energy"] and d["has_forces"] and not d["has_stress"]
    # docs/models/data.md §3: −5.6226 eV/atom, force component std 0.769 eV/Å, mean |F_c| 0.440 eV/Å
    assert d["energy_per_atom_mean"] == pytest.approx(-5.6226, abs=1e-4)
    assert d["force_component_std"] == pytest.approx(0.769, abs=1e-3)
    assert d["force_mean_abs"] == pytest.approx(0.440, abs=1e-3)
    assert d["energy_min"] == pytest.approx(-1272.54, abs=0.01) and d["energy_max"] == pytest.approx(-1181.61, abs=0.01)
    assert d["files"] == {"all": 75}
    assert d["fingerprint"] == ds.fingerprint()


def test_describe_other_datasets(load):
    reg = get_registry()
    rmd = describe(load("rmd17-aspirin"), reg.dataset("rmd17-aspirin"))
    assert rmd["files"] == {"test": 1000, "train": 1000} and rmd["periodic"] == "no" and rmd["cell"] is None
    assert rmd["formulas"] == {"C9H8O4": 2000}
    ani = describe(load("ani1-s01"), reg.dataset("ani1-s01"))
    assert ani["formulas"] == {"CH4": 5400, "H3N": 3600, "H2O": 1800} and ani["groups"] == 3
    assert not ani["has_forces"] and ani["force_mean_abs"] is None
    hfo2 = describe(load("hfo2-slabs"), reg.dataset("hfo2-slabs"))
    assert hfo2["has_stress"] and hfo2["periodic"] == "yes" and hfo2["cell"] is None  # cells differ
    assert hfo2["formulas"]["Hf72O2"] == 19 and sum(hfo2["formulas"].values()) <= 105
    json.dumps([rmd, ani, hfo2])


# -------------------------------------------------------------------------------------- caching
def test_parsed_set_is_cached_and_a_corrupt_cache_is_rewritten(data_dir, tmp_path, monkeypatch):
    reg = get_registry()
    first = load_dataset("ean", data_dir=data_dir, cache_dir=tmp_path, download=False)
    files = list((tmp_path / "datasets").glob("ean-*.h5"))
    assert len(files) == 1

    def refuse(paths, card):
        raise AssertionError("the adapter must not run when the cache is valid")

    original = reg.formats["neuralil-jsonl"]
    monkeypatch.setitem(reg.formats, "neuralil-jsonl", FormatSpec("neuralil-jsonl", refuse))
    again = load_dataset("ean", data_dir=data_dir, cache_dir=tmp_path, download=False)
    assert again.fingerprint() == first.fingerprint()

    files[0].write_bytes(b"this is not HDF5")
    with pytest.raises(AssertionError, match="must not run"):
        load_dataset("ean", data_dir=data_dir, cache_dir=tmp_path, download=False)
    monkeypatch.setitem(reg.formats, "neuralil-jsonl", original)
    rebuilt = load_dataset("ean", data_dir=data_dir, cache_dir=tmp_path, download=False)
    assert rebuilt.fingerprint() == first.fingerprint()
    with h5py.File(files[0], "r") as f:  # rewritten as a valid cache file
        assert f.attrs["mlffbench_fingerprint"] == first.fingerprint()
    assert not [p for p in (tmp_path / "datasets").iterdir() if p.name.startswith(".")]  # no temp files left


def test_cache_key_depends_on_the_card_options(data_dir, tmp_path):
    card = get_registry().dataset("ean")
    load_dataset(card, data_dir=data_dir, cache_dir=tmp_path, download=False)
    species = [{"repeat": 15, "symbols": list("NHHHCHHCHHH")}, {"repeat": 15, "symbols": ["N", "O", "O", "N"]}]
    other = load_dataset(
        card.replace(options={"species": species}), data_dir=data_dir, cache_dir=tmp_path, download=False
    )
    assert other.formula(0) == "C30H120N45O30"  # not served from the first card's cache entry
    assert len(list((tmp_path / "datasets").glob("ean-*.h5"))) == 2


def test_sha256_is_remembered_across_processes_until_the_file_changes(data_dir, tmp_path, monkeypatch):
    card = get_registry().dataset("comp6-s66x8")
    fetch.forget_hashes()
    fetch.locate_files(card, data_dir, download=False, cache_dir=tmp_path)
    assert (tmp_path / "sha256.json").is_file()
    fetch.forget_hashes()  # as in a new process: only the on-disk record is left

    def no_hashing(path):
        raise AssertionError(f"{path} hashed again")

    monkeypatch.setattr(fetch, "sha256_file", no_hashing)
    fetch.locate_files(card, data_dir, download=False, cache_dir=tmp_path)

    # a copy that is changed in place (new size and mtime) is hashed again and rejected
    copy_dir = tmp_path / "copy"
    target = copy_dir / card.files[0].path
    target.parent.mkdir(parents=True)
    target.write_bytes((data_dir / card.files[0].path).read_bytes())
    monkeypatch.undo()
    fetch.locate_files(card, copy_dir, download=False, cache_dir=tmp_path)
    with target.open("ab") as f:
        f.write(b"\0")
    with pytest.raises(DataError, match="has sha256"):
        fetch.locate_files(card, copy_dir, download=False, cache_dir=tmp_path)


def test_default_directories(monkeypatch, tmp_path):
    monkeypatch.setenv("MLFFBENCH_DATA_DIR", str(tmp_path / "env-data"))
    monkeypatch.setenv("MLFFBENCH_CACHE_DIR", str(tmp_path / "env-cache"))
    assert default_data_dir(tmp_path / "explicit") == tmp_path / "explicit"
    assert default_data_dir() == tmp_path / "env-data"
    assert default_cache_dir() == tmp_path / "env-cache"
    monkeypatch.delenv("MLFFBENCH_DATA_DIR")
    monkeypatch.delenv("MLFFBENCH_CACHE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_data_dir() == tmp_path / "home/.cache/mlffbench/data"
    assert default_cache_dir() == tmp_path / "home/.cache/mlffbench/cache"


def test_dataset_modules_import_neither_jax_nor_torch(data_dir, tmp_path):
    code = (
        "import sys, json\n"
        "from mlffbench.data import builtin, loading, summary\n"
        "registry = {}\n"
        "builtin.mlffbench_formats(register=lambda s: registry.setdefault(s.name, s))\n"
        "cards = []\n"
        "builtin.mlffbench_datasets(register=cards.append)\n"
        "card = next(c for c in cards if c.name == 'ean')\n"
        "ds = registry[card.format].read([loading.default_data_dir() / f.path for f in card.files], card)\n"
        "print(json.dumps([ds.n_configs, sorted(m for m in ('jax', 'torch', 'flax') if m in sys.modules)]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(out.stdout) == [75, []]
