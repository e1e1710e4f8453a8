"""Process set-up that must happen before the heavy libraries run: the host memory allocator.

Training a force field allocates and frees the same large temporaries every step (XLA's
per-execution buffers of the second-order force-loss step run to gigabytes; PyTorch's eager
tensors to megabytes). glibc's defaults hand every allocation above 128 KiB (dynamically up to
32 MiB) to a fresh ``mmap`` and give it back on ``free``, so each step touches newly mapped
pages: the JAT EAN train step (batch 8, 2-core CPU) takes about 300,000 minor page faults,
each one a kernel entry plus zeroing a page. Keeping freed memory in the process and reusing it
removes them: the same step ran 1.8x faster (10.1-10.4 vs 18.4-18.9 configurations/s, same
process load), and the SchNet step 1.24x (its faults went from ~100,000 per epoch to none).

The thresholds have to be in place when the process starts (``mallopt`` at run time cannot
raise the mmap threshold past 2 GiB nor move allocations of already-running threads to the
main arena), so the ``mlffbench`` command re-executes itself once with ``GLIBC_TUNABLES``
set (:func:`reexec_with_tuned_allocator`): the mmap threshold at 4 GiB, the trim threshold
at 8 GiB, one arena (large allocations from worker threads would otherwise still be mapped
afresh: per-thread heaps are limited to 64 MiB). The cost is memory: up to the trim threshold
of freed memory stays with the process for reuse.

Only on Linux with glibc; nothing changes when ``GLIBC_TUNABLES`` already sets any malloc
tunable (the user's choice wins) or when ``MLFFBENCH_SYSTEM_MALLOC=1``.
"""

from __future__ import annotations

import os
import platform
import sys

OPT_OUT = "MLFFBENCH_SYSTEM_MALLOC"
TUNABLES = (
    "glibc.malloc.mmap_threshold=4294967296",
    "glibc.malloc.trim_threshold=8589934592",
    "glibc.malloc.arena_max=1",
)


def _is_glibc() -> bool:
    return sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


def tuned_environment(environ: dict[str, str] | None = None) -> dict[str, str] | None:
    """The environment to re-execute with, or None when nothing is to change."""
    env = dict(os.environ if environ is None else environ)
    if env.get(OPT_OUT, "").strip() not in ("", "0") or not _is_glibc():
        return None
    current = env.get("GLIBC_TUNABLES", "")
    if "glibc.malloc." in current:
        return None
    env["GLIBC_TUNABLES"] = ":".join(([current] if current else []) + list(TUNABLES))
    return env


def allocator() -> str:
    """What this process runs with, for run records: the malloc tunables in force, or 'system'."""
    tunables = [t for t in os.environ.get("GLIBC_TUNABLES", "").split(":") if t.startswith("glibc.malloc.")]
    return ":".join(tunables) if tunables else "system"


def reexec_with_tuned_allocator() -> None:
    """Replace this process by the same command with the tuned allocator (see the module doc).

    Call it first thing in an entry point, before threads or large allocations exist. Returns
    without doing anything when the environment is already tuned, opted out, or not glibc.
    """
    env = tuned_environment()
    if env is None:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    # the interpreter's own command line (options, -m/-c, script and arguments), unchanged
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)
