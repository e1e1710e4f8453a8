"""What building a model may not change in the process: a plugin's build (and the imports of its
third-party packages, which happen there) runs inside :func:`kept_process_state`.

Seen in the wild: importing mace-torch sets ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` for the whole
process (every later ``torch.load`` then unpickles arbitrary objects); importing torch-geometric
sets ``TORCHINDUCTOR_CACHE_DIR``; nequip's set-up changes torch's default dtype; a torch module's
construction draws its default initialisation from the global RNG; rich draws from Python's
RNG when imported; ``torch.set_flush_denormal`` changes the arithmetic of the calling thread. All
of it is undone when the build returns.
"""

from __future__ import annotations

import contextlib
import os
import random
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np

_SMALLEST_NORMAL = sys.float_info.min  # a variable: a product of two literals would be folded at compile time


def flushes_denormals() -> bool:
    """Whether this thread's floating-point arithmetic flushes subnormal results to zero (what
    ``torch.set_flush_denormal(True)`` switches on; torch has no getter): half the smallest normal
    double is a subnormal number, or 0.0 where they are flushed."""
    return _SMALLEST_NORMAL * 0.5 == 0.0


def _torch_state() -> tuple[Any, Any] | None:
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    return torch.get_default_dtype(), torch.random.get_rng_state()


def _jax_x64() -> bool | None:
    jax = sys.modules.get("jax")
    return None if jax is None else bool(jax.config.jax_enable_x64)


def _restore_environment(saved: dict[str, str]) -> None:
    for key in set(os.environ) - set(saved):
        del os.environ[key]
    for key, value in saved.items():
        if os.environ.get(key) != value:
            os.environ[key] = value


@contextlib.contextmanager
def kept_process_state() -> Iterator[None]:
    """Run the body; afterwards the environment variables, Python's, NumPy's and torch's global
    RNG states, torch's default dtype, whether subnormals are flushed (:func:`flushes_denormals`)
    and JAX's 64-bit switch are as before (torch and JAX imported inside the body are put back to
    their import-time defaults)."""
    environment = dict(os.environ)
    python_rng, numpy_rng = random.getstate(), np.random.get_state()
    torch_state, x64, flush = _torch_state(), _jax_x64(), flushes_denormals()
    try:
        yield
    finally:
        _restore_environment(environment)
        random.setstate(python_rng)
        np.random.set_state(numpy_rng)
        torch = sys.modules.get("torch")
        if torch is not None:
            torch.set_default_dtype(torch_state[0] if torch_state else torch.float32)
            if torch_state:
                torch.random.set_rng_state(torch_state[1])
            else:  # imported in the body: its generator as at import
                torch.random.manual_seed(torch.random.initial_seed())
            if flushes_denormals() != flush:
                torch.set_flush_denormal(flush)
        jax = sys.modules.get("jax")
        if jax is not None and bool(jax.config.jax_enable_x64) != bool(x64):
            jax.config.update("jax_enable_x64", bool(x64))
