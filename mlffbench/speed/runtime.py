"""Process set-up of the commands that train or time: XLA's CPU flags, JAX's persistent
compilation cache and the host allocator.

Nothing here runs on import; :func:`prepare_process` is the one explicit step, taken by the
``mlffbench`` commands that train or time (see :mod:`mlffbench.cli.process`). Why the two settings
exist and what they were measured to gain: ``docs/process-setup.md``.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import MutableMapping
from pathlib import Path

OPT_OUT = "MLFFBENCH_SYSTEM_MALLOC"
TUNABLES = (
    "glibc.malloc.mmap_threshold=4294967296",
    "glibc.malloc.trim_threshold=8589934592",
    "glibc.malloc.arena_max=1",
)
# XLA's CPU YNNPACK fusions, switched off (an empty list of fusion types): docs/process-setup.md
XLA_YNN_FLAG = "xla_cpu_experimental_ynn_fusion_type"
# JAX's persistent compilation cache: a folder, or off/0/false/no (docs/process-setup.md)
COMPILE_CACHE_ENV = "MLFFBENCH_COMPILE_CACHE"
JAX_CACHE_DIR = "JAX_COMPILATION_CACHE_DIR"
# every compiled program is kept, the small ones too: a model built from e3nn-style blocks
# compiles hundreds of tiny constant computations (MACE-JAX: ~480, 17 s of a 25 s build)
JAX_CACHE_MIN_SECONDS = "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"
_OFF = ("off", "0", "false", "no", "none")


def _is_glibc() -> bool:
    return sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


def xla_flags(environ: dict[str, str] | None = None) -> str | None:
    """The ``XLA_FLAGS`` value with the YNNPACK fusions off, or None when nothing is to change
    (``XLA_FLAGS`` already mentions them: the user's choice wins)."""
    current = (os.environ if environ is None else environ).get("XLA_FLAGS", "")
    if XLA_YNN_FLAG in current:
        return None
    return f"{current} --{XLA_YNN_FLAG}=".strip()


def set_xla_flags() -> None:
    """Put :func:`xla_flags` into ``os.environ``. XLA reads ``XLA_FLAGS`` once, when jax starts
    its backend: call this before the first ``import jax`` of the process (it does not affect GPUs)."""
    value = xla_flags()
    if value is not None:
        os.environ["XLA_FLAGS"] = value


def compilation_cache_dir(environ: MutableMapping[str, str] | None = None) -> str | None:
    """Where JAX keeps compiled programs for this process: ``$JAX_COMPILATION_CACHE_DIR`` when
    set (JAX's own setting wins), else ``$MLFFBENCH_COMPILE_CACHE``, else ``jax-compiled`` in
    mlffbench's cache folder; None when ``MLFFBENCH_COMPILE_CACHE`` is off (or 0, false, no)."""
    env = os.environ if environ is None else environ
    if env.get(JAX_CACHE_DIR, "").strip():
        return env[JAX_CACHE_DIR].strip()
    chosen = env.get(COMPILE_CACHE_ENV, "").strip()
    if chosen.lower() in _OFF and chosen:
        return None
    if chosen:
        return str(Path(chosen).expanduser())
    from mlffbench.settings import cache_dir  # light: no jax, no dataset code

    return str(cache_dir(env) / "jax-compiled")


def set_compilation_cache(environ: MutableMapping[str, str] | None = None) -> str | None:
    """Turn JAX's persistent compilation cache on through the environment (``JAX_*`` variables,
    which jax reads when it is first imported: call this before ``import jax``). A second run,
    a resumed run or a tune trial with the same shapes then loads its compiled programs instead
    of compiling them; ``metrics.json`` counts the loads (``compile_cache``). Returns the folder,
    or None when the cache is off."""
    env = os.environ if environ is None else environ
    folder = compilation_cache_dir(env)
    if folder is None:
        return None
    env[JAX_CACHE_DIR] = folder
    env.setdefault(JAX_CACHE_MIN_SECONDS, "0")
    return folder


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
    """Replace this process by the same command with the tuned allocator (docs/process-setup.md).

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


def prepare_process(*, reexec: bool = True) -> None:
    """The set-up of a process that trains or times: XLA's CPU flags and JAX's persistent
    compilation cache (:func:`set_compilation_cache`) into ``os.environ``, then
    (``reexec``) the same command re-executed with the tuned allocator, which inherits the flags.

    Both are recorded with the results (``metrics.json`` ``host_allocator``; ``XLA_FLAGS`` in the
    machine fingerprint of ``bench`` and ``compare``). Call it before jax is imported and before
    threads or large allocations exist; ``reexec=False`` sets the flags only (a process that is not
    the ``mlffbench`` command, e.g. a test session).
    """
    set_xla_flags()
    set_compilation_cache()
    if reexec:
        reexec_with_tuned_allocator()
