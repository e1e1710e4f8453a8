"""mlffbench: benchmark machine-learned force fields through one harness.

The core imports numpy only; jax and torch are imported inside their backends. Importing
mlffbench leaves the process environment alone (the process set-up of the commands that train
or time is one explicit step: :func:`mlffbench.speed.runtime.prepare_process`).
Plugins implement the hooks in :mod:`mlffbench.plugin.hookspecs` and mark them with
:data:`hookimpl`.
"""

import pluggy

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("mlffbench")

__all__ = ["__version__", "hookimpl"]
