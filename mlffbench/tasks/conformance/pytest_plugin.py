"""pytest plugin of the conformance suite (entry point ``pytest11``: always loaded where
mlffbench is installed). Fixtures:

``conformance_data_dir`` (session)
    Where the dataset files are: $MLFFBENCH_DATA_DIR, else mlffbench's default; override it
    in a conftest to point elsewhere.
``conformance_configurations`` (session)
    The standard configurations (EAN configuration 0, rMD17 ethanol configuration 0); the
    test is skipped where the data is missing.
``conformance`` (session)
    ``conformance.run(model_under_test, only=None)`` → :class:`mlffbench.tasks.conformance.Report`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mlffbench.data.loading import default_data_dir
from mlffbench.tasks.conformance.checks import run_suite
from mlffbench.tasks.conformance.configurations import standard_configurations


class Conformance:
    def __init__(self, configurations) -> None:
        self.configurations = list(configurations)

    def run(self, model, only=None, configurations=None):

        return run_suite(model, configurations or self.configurations, only=only)


@pytest.fixture(scope="session")
def conformance_data_dir() -> Path:

    return default_data_dir()


@pytest.fixture(scope="session")
def conformance_configurations(conformance_data_dir, tmp_path_factory):

    path = Path(conformance_data_dir)
    if not path.is_dir():
        pytest.skip(f"data directory {path} not found (set MLFFBENCH_DATA_DIR)")
    return standard_configurations(path, tmp_path_factory.mktemp("conformance-cache"))


@pytest.fixture(scope="session")
def conformance(conformance_configurations) -> Conformance:
    return Conformance(conformance_configurations)
