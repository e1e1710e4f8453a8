"""The process set-up of the commands that train or time (mlffbench.speed.runtime.prepare_process): the
tuned host allocator and XLA's CPU flags. That only those commands take it: test_process_setup.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from mlffbench.speed import runtime

glibc = pytest.mark.skipif(not runtime._is_glibc(), reason="glibc malloc tunables only")

# A child that sets itself up as the commands that train or time do (XLA's flags, then a re-execution
# with the tuned allocator), then frees and re-allocates a
# 64 MiB buffer 10 times (above glibc's largest dynamic mmap threshold, 32 MiB), writing to every page, and reports its minor page faults.
CHILD = """
import json, resource, sys
import numpy as np
import os
from mlffbench.speed.runtime import allocator, prepare_process
prepare_process()
n = 64 * 2**20 // 8
np.ones(n)  # first touch of the memory
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    a = np.ones(n)
    del a
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(json.dumps({"allocator": allocator(), "faults": faults, "argv": sys.argv[1:], "xla_flags": os.environ.get("XLA_FLAGS")}))
"""


def _child(env_changes: dict[str, str | None], *args: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", "XLA_FLAGS", runtime.OPT_OUT)}
    env.update({k: v for k, v in env_changes.items() if v is not None})
    env["NUMPY_MADVISE_HUGEPAGE"] = "0"  # 4 KiB pages, so that faults count pages
    out = subprocess.run(
        [sys.executable, "-c", CHILD, *args], env=env, capture_output=True, text=True, timeout=120, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@glibc
def test_tuned_environment_adds_the_tunables_and_keeps_others():
    env = runtime.tuned_environment({"GLIBC_TUNABLES": "glibc.rtld.optional_static_tls=2048"})
    assert env["GLIBC_TUNABLES"].split(":") == ["glibc.rtld.optional_static_tls=2048", *runtime.TUNABLES]
    assert runtime.tuned_environment({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}) is None  # the user's choice wins
    assert runtime.tuned_environment({runtime.OPT_OUT: "1"}) is None
    assert runtime.tuned_environment({runtime.OPT_OUT: "0"}) is not None


@glibc
def test_reexec_keeps_the_command_line_and_stops_the_page_faults_of_reused_buffers():
    tuned = _child({}, "run", "--x=1")
    system = _child({runtime.OPT_OUT: "1"}, "run", "--x=1")
    assert tuned["argv"] == system["argv"] == ["run", "--x=1"]
    assert tuned["allocator"] == ":".join(runtime.TUNABLES)
    assert system["allocator"] == "system"
    # XLA's flags are set before the re-execution, which inherits them, and without one too
    assert tuned["xla_flags"] == system["xla_flags"] == f"--{runtime.XLA_YNN_FLAG}="
    pages = 64 * 2**20 // 4096
    # the system allocator maps every 64 MiB buffer afresh (10 x 16,384 faults); the tuned one reuses it
    assert system["faults"] > 5 * pages
    assert tuned["faults"] < pages
