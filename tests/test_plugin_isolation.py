"""No plugin leaks global state: every model of every installed plugin is built in one process
(float32 and float64), the process state (environment, default dtypes, RNG states, JAX's
64-bit switch, torch's flushing of subnormals, signal handlers, ...) is compared with what it was, and then the JAT and SchNet
reference-value tests run in that same process and still pass (tests/_isolation_child.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mlffbench.plugin.manager import get_registry

pytestmark = pytest.mark.slow

CHILD = Path(__file__).with_name("_isolation_child.py")


def test_building_every_model_leaves_the_reference_tests_passing():
    out = subprocess.run([sys.executable, str(CHILD)], capture_output=True, text=True, timeout=1200)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    built = next(line for line in out.stdout.splitlines() if line.startswith("built:")).split()[1:]
    assert {b.split("/")[0] for b in built} == set(get_registry().models)
    assert "process state unchanged" in out.stdout
    assert " passed" in out.stdout and "failed" not in out.stdout
