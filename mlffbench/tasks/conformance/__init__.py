"""The conformance suite: physics checks every model plugin must pass (see :mod:`.checks`).

In a plugin's tests (the pytest plugin :mod:`mlffbench.tasks.conformance.pytest_plugin` is
registered through the ``pytest11`` entry point of mlffbench, so its fixtures are always
there)::

    import pytest
    from mlffbench.tasks.conformance import CHECK_NAMES, plugin_model, require

    @pytest.fixture(scope="module")
    def report(conformance):
        return conformance.run(plugin_model("mymodel", MyConfig(), seed=0))

    @pytest.mark.parametrize("check", CHECK_NAMES)
    def test_conformance(report, check):
        require(report, check)

On the command line: ``mlffbench check MODEL [--init-from WEIGHTS] [--dataset D]`` or
``mlffbench check RUN_DIR``.
"""

from mlffbench.tasks.conformance.checks import (
    CHECKS,
    FAILED,
    PASSED,
    REPORTED,
    SKIPPED,
    CheckResult,
    ModelUnderTest,
    Report,
    Tolerances,
    run_suite,
)
from mlffbench.tasks.conformance.configurations import dataset_configurations, standard_configurations
from mlffbench.tasks.conformance.subject import model_under_test, plugin_model

CHECK_NAMES = tuple(CHECKS)


def require(report: Report, check: str, allow_reported: bool = True) -> None:
    """Fail (AssertionError with the whole report) unless ``check`` passed (or was reported/skipped)."""
    result = report.result(check)
    ok = result.status in ((PASSED, REPORTED, SKIPPED) if allow_reported else (PASSED, SKIPPED))
    if not ok:
        raise AssertionError(f"conformance check '{check}' {result.status}\n{report.text()}")


__all__ = [
    "CHECKS",
    "CHECK_NAMES",
    "FAILED",
    "PASSED",
    "REPORTED",
    "SKIPPED",
    "CheckResult",
    "ModelUnderTest",
    "Report",
    "Tolerances",
    "dataset_configurations",
    "model_under_test",
    "plugin_model",
    "require",
    "run_suite",
    "standard_configurations",
]
