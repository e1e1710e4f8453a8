"""Loss functions (PyTorch), with the same semantics as the JAX ones (docs/models/training.md §1)."""

from __future__ import annotations

import torch

LN2 = 0.6931471805599453


def log_cosh(x: torch.Tensor, p: float) -> torch.Tensor:
    """ℓ_p(x) = log(cosh(p·x)) / p in the overflow-free form (softplus(2px) − ln 2)/p − x.

    ``p`` is an inverse scale: quadratic (p·x²/2) for |x| ≪ 1/p, linear (|x| − ln2/p) beyond.
    """
    y = 2.0 * p * x
    return (torch.logaddexp(y, torch.zeros_like(y)) - LN2) / p - x  # exact softplus, as jax.nn.softplus


def pointwise(kind: str, x: torch.Tensor, p: float) -> torch.Tensor:
    """The loss of each element of ``x``: ``"log-cosh"`` (inverse scale ``p``) or squared error."""
    if kind == "log-cosh":
        return log_cosh(x, p)
    return x * x
