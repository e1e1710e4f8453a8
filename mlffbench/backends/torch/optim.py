"""Functional optimizers with optax's semantics (the JAX backend's), for PyTorch tensors.

Why not ``torch.optim``: the JAX backend chains optax's ``scale_by_yogi`` / ``scale_by_adam``,
an optional ``add_decayed_weights`` and ``-lr`` (docs/models/training.md §2); the same arithmetic here
gives both backends one optimizer definition. States are immutable (every step returns new
tensors), so a state the loop keeps as "best" is never changed by later steps.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from mlffbench.training.config import TrainConfig


class OptState(NamedTuple):
    count: int  # type: ignore[assignment]  # field named like tuple.count (mypy rejects the shadowing)
    mu: dict[str, torch.Tensor]
    nu: dict[str, torch.Tensor]


class Optimizer:
    """``yogi`` (optax defaults: b1 0.9, b2 0.999, eps 1e-3, initial accumulator 1e-6),
    ``adam`` (b1 0.9, b2 0.999, eps 1e-8) or ``adamw`` (adam + decoupled decay, 1e-4 unless
    ``weight_decay`` is given); a positive ``weight_decay`` adds decay to any of them."""

    def __init__(self, config: TrainConfig):
        self.kind = config.optimizer
        self.b1, self.b2 = 0.9, 0.999
        self.eps = 1e-3 if self.kind == "yogi" else 1e-8
        self.initial = 1e-6 if self.kind == "yogi" else 0.0
        use_decay = config.weight_decay > 0 or self.kind == "adamw"
        self.weight_decay = (config.weight_decay or 1e-4) if use_decay else 0.0

    def init(self, params: dict[str, torch.Tensor]) -> OptState:
        def full(p):
            return torch.full_like(p.detach(), self.initial)

        return OptState(0, {k: full(p) for k, p in params.items()}, {k: full(p) for k, p in params.items()})

    @torch.no_grad()
    def step(self, params: dict[str, torch.Tensor], grads: dict[str, torch.Tensor], state: OptState, lr: float):
        """New (params, state): p ← p − lr · (scaled update + weight_decay · p)."""
        b1, b2 = self.b1, self.b2
        count = state.count + 1
        c1 = 1.0 - b1**count
        c2 = 1.0 - b2**count
        new_params, mu, nu = {}, {}, {}
        for name, p in params.items():
            g = grads[name]
            m = b1 * state.mu[name] + (1.0 - b1) * g
            g2 = g * g
            if self.kind == "yogi":
                v = state.nu[name] - (1.0 - b2) * torch.sign(state.nu[name] - g2) * g2
            else:
                v = b2 * state.nu[name] + (1.0 - b2) * g2
            update = (m / c1) / (torch.sqrt(v / c2) + self.eps)
            if self.weight_decay:
                update = update + self.weight_decay * p
            new_params[name] = (p.detach() - lr * update).requires_grad_(p.requires_grad)
            mu[name], nu[name] = m, v
        return new_params, OptState(count, mu, nu)
