"""mlffbench: benchmark machine-learned force fields through one harness.

The core imports numpy only; jax and torch are imported inside their backends.
Plugins implement the hooks in :mod:`mlffbench.hookspecs` and mark them with
:data:`hookimpl`.
"""

import pluggy

# Sets XLA's CPU flags for the JAX backend (no jax import); XLA reads them when jax is
# imported, so this has to come before any plugin imports jax. See that module.
import mlffbench.backends.jax  # noqa: F401, E402

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("mlffbench")

__all__ = ["__version__", "hookimpl"]
