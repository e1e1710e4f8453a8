"""A third-party package adds a format and a dataset through the entry-point group "mlffbench".

The package in tests/third_party/mlffbench_example_dataset is installed for real with pip
(into a temporary --target folder, no network), and a fresh interpreter with that folder on
PYTHONPATH finds the dataset in the registry and loads it, units converted by the core.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

PACKAGE = Path(__file__).resolve().parent / "third_party" / "mlffbench_example_dataset"

SCRIPT = textwrap.dedent(
    """
    import json, sys
    from mlffbench.plugin.manager import get_plugins
    from mlffbench.data.loading import load_dataset
    from mlffbench.data.summary import describe
    import mlffbench_example_dataset as example

    data_dir, cache_dir = sys.argv[1], sys.argv[2]
    plugins = get_plugins()
    registry = plugins.registry
    example.write_example_data(data_dir)
    ds = load_dataset("example-h2", data_dir=data_dir, cache_dir=cache_dir, download=False)
    print(json.dumps({
        "datasets": sorted(registry.datasets),
        "formats": sorted(registry.formats),
        "provider": [registry.provider[("datasets", "example-h2")], registry.provider[("formats", "example-h2-text")]],
        "plugin": [[i.name, i.distribution, i.version, list(i.hooks)]
                   for i in plugins.info if i.name == "example_dataset"],
        "problems": registry.problems,
        "module": example.__file__,
        "energy": ds.energy.tolist(),
        "forces": ds.forces.tolist(),
        "positions": ds.positions.tolist(),
        "summary": describe(ds, registry.dataset("example-h2")),
    }))
    """
)


def test_third_party_dataset_plugin(tmp_path):
    source = tmp_path / "src"
    shutil.copytree(PACKAGE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    site = tmp_path / "site"
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(site),
            str(source),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    assert (site / "mlffbench_example_dataset" / "__init__.py").is_file()

    env["PYTHONPATH"] = os.pathsep.join([str(site), *filter(None, [os.environ.get("PYTHONPATH")])])
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "data"), str(tmp_path / "cache")],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])

    assert Path(result["module"]).is_relative_to(site)  # the installed copy, not the source folder
    assert result["plugin"] == [
        ["example_dataset", "mlffbench-example-dataset", "0.1.0", ["mlffbench_datasets", "mlffbench_formats"]]
    ]
    assert result["provider"] == ["example_dataset", "example_dataset"]
    assert "example-h2" in result["datasets"] and "ean" in result["datasets"]  # built-ins still there
    assert "example-h2-text" in result["formats"]
    assert not [p for p in result["problems"] if "example" in p]

    # the core converted the plugin's kcal/mol to eV: compare with the file the plugin wrote
    table = np.loadtxt(tmp_path / "data" / "example_h2" / "h2_morse.txt")
    energy, forces = np.array(result["energy"]), np.array(result["forces"])
    np.testing.assert_allclose(energy, table[:, 0] * 0.0433641, rtol=1e-6)
    np.testing.assert_allclose(forces, table[:, 7:].reshape(-1, 3) * 0.0433641, rtol=1e-6)
    # and the physics survives: along the stretch, dE/dr = -F on the second atom
    r = np.array(result["positions"])[1::2, 0]
    slope = np.gradient(energy, r)
    np.testing.assert_allclose(slope[1:-1], -forces[1::2, 0][1:-1], rtol=0.02, atol=0.02)
    assert result["summary"]["configurations"] == 21 and result["summary"]["formulas"] == {"H2": 21}

    # and the command a user types lists it, with no change to mlffbench
    listing = subprocess.run(
        [sys.executable, "-m", "mlffbench.cli.app", "datasets"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**env, "COLUMNS": "250"},
        cwd=tmp_path,
    )
    assert listing.returncode == 0, listing.stderr
    row = next(line for line in listing.stdout.splitlines() if "example-h2" in line)
    assert "example_dataset" in row
