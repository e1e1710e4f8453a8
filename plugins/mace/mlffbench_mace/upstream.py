"""The one door to mace-torch: imports it and builds its modules without leaking process state.

Importing ``mace`` sets ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` for the whole process (e3nn 0.4
reads its constants with a plain ``torch.load``, which torch ≥ 2.6 refuses in weights-only mode;
importing e3nn before mace therefore fails). Importing torch's inductor on the way sets
``TORCHINDUCTOR_CACHE_DIR``; mace prints a notice about cuequivariance to stdout; building draws
random numbers (initial weights, example inputs of opt_einsum's path search) and e3nn / TorchScript
warn. :func:`upstream` is the only place here that touches mace or e3nn: inside it the variable is
set, the default dtype is float64 (so that e3nn's Wigner-3j blocks and mace's U matrices are
computed in double precision whatever the model is later cast to), the global RNG is forked and a
few upstream warnings (matched by message and module) are ignored; afterwards the environment,
the default dtype and the RNG are what they were.
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from collections.abc import Iterator
from types import SimpleNamespace

import torch

from mlffbench.plugin.isolation import kept_process_state

_WEIGHTS_ONLY_VAR = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"

# (category, message regex, module regex) of the upstream warnings ignored inside :func:`upstream`
IGNORED_WARNINGS: tuple[tuple[type[Warning], str, str], ...] = (
    # e3nn's torch.load of its constants under the variable above (at the first import)
    (UserWarning, r"Environment variable TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD detected", r"e3nn\.o3\._wigner"),
    # TorchScript compiling e3nn's generated code (e3nn's default jit_script_fx=True)
    (UserWarning, r"The TorchScript type system doesn't support instance-level annotations", r"ast"),
    (DeprecationWarning, r"`torch\.jit\.script` is deprecated", r"torch\.jit\._script"),
)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """The upstream warnings of :data:`IGNORED_WARNINGS` ignored (only those)."""
    with warnings.catch_warnings():
        for category, message, module in IGNORED_WARNINGS:
            warnings.filterwarnings("ignore", message=message, category=category, module=module)
        yield


@contextlib.contextmanager
def upstream() -> Iterator[SimpleNamespace]:
    """``mace`` (with ``mace.modules``, ``mace.data``, ``mace.tools``) and ``e3nn.o3``, imported and
    usable inside the block; the process state is restored when it ends (see the module docstring,
    and :func:`mlffbench.plugin.isolation.kept_process_state`)."""
    with kept_process_state():
        os.environ[_WEIGHTS_ONLY_VAR] = "1"
        with quiet(), contextlib.redirect_stdout(io.StringIO()):
            import mace
            import mace.data
            import mace.modules
            import mace.tools
            import mace.tools.torch_geometric
            from e3nn import o3

            torch.set_default_dtype(torch.float64)
            yield SimpleNamespace(mace=mace, o3=o3)
