"""The plugin surface: discovery through entry points, failures and duplicates reported by name."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mlffbench.plugin import hookspecs

MLFFBENCH = [sys.executable, "-m", "mlffbench.cli.app"]


def _fake_distribution(site: Path, name: str, modules: dict[str, str], entry_points: dict[str, str]) -> None:
    """A minimal installed distribution: dist-info with entry points, plus its modules."""
    info = site / f"{name}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    eps = "\n".join(f"{k} = {v}" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[mlffbench]\n{eps}\n")
    for module, source in modules.items():
        (site / f"{module}.py").write_text(textwrap.dedent(source))


def _run(args, site: Path, **env):
    environ = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
        "COLUMNS": "200",
        **env,
    }
    return subprocess.run(MLFFBENCH + args, capture_output=True, text=True, env=environ, timeout=120)


@pytest.fixture
def site(tmp_path):
    site = tmp_path / "site"
    _fake_distribution(
        site,
        "broken_plugin",
        {"broken_mod": "raise ImportError('this plugin is broken on purpose')\n"},
        {"broken": "broken_mod"},
    )
    _fake_distribution(
        site,
        "dup_plugin",
        {
            "dup_mod": """
            from mlffbench import hookimpl
            from mlffbench.plugin.registry import DatasetCard

            @hookimpl
            def mlffbench_datasets(register):
                register(DatasetCard(name="ean", format="npz", files=(), units={}))
            """
        },
        {"dup": "dup_mod"},
    )
    return site


def test_broken_and_duplicate_plugins_are_reported_and_others_load(site):
    out = _run(["plugins"], site)
    assert out.returncode == 0, out.stderr
    assert "broken" in out.stdout and "failed" in out.stdout
    assert "this plugin is broken on purpose" in out.stdout
    assert "plugin 'dup' registered duplicate dataset 'ean'" in out.stdout.replace("\n", " ")
    listing = _run(["datasets"], site)
    assert listing.returncode == 0, listing.stderr
    assert "ean" in listing.stdout and "rmd17-ethanol" in listing.stdout
    models = _run(["models"], site)
    assert "jat" in models.stdout


def test_block_and_allow_lists(site):
    blocked = _run(["plugins"], site, MLFFBENCH_BLOCK_PLUGINS="broken,dup")
    assert "blocked" in blocked.stdout and "failed" not in blocked.stdout
    allowed = _run(["models"], site, MLFFBENCH_PLUGINS="builtin_datasets")
    assert allowed.returncode == 0
    assert "jat" not in allowed.stdout


def test_every_hook_is_documented():
    hooks = [name for name in dir(hookspecs) if name.startswith("mlffbench_")]
    assert set(hooks) == {
        "mlffbench_models",
        "mlffbench_datasets",
        "mlffbench_formats",
        "mlffbench_tasks",
        "mlffbench_run_finished",
    }
    for name in hooks:
        assert getattr(hookspecs, name).__doc__, name


def test_core_imports_neither_jax_nor_torch():
    code = (
        "import sys, mlffbench, mlffbench.cli.app, mlffbench.runs.experiment, mlffbench.plugin.manager, mlffbench.data.structures, "
        "mlffbench.data.splits, mlffbench.data.stats, mlffbench.graph.neighbors, mlffbench.graph.batching, "
        "mlffbench.data.loading, mlffbench.training.loop, mlffbench.runs.tracking\n"
        "mlffbench.plugin.manager.get_registry()\n"
        "bad = sorted(m for m in ('jax', 'torch', 'flax', 'optax') if m in sys.modules)\n"
        "assert not bad, bad\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
