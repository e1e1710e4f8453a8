"""Splits: reproducible across processes, group- and formula-aware, safely saved and loaded."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _raw

from mlffbench.data.splits import Split, make_split
from mlffbench.errors import ConfigError, DataError, RunError


def assert_partition(split: Split, n: int):
    for part in (split.train, split.val, split.test):
        assert part.dtype == np.int64 and (np.diff(part) > 0).all()
    joined = np.concatenate([split.train, split.val, split.test])
    assert np.array_equal(np.sort(joined), np.arange(n))


def test_random_split_counts_and_determinism():
    ds = _raw.ean()
    split = make_split(ds, "random", (0.8, 0.1, 0.1), seed=0)
    assert_partition(split, 75)
    assert split.sizes == {"train": 60, "val": 8, "test": 7}  # cumulative rounding: 60, 67.5 -> 68, 75
    again = make_split(ds, "random", (0.8, 0.1, 0.1), seed=0)
    assert again.fingerprint == split.fingerprint and np.array_equal(again.val, split.val)
    assert split.dataset_fingerprint == ds.fingerprint() and len(split.fingerprint) == 64
    other_seed = make_split(ds, "random", (0.8, 0.1, 0.1), seed=1)
    assert other_seed.fingerprint != split.fingerprint and not np.array_equal(other_seed.train, split.train)
    other_fractions = make_split(ds, "random", (0.6, 0.2, 0.2), seed=0)
    assert other_fractions.fingerprint != split.fingerprint
    assert other_fractions.sizes == {"train": 45, "val": 15, "test": 15}
    # the permutation is numpy's PCG64 one, reproducible from the documented recipe
    perm = np.random.default_rng(0).permutation(75)
    assert np.array_equal(split.train, np.sort(perm[:60]))


def test_same_fingerprint_in_a_separate_process():
    ds = _raw.ean()
    here = make_split(ds, "random", (0.8, 0.1, 0.1), seed=7)
    ani_here = make_split(_raw.ani1(), "group", (0.8, 0.1, 0.1), seed=3)
    code = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(HERE)!r})
        import _raw
        from mlffbench.data.splits import make_split
        print(make_split(_raw.ean(), "random", (0.8, 0.1, 0.1), seed=7).fingerprint)
        print(make_split(_raw.ani1(), "group", (0.8, 0.1, 0.1), seed=3).fingerprint)
        """
    )
    env = dict(os.environ, MLFFBENCH_DATA_DIR=str(_raw.data_dir()), PYTHONHASHSEED="123")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True, timeout=120)
    assert out.stdout.split() == [here.fingerprint, ani_here.fingerprint]


def test_group_split_keeps_ani1_molecules_whole():
    ds = _raw.ani1()
    for seed in range(3):
        split = make_split(ds, "group", (0.8, 0.1, 0.1), seed=seed)
        assert_partition(split, ds.n_configs)
        groups = [set(np.unique(ds.group[p]).tolist()) for p in (split.train, split.val, split.test)]
        assert all(len(g) == 1 for g in groups), "3 molecules, 3 non-empty parts: one molecule each"
        assert set.union(*groups) == {0, 1, 2}
        assert split.sizes["train"] == 5400  # the biggest molecule (CH4) goes to train
        # held-out NH3 / H2O bring elements the training part never saw: named per part
        unseen = split.unseen_elements(ds)
        held_out = {name: {"N": 3600, "O": 1800}[symbols[0]] for name, symbols in unseen.items()}
        assert sorted(unseen.values()) == [["N"], ["O"]]
        assert held_out == {"val": split.sizes["val"], "test": split.sizes["test"]}
    # a random split of EAN sees every element in training
    assert make_split(_raw.ean(), "random", (0.8, 0.1, 0.1), seed=0).unseen_elements(_raw.ean()) == {}


def test_group_split_on_synthetic_ean_groups():
    ds = _raw.ean()
    rng = np.random.default_rng(11)
    group = np.sort(rng.integers(0, 20, size=75))  # 20 "trajectories" of uneven length
    ds = dataclasses.replace(ds, group=group, group_names=tuple(f"g{i}" for i in range(20)))
    assignments = set()
    for seed in range(10):
        split = make_split(ds, "group", (0.6, 0.2, 0.2), seed=seed)
        assert_partition(split, 75)
        owner = {}
        for k, part in enumerate((split.train, split.val, split.test)):
            for gid in np.unique(group[part]):
                assert owner.setdefault(int(gid), k) == k, f"group {gid} in two parts (seed {seed})"
        largest = np.bincount(group).max()
        assert abs(split.sizes["train"] - 45) <= largest and abs(split.sizes["test"] - 15) <= largest
        assert min(split.sizes.values()) > 0
        assignments.add(tuple(np.unique(group[split.test]).tolist()))
    assert len(assignments) > 1, "the seed should change which groups go where"
    with pytest.raises(DataError, match="no groups"):
        make_split(_raw.ean(), "group")


def test_formula_holdout():
    ds = _raw.ani1()
    split = make_split(ds, "formula", (0.8, 0.2, 0.0), seed=0, holdout=["H3N"])
    assert_partition(split, ds.n_configs)
    formulas = np.array([ds.formula(i) for i in range(ds.n_configs)])
    assert np.array_equal(split.test, np.flatnonzero(formulas == "H3N"))
    assert set(formulas[split.train]) == set(formulas[split.val]) == {"CH4", "H2O"}
    assert split.sizes["val"] == round(0.2 * 7200) and split.holdout == ("H3N",)
    with pytest.raises(DataError, match="'C2H6N2'"):
        make_split(ds, "formula", holdout=["C2H6N2"])
    with pytest.raises(ConfigError, match="holdout"):
        make_split(ds, "formula")
    with pytest.raises(DataError, match="no configurations for training"):
        make_split(_raw.rmd17("ethanol"), "formula", holdout=["C2H6O"])


def test_files_policy_on_hfo2():
    ds = _raw.hfo2()
    test_file = "Hf_mp103_ads_form_sorted.extxyz"
    split = make_split(ds, "files", (0.8, 0.1, 0.1), seed=0, test_origins={test_file})
    assert_partition(split, ds.n_configs)
    assert np.array_equal(split.test, np.arange(76, 105))
    assert split.sizes == {"train": 68, "val": 8, "test": 29}  # val share 0.1 / 0.9 of 76 -> 8
    assert split.test_origins == (test_file,)
    with pytest.raises(DataError, match="'missing.extxyz'"):
        make_split(ds, "files", test_origins={"missing.extxyz"})
    # other policies ignore test files and holdout formulas: same split, same fingerprint
    plain = make_split(ds, "random", seed=4)
    also = make_split(ds, "random", seed=4, test_origins={test_file}, holdout=["HfO2"])
    assert also.fingerprint == plain.fingerprint and also.test_origins == () and also.holdout == ()


def test_save_load_round_trip_and_tampering(tmp_path):
    ds = _raw.ean()
    split = make_split(ds, "random", (0.8, 0.1, 0.1), seed=5)
    path = tmp_path / "run" / "split.json"
    split.save(path)
    loaded = Split.load(path)
    assert loaded.fingerprint == split.fingerprint and loaded.fractions == split.fractions and loaded.seed == 5
    for name in ("train", "val", "test"):
        assert np.array_equal(loaded.part(name), split.part(name)) and loaded.part(name).dtype == np.int64
    loaded.check_dataset(ds)
    with pytest.raises(DataError, match="was made for dataset"):
        loaded.check_dataset(_raw.water())
    split.save(path)  # the same split again: fine
    assert not list(path.parent.glob("*.tmp"))

    other = make_split(ds, "random", (0.8, 0.1, 0.1), seed=6)
    with pytest.raises(RunError) as err:
        other.save(path)
    assert split.fingerprint[:12] in str(err.value) and other.fingerprint[:12] in str(err.value)
    assert Split.load(path).fingerprint == split.fingerprint

    data = json.loads(path.read_text())
    data["test"][0], data["train"][0] = data["train"][0], data["test"][0]
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(data))
    with pytest.raises(DataError, match="tampered.json.*does not match"):
        Split.load(tampered)
    data = json.loads(path.read_text())
    data["seed"] = 99
    tampered.write_text(json.dumps(data))
    with pytest.raises(DataError, match="does not match"):
        Split.load(tampered)
    del data["val"]
    tampered.write_text(json.dumps(data))
    with pytest.raises(DataError, match="missing field 'val'"):
        Split.load(tampered)
    tampered.write_text("{not json")
    with pytest.raises(DataError, match="not a valid split file"):
        Split.load(tampered)
    with pytest.raises(DataError, match="not found"):
        Split.load(tmp_path / "absent.json")


def test_validation():
    ds = _raw.ean()
    for fractions in [(0.8, 0.1), (0.8, 0.3, 0.1), (0.0, 0.5, 0.5), (1.2, -0.1, -0.1)]:
        with pytest.raises(ConfigError, match="fraction"):
            make_split(ds, "random", fractions)
    for seed in [1.5, "3", None, True, -1]:
        with pytest.raises(ConfigError, match="seed"):
            make_split(ds, "random", seed=seed)
    with pytest.raises(ConfigError, match="unknown split policy 'kfold'"):
        make_split(ds, "kfold")
    assert make_split(ds, "random", (1.0, 0.0, 0.0), seed=np.int64(2)).sizes == {"train": 75, "val": 0, "test": 0}
