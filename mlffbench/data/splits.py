"""Train / validation / test splits: pure functions of the data and a few parameters.

``make_split(ds, policy, fractions, seed, holdout, test_origins)`` depends only on the
dataset's fingerprint (and its arrays), the policy and its parameters, so the same call
gives the same indices on any machine. A :class:`Split` carries its own fingerprint
(sha256 over the parameters and the three index lists) and is saved next to a run.

Policies:

``random``   configurations are permuted with ``np.random.default_rng(seed)`` (PCG64) and
             cut by the fractions (counts by cumulative rounding, so they add up).
``group``    whole groups (``ds.group``, e.g. one molecule) go to one part; the groups are
             permuted with the seed and cut where the configuration counts come closest
             to the fractions (a part with a non-zero fraction gets at least one group when
             there are enough groups).
``formula``  configurations whose formula is in ``holdout`` form the test set; the rest is
             split at random into train/val with the train/val fractions renormalised.
``files``    configurations from the test files (``test_origins``, names in
             ``ds.origin_names``) form the test set; the rest is split at random into
             train/val with val share fractions[1] / (fractions[0] + fractions[1]).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlffbench.data import elements
from mlffbench.errors import ConfigError, DataError, RunError

POLICIES = ("random", "group", "formula", "files")
FORMAT_VERSION = 1


def _canonical_fingerprint(
    dataset_fingerprint: str,
    policy: str,
    fractions: Sequence[float],
    seed: int,
    holdout: Sequence[str],
    test_origins: Sequence[str],
    train: np.ndarray,
    val: np.ndarray,
    test: np.ndarray,
) -> str:
    payload = {
        "dataset_fingerprint": dataset_fingerprint,
        "policy": policy,
        "fractions": [float(f) for f in fractions],
        "seed": int(seed),
        "holdout": list(holdout),
        "test_origins": list(test_origins),
        "train": [int(i) for i in train],
        "val": [int(i) for i in val],
        "test": [int(i) for i in test],
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, eq=False)
class Split:
    """Index arrays (int64, sorted, disjoint) into one StructureSet, and how they were made."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    policy: str
    fractions: tuple[float, float, float]
    seed: int
    holdout: tuple[str, ...]
    dataset_fingerprint: str
    fingerprint: str
    test_origins: tuple[str, ...] = ()

    @property
    def sizes(self) -> dict[str, int]:
        return {"train": int(self.train.size), "val": int(self.val.size), "test": int(self.test.size)}

    def part(self, name: str) -> np.ndarray:
        """Indices of 'train', 'val' or 'test'."""
        if name not in ("train", "val", "test"):
            raise ConfigError(f"unknown split part '{name}' (known: train, val, test)")
        return getattr(self, name)

    def unseen_elements(self, ds) -> dict[str, list[str]]:
        """Per held-out part ('val', 'test'), the element symbols absent from the training part.

        A model learns nothing about such an element (no reference energy, no embedding
        trained), so its predictions for those configurations are extrapolations from nothing.
        """
        from mlffbench.data import elements

        config_of_atom = np.repeat(np.arange(ds.n_configs), ds.n_atoms)

        def present(idx):
            return {int(z) for z in np.unique(ds.numbers[np.isin(config_of_atom, idx)])}

        train = present(self.train)
        out = {}
        for name in ("val", "test"):
            missing = sorted(present(getattr(self, name)) - train)
            if missing:
                out[name] = [elements.symbol(z) for z in missing]
        return out

    def check_dataset(self, ds) -> None:
        """Raise DataError unless the split was made for this dataset."""
        if ds.fingerprint() != self.dataset_fingerprint:
            raise DataError(
                f"split {self.fingerprint[:12]} was made for dataset {self.dataset_fingerprint[:12]}, "
                f"not for '{ds.name or 'dataset'}' ({ds.fingerprint()[:12]})"
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "fingerprint": self.fingerprint,
            "dataset_fingerprint": self.dataset_fingerprint,
            "policy": self.policy,
            "fractions": [float(f) for f in self.fractions],
            "seed": int(self.seed),
            "holdout": list(self.holdout),
            "test_origins": list(self.test_origins),
            "sizes": self.sizes,
            "train": [int(i) for i in self.train],
            "val": [int(i) for i in self.val],
            "test": [int(i) for i in self.test],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "split") -> Split:
        """Rebuild a split; DataError when a field is missing or the fingerprint does not match."""
        try:
            parts = {}
            for name in ("train", "val", "test"):
                arr = np.asarray(data[name], dtype=np.int64).reshape(-1)
                parts[name] = arr
            fractions = tuple(float(f) for f in data["fractions"])
            seed = data["seed"]
            if isinstance(seed, bool) or not isinstance(seed, int):
                raise TypeError("seed")
            split = cls(
                train=parts["train"],
                val=parts["val"],
                test=parts["test"],
                policy=str(data["policy"]),
                fractions=fractions,  # type: ignore[arg-type]
                seed=seed,
                holdout=tuple(str(h) for h in data["holdout"]),
                dataset_fingerprint=str(data["dataset_fingerprint"]),
                fingerprint=str(data["fingerprint"]),
                test_origins=tuple(str(t) for t in data.get("test_origins", ())),
            )
        except KeyError as err:
            raise DataError(f"{where}: missing field {err.args[0]!r}") from None
        except (TypeError, ValueError) as err:
            raise DataError(f"{where}: malformed field ({err})") from None
        if len(split.fractions) != 3:
            raise DataError(f"{where}: 'fractions' must have 3 entries")
        expected = _canonical_fingerprint(
            split.dataset_fingerprint,
            split.policy,
            split.fractions,
            split.seed,
            split.holdout,
            split.test_origins,
            split.train,
            split.val,
            split.test,
        )
        if expected != split.fingerprint:
            raise DataError(
                f"{where}: fingerprint {split.fingerprint[:12]} does not match its contents "
                f"({expected[:12]}); the file was modified"
            )
        for name, arr in parts.items():
            if arr.size and ((np.diff(arr) <= 0).any() or arr[0] < 0):
                raise DataError(f"{where}: '{name}' indices are not sorted, unique and non-negative")
        joined = np.concatenate(list(parts.values()))
        if np.unique(joined).size != joined.size:
            raise DataError(f"{where}: train, val and test overlap")
        return split

    def save(self, path: Path) -> None:
        """Write as JSON (temp file, then rename). Refuses to replace a different split (RunError)."""
        path = Path(path)
        if path.exists():
            try:
                existing = json.loads(path.read_text()).get("fingerprint", "<none>")
            except (OSError, ValueError, AttributeError):
                existing = "<unreadable>"
            if existing == self.fingerprint:
                return
            raise RunError(
                f"{path} already holds split {str(existing)[:12]}; refusing to overwrite it with split "
                f"{self.fingerprint[:12]}"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(self.to_dict(), f, indent=1)
                f.write("\n")
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: Path) -> Split:
        """Read a saved split; DataError when missing, malformed or tampered with."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise DataError(f"split file not found: {path}") from None
        except (OSError, ValueError) as err:
            raise DataError(f"{path}: not a valid split file ({err})") from None
        if not isinstance(data, dict):
            raise DataError(f"{path}: not a valid split file (expected a JSON object)")
        return cls.from_dict(data, where=str(path))


# ------------------------------------------------------------------ validation
def _check_fractions(fractions) -> tuple[float, float, float]:
    try:
        values = tuple(float(f) for f in fractions)
    except (TypeError, ValueError):
        raise ConfigError(f"split fractions must be three numbers, got {fractions!r}") from None
    if len(values) != 3:
        raise ConfigError(f"split fractions must be three numbers (train, val, test), got {len(values)}")
    if not all(math.isfinite(f) and f >= 0 for f in values):
        raise ConfigError(f"split fractions must be non-negative, got {values}")
    if abs(sum(values) - 1.0) > 1e-9:
        raise ConfigError(f"split fractions must sum to 1, got {values} (sum {sum(values)!r})")
    if values[0] <= 0:
        raise ConfigError("the train fraction must be positive")
    return values


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise ConfigError(f"split seed must be an integer, got {seed!r}")
    if seed < 0:
        raise ConfigError(f"split seed must be non-negative, got {seed}")
    return int(seed)


def _check_names(values: Iterable[str], label: str) -> tuple[str, ...]:
    if isinstance(values, str):
        values = (values,)
    names = tuple(values)
    if not all(isinstance(v, str) and v for v in names):
        raise ConfigError(f"{label} must be a list of non-empty names, got {names!r}")
    return tuple(sorted(set(names)))


# -------------------------------------------------------------------- helpers
def _counts(n: int, fractions: Sequence[float]) -> list[int]:
    """Sizes of the parts: cumulative rounding (they add up to n); train gets at least one."""
    bounds = [0]
    total = 0.0
    for f in fractions:
        total += f
        bounds.append(min(n, math.floor(total * n + 0.5)))
    bounds[-1] = n
    counts = [bounds[k + 1] - bounds[k] for k in range(len(fractions))]
    if n > 0 and counts[0] == 0:
        donor = int(np.argmax(counts))
        counts[donor] -= 1
        counts[0] += 1
    return counts


def _cut(indices: np.ndarray, counts: Sequence[int], rng: np.random.Generator) -> list[np.ndarray]:
    perm = indices[rng.permutation(indices.size)]
    parts, start = [], 0
    for c in counts:
        parts.append(np.sort(perm[start : start + c]))
        start += c
    return parts


def _random_train_val(indices: np.ndarray, fractions: Sequence[float], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split ``indices`` into train/val with the train and val fractions renormalised."""
    f_train, f_val = fractions[0], fractions[1]
    val_share = f_val / (f_train + f_val)
    train, val = _cut(indices, _counts(indices.size, (1.0 - val_share, val_share)), np.random.default_rng(seed))
    return train, val


def _formulas(ds) -> np.ndarray:
    """Hill formula of every configuration (same as ``ds.formula(i)``), computed per composition."""
    numbers = np.asarray(ds.numbers, dtype=np.int64)
    species, inverse = np.unique(numbers, return_inverse=True)
    config_of = np.repeat(np.arange(ds.n_configs), ds.n_atoms)
    counts = np.zeros((ds.n_configs, species.size), np.int64)
    np.add.at(counts, (config_of, inverse.reshape(-1)), 1)
    compositions, which = np.unique(counts, axis=0, return_inverse=True)
    names = np.array([elements.formula(np.repeat(species, row)) for row in compositions], dtype=object)
    return names[which.reshape(-1)]


def _group_split(ds, fractions: Sequence[float], seed: int) -> list[np.ndarray]:
    """Whole groups to parts: largest group first (ties in seeded random order), each to the
    part furthest below its target count; parts with a non-zero fraction get at least one
    group while there are enough groups left (val gives way first when there are too few)."""
    if ds.group is None:
        raise DataError(f"dataset '{ds.name or 'dataset'}' has no groups; the 'group' split needs them")
    group = np.asarray(ds.group, dtype=np.int64)
    ids, sizes = np.unique(group, return_counts=True)
    order = np.random.default_rng(seed).permutation(ids.size)
    ids, sizes = ids[order], sizes[order]
    order = np.argsort(-sizes, kind="stable")
    ids, sizes = ids[order], sizes[order]
    n, g = int(sizes.sum()), ids.size
    targets = np.asarray(fractions, dtype=np.float64) * n
    required = [0] + [k for k in (2, 1) if fractions[k] > 0][: max(0, g - 1)]
    filled = np.zeros(3, np.int64)
    owner = np.zeros(g, np.int64)
    for pos in range(g):
        empty = [k for k in required if filled[k] == 0]
        candidates = empty if len(empty) >= g - pos else [k for k in range(3) if fractions[k] > 0]
        deficit = [targets[k] - filled[k] for k in candidates]
        part = candidates[int(np.argmax(deficit))]
        owner[pos] = part
        filled[part] += sizes[pos]
    return [np.flatnonzero(np.isin(group, ids[owner == k])).astype(np.int64) for k in range(3)]


# ------------------------------------------------------------------ the split
def make_split(
    ds,
    policy: str = "random",
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    holdout: Sequence[str] = (),
    test_origins: Iterable[str] = (),
) -> Split:
    """Split a StructureSet into train/val/test (see the module docstring for the policies).

    ``holdout`` (formulas, Hill order as ``ds.formula(i)``) is used by ``formula`` only,
    ``test_origins`` (names in ``ds.origin_names``) by ``files`` only; other policies
    ignore them (and record them as empty).
    """
    if policy not in POLICIES:
        raise ConfigError(f"unknown split policy '{policy}' (known: {', '.join(POLICIES)})")
    fractions = _check_fractions(fractions)
    seed = _check_seed(seed)
    holdout = _check_names(holdout, "holdout")
    test_origins = _check_names(test_origins, "test_origins")
    # parameters a policy does not use are dropped, so they do not change the fingerprint
    if policy != "formula":
        holdout = ()
    if policy != "files":
        test_origins = ()
    name = ds.name or "dataset"
    n = ds.n_configs
    everything = np.arange(n, dtype=np.int64)

    if policy == "random":
        train, val, test = _cut(everything, _counts(n, fractions), np.random.default_rng(seed))
    elif policy == "group":
        train, val, test = _group_split(ds, fractions, seed)
    elif policy == "formula":
        if not holdout:
            raise ConfigError("the 'formula' split policy needs at least one holdout formula")
        formulas = _formulas(ds)
        known = sorted(set(formulas.tolist()))
        missing = [h for h in holdout if h not in known]
        if missing:
            shown = ", ".join(known[:20]) + (", ..." if len(known) > 20 else "")
            raise DataError(f"holdout formula '{missing[0]}' does not occur in dataset '{name}' (formulas: {shown})")
        held = np.isin(formulas, list(holdout))
        test = everything[held]
        train, val = _random_train_val(everything[~held], fractions, seed)
    else:  # files
        if not test_origins:
            raise ConfigError("the 'files' split policy needs the names of the test files (test_origins)")
        if ds.origin is None:
            raise DataError(f"dataset '{name}' records no source files; the 'files' split needs them")
        unknown = [t for t in test_origins if t not in ds.origin_names]
        if unknown:
            raise DataError(
                f"test file '{unknown[0]}' is not a source of dataset '{name}' (sources: {', '.join(ds.origin_names)})"
            )
        test_ids = [ds.origin_names.index(t) for t in test_origins]
        is_test = np.isin(np.asarray(ds.origin, dtype=np.int64), test_ids)
        test = everything[is_test]
        train, val = _random_train_val(everything[~is_test], fractions, seed)

    if train.size == 0:
        raise DataError(f"split '{policy}' of dataset '{name}' leaves no configurations for training")
    dataset_fingerprint = ds.fingerprint()
    fingerprint = _canonical_fingerprint(
        dataset_fingerprint, policy, fractions, seed, holdout, test_origins, train, val, test
    )
    return Split(
        train=train,
        val=val,
        test=test,
        policy=policy,
        fractions=fractions,
        seed=seed,
        holdout=holdout,
        dataset_fingerprint=dataset_fingerprint,
        fingerprint=fingerprint,
        test_origins=test_origins,
    )
