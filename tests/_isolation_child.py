"""Child process of tests/test_plugin_isolation.py: builds every model of every installed plugin
(float32 and float64; with arguments SHARD SHARDS, every SHARDS-th of them), checks that the
process state is as before, then (shard 0) runs the JAT and SchNet reference-value tests in this
same process. Exit status: pytest's, or 3 when a build
changed the process state (the changes on stderr)."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import random
import signal
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
import torch

from mlffbench.backends.base import get_backend_class
from mlffbench.plugin.isolation import flushes_denormals
from mlffbench.plugin.manager import get_registry
from mlffbench.runs.trained import TrainedModel
from mlffbench.training.config import TrainConfig

REPO = Path(__file__).resolve().parents[1]
REFERENCE_TESTS = ["plugins/jat/tests/test_reference.py", "plugins/schnet/tests/test_pyg_reference.py"]


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def state() -> dict:
    """What a model build must leave as it found it."""
    root = logging.getLogger()
    return {
        "environment": dict(os.environ),
        "torch default dtype": torch.get_default_dtype(),
        "torch RNG": _digest(torch.random.get_rng_state().numpy().tobytes()),
        "torch threads": torch.get_num_threads(),
        "torch deterministic": torch.are_deterministic_algorithms_enabled(),
        "torch grad enabled": torch.is_grad_enabled(),
        "torch float32 matmul precision": torch.get_float32_matmul_precision(),
        "flush denormals": flushes_denormals(),  # torch.set_flush_denormal has no getter
        "numpy RNG": _digest(np.random.get_state()[1].tobytes()),
        "numpy errors": np.geterr(),
        "python RNG": _digest(repr(random.getstate()).encode()),
        "JAX x64": bool(jax.config.jax_enable_x64),
        "JAX default matmul precision": jax.config.jax_default_matmul_precision,
        "logging root": (root.level, len(root.handlers)),
        "signal handlers": (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)),
        "switch interval": sys.getswitchinterval(),
    }


def main(shard: int = 0, shards: int = 1) -> int:
    """Builds every ``shards``-th model from number ``shard`` (in name order); the reference tests
    run in shard 0."""
    registry = get_registry()
    for backend in {spec.backend for spec in registry.models.values()}:
        get_backend_class(backend)  # the core's own imports (flax imports rich, which draws from Python's RNG)
    before = state()
    built = []
    for name, spec in sorted(registry.models.items())[shard::shards]:
        for dtype in ("float32", "float64"):
            config = spec.default_config()
            if dataclasses.is_dataclass(config) and any(f.name == "dtype" for f in dataclasses.fields(config)):
                config = dataclasses.replace(config, dtype=dtype)
            train = dataclasses.replace(TrainConfig(), dtype=dtype, seed=0)
            TrainedModel.fresh(spec, config, (1, 6, 7, 8), train_config=train, seed=0)
            built.append(f"{name}/{dtype}")
    print("built:", " ".join(built), flush=True)
    after = state()
    changed = [key for key in before if before[key] != after[key]]
    if changed:
        for key in changed:
            if key == "environment":
                diff = set(before[key].items()) ^ set(after[key].items())
                print(f"changed: environment {sorted(diff)}", file=sys.stderr)
            else:
                print(f"changed: {key}: {before[key]!r} -> {after[key]!r}", file=sys.stderr)
        return 3
    print("process state unchanged", flush=True)
    if shard != 0:
        return 0
    return int(pytest.main(["-q", "-p", "no:cacheprovider", *REFERENCE_TESTS]))


if __name__ == "__main__":
    os.chdir(REPO)
    sys.exit(main(*(int(x) for x in sys.argv[1:3])))
