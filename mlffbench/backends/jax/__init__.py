"""The JAX backend: potential, trainer, losses, shared model and test helpers.

Importing it changes nothing in the process; the XLA CPU flags that training is timed with are
set by the commands that train or time (mlffbench.speed.runtime.prepare_process, docs/process-setup.md).
"""
