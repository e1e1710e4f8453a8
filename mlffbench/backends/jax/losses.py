"""Loss functions (JAX). log-cosh with the code's parameter semantics (docs/models/training.md §1)."""

from __future__ import annotations

import jax

LN2 = 0.6931471805599453


def log_cosh(x: jax.Array, p: float) -> jax.Array:
    """ℓ_p(x) = log(cosh(p·x)) / p in the overflow-free form (softplus(2px) − ln 2)/p − x.

    ``p`` is an inverse scale: quadratic (p·x²/2) for |x| ≪ 1/p, linear (|x| − ln2/p) beyond.
    """
    return (jax.nn.softplus(2.0 * p * x) - LN2) / p - x


def pointwise(kind: str, x: jax.Array, p: float) -> jax.Array:
    if kind == "log-cosh":
        return log_cosh(x, p)
    return x * x
