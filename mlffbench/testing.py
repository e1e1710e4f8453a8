"""Helpers for the tests of model plugins (numpy only; pytest is imported where needed).

Where the real data and reference files are, plain configurations ``(numbers, positions,
cell, pbc)`` of a dataset (the core's graph batches of them: :func:`mlffbench.backends.predictor.graph_batch`), random rotations, pair distances, and
tampered copies of a weights file. Backend-specific helpers live in
``mlffbench.backends.jax.testing`` and ``mlffbench.backends.torch.testing``.

Data: $MLFFBENCH_DATA_DIR, else ``shared/data`` beside the repository. Reference values and
released weights: $MLFFBENCH_REFERENCE_DIR, else ``shared/reference`` beside the repository.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from mlffbench.data.loading import load_dataset

EAN_SPECIES = (1, 6, 7, 8)  # H, C, N, O: the dataset's sorted atomic numbers


def data_dir(repo: Path) -> Path:
    """$MLFFBENCH_DATA_DIR, else ``shared/data`` beside the repository ``repo``."""
    env = os.environ.get("MLFFBENCH_DATA_DIR", "").strip()
    return Path(env) if env else repo / ".." / "shared" / "data"


def reference_dir(repo: Path) -> Path:
    """$MLFFBENCH_REFERENCE_DIR, else ``shared/reference`` beside the repository ``repo``."""
    env = os.environ.get("MLFFBENCH_REFERENCE_DIR", "").strip()
    return Path(env) if env else repo / ".." / "shared" / "reference"


def dataset_loader(root: Path, tmp_path_factory, cache_name: str):
    """``get(name)``: datasets by card name from ``root``, cached (parsed-set cache in a
    temp dir ``cache_name``); skips the test where ``root`` is missing."""
    import pytest

    if not root.is_dir():
        pytest.skip(f"data directory {root} not found (set MLFFBENCH_DATA_DIR)")
    cache = tmp_path_factory.mktemp(cache_name)
    loaded = {}

    def get(name):
        if name not in loaded:
            loaded[name] = load_dataset(name, data_dir=root, cache_dir=cache, download=False)
        return loaded[name]

    return get


def require_reference_file(path: Path, what: str) -> Path:
    """``path``, or skip the test: ``what`` (e.g. "released JAT weights") is not there."""
    if not path.is_file():
        import pytest

        pytest.skip(f"{what} {path} not found (set MLFFBENCH_REFERENCE_DIR)")
    return path


def load_reference_values(repo: Path) -> dict:
    """The reference values of the models (``models_reference_values.json``), or skip."""
    path = require_reference_file(reference_dir(repo) / "models_reference_values.json", "reference values")
    return json.loads(path.read_text())


def ean_config(ds, i, cell=None):
    """Configuration ``i`` of ``ds`` as (numbers, positions, cell, pbc); ``cell`` replaces its cell."""
    sl = ds.atoms_of(i)
    return ds.numbers[sl], ds.positions[sl], ds.cell[i] if cell is None else cell, ds.pbc[i]


def random_rotation(rng) -> np.ndarray:
    """A random proper rotation matrix (3, 3) from ``rng``."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def tampered_npz(tmp_path: Path, weights_path: Path, change, keep_metadata: bool) -> Path:
    """A copy of the npz ``weights_path`` in ``tmp_path`` after ``change(raw)`` (a dict of its
    arrays); with its JSON metadata beside it where ``keep_metadata``."""
    raw = dict(np.load(weights_path))
    change(raw)
    path = tmp_path / ("tampered.npz" if keep_metadata else "bare.npz")
    np.savez(path, **raw)
    if keep_metadata:
        shutil.copy(weights_path.with_suffix(".json"), path.with_suffix(".json"))
    return path


def emt_frames(n: int = 12, seed: int = 0, repeat: tuple[int, int, int] = (2, 1, 1)):
    """``n`` periodic fcc cells (the cubic 4-atom cell repeated ``repeat`` times) of random Cu/Al/Ni
    composition, strained by up to 3 % and rattled by 0.08 Å, with ASE's EMT energy, forces and
    stress (eV, eV/Å, eV/Å³, ASE sign) as single-point results: ASE ``Atoms`` to write with
    ``ase.io.write``."""
    from ase.build import bulk

    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n):
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(repeat)
        atoms.symbols = rng.choice(["Cu", "Al", "Ni"], size=len(atoms))
        strain = rng.uniform(-0.03, 0.03, (3, 3))
        atoms.set_cell(atoms.cell.array @ (np.eye(3) + 0.5 * (strain + strain.T)), scale_atoms=True)
        atoms.positions += rng.normal(0.0, 0.08, atoms.positions.shape)
        frames.append(emt_labelled(atoms))
    return frames


def emt_labelled(atoms):
    """``atoms`` with ASE's EMT energy, forces and stress (eV, eV/Å, eV/Å³, ASE sign) attached as
    single-point results (what ``ase.io.write`` stores as reference data)."""
    from ase.calculators.emt import EMT
    from ase.calculators.singlepoint import SinglePointCalculator

    atoms.calc = EMT()
    energy, forces, stress = atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress(voigt=False)
    atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces, stress=stress)
    return atoms


# A SchNet small enough for a test to train in seconds (PyTorch: nothing to compile)
TINY_SCHNET = {
    "hidden_channels": 8,
    "num_filters": 8,
    "num_interactions": 1,
    "num_gaussians": 8,
    "cutoff": 3.0,
    "readout_channels": 8,
}
