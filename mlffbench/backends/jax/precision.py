"""The one place that scopes 64-bit JAX.

JAX decides at trace time whether floats may be 64-bit (``jax_enable_x64``). mlffbench never
switches that flag for the process: whatever needs float64 JAX (a float64 backend's calls,
building a float64 potential, importing released weights in float64, a plugin test) runs
inside :func:`float64_scope`, which restores the previous setting on exit. A float32 scope
leaves the setting as it is (so float32 code inside a caller's float64 scope behaves as before).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import jax
import numpy as np


def wants_float64(dtype: str | bool | None) -> bool:
    """Whether ``dtype`` ("float32"/"float64", a numpy dtype, or a bool) asks for float64."""
    if isinstance(dtype, bool) or dtype is None:
        return bool(dtype)
    return np.dtype(dtype) == np.float64


@contextlib.contextmanager
def float64_scope(dtype: str | bool | None = True) -> Iterator[None]:
    """64-bit JAX inside the block when ``dtype`` is float64 (else the setting is untouched);
    the previous setting is restored afterwards."""
    if not wants_float64(dtype):
        yield
        return
    with jax.enable_x64(True):
        yield


def x64_enabled() -> bool:
    """Whether 64-bit JAX is on here (in this scope)."""
    return bool(jax.config.jax_enable_x64)  # type: ignore[attr-defined]  # flag attribute unknown to jax's stubs


def float_dtype() -> type:
    """numpy's float type JAX computes in here: float64 inside a float64 scope, else float32."""
    return np.float64 if x64_enabled() else np.float32
