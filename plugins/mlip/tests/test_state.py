"""Building the three models leaves the process as it was: JAX's x64 flag, environment
variables, default dtypes, logging configuration, warning filters, numpy settings. Run in a
fresh interpreter, so that mlip is imported for the first time by the build itself."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

SCRIPT = r"""
import json, logging, os, sys, warnings
import jax
import numpy as np

def state():
    loggers = {
        name: (lg.level, [repr(h) for h in lg.handlers], lg.propagate, lg.disabled)
        for name, lg in logging.root.manager.loggerDict.items() if isinstance(lg, logging.Logger)
    }
    out = {
        "x64": bool(jax.config.jax_enable_x64),
        "jax_default_matmul_precision": str(jax.config.jax_default_matmul_precision),
        "jax_debug_nans": bool(jax.config.jax_debug_nans),
        "float_dtype": str(jax.numpy.zeros(1).dtype),
        "env": dict(os.environ),
        "root": (logging.root.level, [repr(h) for h in logging.root.handlers]),
        "logging_disable": logging.root.manager.disable,
        "warnings": [repr(f) for f in warnings.filters],
        "np_err": np.geterr(),
        "np_print": {k: repr(v) for k, v in np.get_printoptions().items()},
    }
    if "torch" in sys.modules:
        out["torch_dtype"] = str(sys.modules["torch"].get_default_dtype())
    return out, loggers

before, loggers_before = state()
assert "mlip" not in sys.modules
from mlffbench.backends.jax.models import param_shapes
from mlffbench.backends.jax.precision import float64_scope
from mlffbench.plugin.manager import get_registry
from mlffbench.runs.trained import species_stats
stats = species_stats((1, 6, 7, 8))
registry = get_registry()
for name in ("mace-jax", "nequip-jax", "visnet-jax"):
    spec = registry.model(name)
    for dtype in ("float32", "float64") if name == "mace-jax" else ("float64",):
        config = spec.default_config(dtype=dtype)
        with float64_scope(dtype):
            potential = spec.build(config, stats)
            assert param_shapes(potential.module)
assert "mlip" in sys.modules
after, loggers_after = state()
changed = {k: (before[k], after[k]) for k in before if before[k] != after.get(k)}
# loggers created by the import are new, but must not be configured (level, handlers, propagation)
new = {n: v for n, v in loggers_after.items() if n not in loggers_before and v != (0, [], True, False)
       and not (v[1] and all("NullHandler" in h for h in v[1]) and v[0] == 0)}
old = {n: (loggers_before[n], v) for n, v in loggers_after.items() if n in loggers_before and loggers_before[n] != v}
print(json.dumps({"changed": changed, "configured_new_loggers": new, "changed_loggers": old}, default=str))
"""


@pytest.mark.slow
def test_building_all_three_leaves_the_process_as_it_was():
    proc = subprocess.run([sys.executable, "-W", "error", "-c", SCRIPT], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"changed": {}, "configured_new_loggers": {}, "changed_loggers": {}}, result
