"""No global side effects leak from mace-torch / e3nn: in a fresh interpreter (warnings as errors),
importing the plugin, building a MACE potential (mace and e3nn imported for the first time) and
evaluating it leaves the environment variables, torch's default dtype, the torch / numpy / Python
RNG states, TorchScript's executor and fuser flags, torch._dynamo's and inductor's configs and the
warning filters as they were."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import json, os, random, sys, warnings
    import numpy as np
    import torch
    import torch._dynamo.config as dynamo_config
    import torch._inductor.config as inductor_config

    def state():
        return {
            "environ": dict(os.environ),
            "default_dtype": str(torch.get_default_dtype()),
            "torch_rng": torch.get_rng_state().tolist(),
            "numpy_rng": np.random.get_state()[1].tolist(),
            "python_rng": repr(random.getstate()),
            "jit": [
                torch._C._get_graph_executor_optimize(),
                torch._C._jit_texpr_fuser_enabled(),
                torch._C._jit_can_fuse_on_cpu(),
                torch._C._jit_can_fuse_on_gpu(),
                torch.jit._state._enabled.enabled,
            ],
            "dynamo": repr(sorted(dynamo_config.get_config_copy().items(), key=lambda kv: kv[0])),
            "inductor": repr(sorted(inductor_config.get_config_copy().items(), key=lambda kv: kv[0])),
            "deterministic": torch.are_deterministic_algorithms_enabled(),
            "threads": torch.get_num_threads(),
            "matmul_precision": torch.get_float32_matmul_precision(),
            "grad": torch.is_grad_enabled(),
            "warning_filters": repr(warnings.filters),
        }

    before = state()
    import mlffbench_mace.plugin  # the entry point: imports neither mace nor e3nn
    imported_early = sorted(m for m in ("mace", "e3nn") if m in sys.modules)
    from mlffbench.data.stats import SpeciesStats
    from mlffbench_mace.config import MaceConfig
    from mlffbench_mace.model import build

    config = MaceConfig(num_channels=4, max_ell=1, correlation=2, radial_mlp=(8,))
    potential = build(config, SpeciesStats(species=(1, 8), reference_energies=[0.0, 0.0]))
    imported_late = sorted(m for m in ("mace", "e3nn") if m in sys.modules)
    after = state()
    print(json.dumps({
        "imported_early": imported_early,
        "imported_late": imported_late,
        "n_params": sum(p.numel() for p in potential.module.parameters()),
        "buffer_dtypes": sorted({str(b.dtype) for b in potential.module.buffers() if b.is_floating_point()}),
        "changed": {k: [str(before[k])[:300], str(after[k])[:300]] for k in before if before[k] != after[k]},
        "environ_diff": sorted(set(before["environ"].items()) ^ set(after["environ"].items())),
    }))
    """
)


@pytest.mark.slow
def test_build_leaves_process_state_unchanged():
    proc = subprocess.run([sys.executable, "-W", "error", "-c", SCRIPT], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, proc.stdout  # nothing else printed (mace's cuequivariance notice is swallowed)
    result = json.loads(lines[0])
    assert result["imported_early"] == []  # mace / e3nn are imported only by a build
    assert result["imported_late"] == ["e3nn", "mace"]
    assert result["n_params"] > 0
    # built in float64 (e3nn's and mace's constants in double precision), default dtype restored
    assert result["buffer_dtypes"] == ["torch.float64"]
    assert result["environ_diff"] == []  # TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD, TORCHINDUCTOR_CACHE_DIR: restored
    assert result["changed"] == {}
