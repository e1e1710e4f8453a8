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
    # two children side by side (compiling is single-threaded: each keeps one core busy)
    shards = 2
    children = [
        subprocess.Popen(
            [sys.executable, str(CHILD), str(k), str(shards)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for k in range(shards)
    ]
    outs = [child.communicate(timeout=1200) for child in children]
    built = set()
    for child, (stdout, stderr) in zip(children, outs, strict=True):
        assert child.returncode == 0, stdout[-4000:] + stderr[-4000:]
        assert "process state unchanged" in stdout
        built |= set(next(line for line in stdout.splitlines() if line.startswith("built:")).split()[1:])
    assert {b.split("/")[0] for b in built} == set(get_registry().models)
    assert {b.split("/")[1] for b in built} == {"float32", "float64"}
    reference = outs[0][0]
    assert " passed" in reference and "failed" not in reference
