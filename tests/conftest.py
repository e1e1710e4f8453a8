"""Shared fixtures: where the real data lives, and a per-session cache folder."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from mlffbench.speed import runtime

# The tests train with the XLA CPU flags of the commands that train or time, set here before any
# test imports jax (importing mlffbench changes nothing; docs/process-setup.md).
runtime.set_xla_flags()
# ... and with JAX's persistent compilation cache, in one folder for the session and every command
# it starts (a fresh folder: what a test compiles, it compiles once; no test reads ~/.cache).
if not os.environ.get(runtime.JAX_CACHE_DIR):
    _compiled = tempfile.mkdtemp(prefix="mlffbench-jax-compiled-")
    atexit.register(shutil.rmtree, _compiled, True)
    os.environ[runtime.JAX_CACHE_DIR] = _compiled
runtime.set_compilation_cache()


def _data_dir() -> Path:
    env = os.environ.get("MLFFBENCH_DATA_DIR", "").strip()
    if env:
        return Path(env).expanduser().resolve()
    # the shared/data folder beside the repository: <repo>/../shared/data
    return (Path(__file__).resolve().parents[1] / ".." / "shared" / "data").resolve()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The folder with the real dataset files ($MLFFBENCH_DATA_DIR or ../shared/data)."""
    path = _data_dir()
    if not (path / "SHA256SUMS").is_file():
        pytest.fail(f"real dataset files not found in {path} (set MLFFBENCH_DATA_DIR)")
    return path


@pytest.fixture(scope="session", autouse=True)
def session_cache_dir(tmp_path_factory) -> Path:
    """Parsed-set and hash caches live in a fresh folder per test session
    (MLFFBENCH_CACHE_DIR), so tests never touch ~/.cache and each set is parsed once."""
    cache = tmp_path_factory.mktemp("mlffbench-cache")
    old = {k: os.environ.get(k) for k in ("MLFFBENCH_CACHE_DIR", "MLFFBENCH_DATA_DIR", "MLFFBENCH_CONFIG")}
    os.environ["MLFFBENCH_CACHE_DIR"] = str(cache)
    os.environ["MLFFBENCH_DATA_DIR"] = str(_data_dir())
    # no settings file of the person running the tests (mlffbench.settings): a path that does not exist
    os.environ["MLFFBENCH_CONFIG"] = str(cache / "no-user-settings.toml")
    yield cache
    for key, value in old.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
