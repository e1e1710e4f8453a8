"""SIGINT and SIGTERM stop a command as an exception, but never inside a database transaction:
there they are held until the transaction has ended (mlffbench.cli.signals)."""

from __future__ import annotations

import logging
import os
import random
import signal
import threading
import time
import types

import pytest

from mlffbench.cli.signals import in_database_code, stop_handlers
from mlffbench.runs.record import Terminated


def _spin(done):
    end = time.monotonic() + 0.3
    while time.monotonic() < end:
        pass
    done.append(time.monotonic())


def _module_function(module_name: str):
    """A function that spins for 0.3 s in Python code of a module named ``module_name``."""
    return types.FunctionType(_spin.__code__, {"__name__": module_name, "time": time})


def _signal_after(seconds: float, signum: int) -> None:
    threading.Timer(seconds, os.kill, (os.getpid(), signum)).start()


@pytest.mark.parametrize("signum, raised", [(signal.SIGTERM, Terminated), (signal.SIGINT, KeyboardInterrupt)])
def test_a_signal_in_database_code_is_held_until_it_returns(signum, raised):
    spin, done = _module_function("sqlalchemy.orm.session_under_test"), []
    with pytest.raises(raised), stop_handlers():
        _signal_after(0.05, signum)
        spin(done)  # the signal arrives 0.05 s in; the function still runs to its end
        time.sleep(5)  # ... and the held signal is raised here, within milliseconds
    assert done, "the database code was interrupted"


def test_a_signal_elsewhere_stops_at_once():
    spin, done = _module_function("mlffbench.training.loop_under_test"), []
    with pytest.raises(Terminated), stop_handlers():
        _signal_after(0.05, signal.SIGTERM)
        spin(done)
    assert not done


def test_the_previous_handlers_are_back_after():
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with stop_handlers():
        assert signal.getsignal(signal.SIGTERM) is not before[1]
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_in_database_code_looks_at_the_callers():
    import sys

    assert not in_database_code(sys._getframe())


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_mlflow_runs_interrupted_while_logging_still_end_killed(tmp_path):
    """The failure this guards against: SIGTERM raised inside an MLflow SQLite write left the
    write lock held, and ending the run KILLED failed with "database is locked" (with a handler
    that raises at once, this test fails within its 12 interruptions)."""
    import mlflow

    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("signals")
    rng = random.Random(5)
    with stop_handlers():
        for _ in range(12):
            run_id = client.create_run(experiment).info.run_id
            _signal_after(rng.uniform(0.001, 0.03), signal.SIGTERM)
            with pytest.raises(Terminated):
                for step in range(100_000):  # an epoch: training in Python, then its metrics
                    end = time.perf_counter() + 0.001
                    while time.perf_counter() < end:
                        pass
                    client.log_metric(run_id, "loss", 1.0, step=step)
            client.set_tag(run_id, "mlffbench.status", "interrupted")  # "database is locked" before
            client.set_terminated(run_id, "KILLED")
            assert client.get_run(run_id).info.status == "KILLED"
