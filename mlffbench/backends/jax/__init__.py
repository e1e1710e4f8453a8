"""The JAX backend (potential, trainer, shared model and test helpers).

On import it switches off XLA's YNNPACK fusions on the CPU unless ``XLA_FLAGS`` already
mentions them: for the second-order (force-loss) training step of graph models they are
slower than XLA's own loop fusions (the JAT EAN train step, batch 8, 2-core CPU: 1.06-1.51 s
with them, 0.81-0.95 s without, measured alternately). XLA reads the flag when jax is
imported, so ``mlffbench/__init__.py`` imports this module first thing; code that imports
jax before mlffbench keeps XLA's defaults. It does not affect GPUs.
"""

import os

_YNN = "xla_cpu_experimental_ynn_fusion_type"
if _YNN not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --{_YNN}=".strip()
