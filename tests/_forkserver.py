"""A fork server for the fault-injection tests (tests/test_faults.py).

Importing torch, MLflow, Optuna and mlffbench costs seconds per process on a loaded 2-core
machine, and those tests start dozens of ``mlffbench`` processes to kill them. The server
(``python tests/_forkserver.py``) imports all of it once, then forks one child per command:
the child changes to the command's folder, sends its standard output and error to files and
runs the ``mlffbench`` command line in-process (``main.main(args)``, as the console script
does minus the re-execution), so its pid, signals and exit status are a real command's.
``kill -9`` of a child is a real ``kill -9``.

Protocol: one JSON object a line on stdin, one reply a line on stdout.
``{"op": "run", "args": [...], "cwd": DIR, "out": FILE, "err": FILE}`` → ``{"pid": PID}``;
``{"op": "wait", "pid": PID}`` → ``{"rc": CODE}`` (negative: killed by that signal), which
also reaps the child so that its pid is gone (a zombie still answers ``kill(pid, 0)``).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path


def _preload() -> None:
    """Everything a command imports, lazily or not; no computation (torch's thread pools and
    SQLAlchemy's connections must not exist before a fork)."""
    import importlib

    import matplotlib

    matplotlib.use("Agg")
    for name in (
        "matplotlib.pyplot",
        "torch",
        "torch_geometric",
        "h5py",
        "git",
        "sqlalchemy.dialects.sqlite",
        "alembic.command",
        "alembic.config",
        "optuna",
        "optuna.storages",
        "mlflow",
        "mlflow.store.tracking.sqlalchemy_store",
        "mlflow.store.workspace_aware_mixin",
        "mlflow.tracing.export",
        "opentelemetry.sdk.metrics",
        "rich.console",
        "rich.table",
        "rich.progress",
        "mlffbench.cli.app",
        "mlffbench.speed.compare",
        "mlffbench.speed.report",
        "mlffbench.runs.experiment",
        "mlffbench.runs.trained",
        "mlffbench.runs.tracking",
        "mlffbench.tuning.study",
        "mlffbench.tuning.report",
        "mlffbench.training.loop",
        "mlffbench.graph.neighbors",
        "mlffbench.graph.batching",
        "mlffbench.data.user",
        "mlffbench.data.splits",
        "mlffbench.backends.torch",
        "mlffbench_schnet.model",
    ):
        try:
            importlib.import_module(name)
        except ImportError:
            pass  # only slower
    from mlffbench.plugin.manager import get_plugins

    get_plugins()


def _empty_store(path: str) -> None:
    """An MLflow SQLite store with its tables (MLflow's migrations take seconds per new
    store), made in a child so that this process holds no connection."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            import logging

            import mlflow

            for name in ("mlflow", "alembic"):
                logging.getLogger(name).setLevel(logging.WARNING)
            mlflow.MlflowClient(f"sqlite:///{path}").search_experiments()
            code = 0
        finally:
            os._exit(code)
    os.waitpid(pid, 0)


def _child(request: dict) -> None:
    code = 1
    try:
        os.chdir(request["cwd"])
        for fd, path in ((1, request["out"]), (2, request["err"])):
            target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(target, fd)
            os.close(target)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.environ["COLUMNS"] = "200"
        signal.signal(signal.SIGINT, signal.default_int_handler)
        from mlffbench.cli.app import main

        try:
            main.main(args=request["args"], prog_name="mlffbench", standalone_mode=True)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        import atexit

        atexit._run_exitfuncs()  # as a normal interpreter exit does (e.g. MLflow ends a run left open)
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)


def serve(template: str) -> None:
    _preload()
    _empty_store(template)
    reply = sys.stdout
    print(json.dumps({"ready": True}), file=reply, flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        if request["op"] == "run":
            pid = os.fork()
            if pid == 0:
                _child(request)
            print(json.dumps({"pid": pid}), file=reply, flush=True)
        elif request["op"] == "wait":
            _, status = os.waitpid(request["pid"], 0)
            print(json.dumps({"rc": os.waitstatus_to_exitcode(status)}), file=reply, flush=True)


class ForkServer:
    """The test side: starts the server, runs commands in it, kills and reaps them."""

    def __init__(self, folder: Path, env: dict[str, str] | None = None) -> None:
        self.template = Path(folder) / "empty-mlflow.db"
        self.proc = subprocess.Popen(
            [sys.executable, __file__, str(self.template)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert json.loads(self.proc.stdout.readline()).get("ready"), "fork server did not start"

    def store(self, runs_dir: Path) -> str:
        """A fresh MLflow store in ``runs_dir`` (a copy of the empty one), its tracking URI."""
        import shutil

        Path(runs_dir).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.template, Path(runs_dir) / "mlflow.db")
        return f"sqlite:///{Path(runs_dir).resolve() / 'mlflow.db'}"

    def _ask(self, request: dict) -> dict:
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("fork server died")
        return json.loads(line)

    def start(self, args: list[str], cwd: Path, name: str) -> int:
        """Start ``mlffbench ARGS`` in ``cwd``; its output goes to ``cwd/NAME.out`` and ``.err``."""
        return self._ask(
            {
                "op": "run",
                "args": list(args),
                "cwd": str(cwd),
                "out": str(Path(cwd) / f"{name}.out"),
                "err": str(Path(cwd) / f"{name}.err"),
            }
        )["pid"]

    def wait(self, pid: int) -> int:
        return self._ask({"op": "wait", "pid": pid})["rc"]

    def run(self, args: list[str], cwd: Path, name: str) -> tuple[int, str, str]:
        """Run to the end: (exit status, stdout, stderr)."""
        rc = self.wait(self.start(args, cwd, name))
        return rc, (Path(cwd) / f"{name}.out").read_text(), (Path(cwd) / f"{name}.err").read_text()

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)
        self.proc.stdout.close()


if __name__ == "__main__":
    serve(sys.argv[1])
