"""No hidden process effects: importing mlffbench changes nothing, and only the commands that train
or time set up their process (XLA's CPU flags, the re-execution with the tuned allocator;
mlffbench.speed.runtime.prepare_process, docs/process-setup.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlffbench.speed import runtime

# Imports every module of the core (the JAX and PyTorch backends included) and lists the variables
# that changed. Some libraries set variables of their own when imported (jax: TF_CPP_MIN_LOG_LEVEL,
# TPU_SKIP_MDS_QUERY; mlflow, torch_geometric: others), so the modules given as arguments (the
# third-party ones a first pass imported, in its order) are imported first, apart.
IMPORT_ALL = """
import importlib, json, os, pkgutil, sys
start = dict(os.environ)
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except Exception:
        pass
before = dict(os.environ)
import mlffbench
names = sorted(m.name for m in pkgutil.walk_packages(mlffbench.__path__, "mlffbench."))
for name in names:
    importlib.import_module(name)
after = dict(os.environ)
changed = lambda a, b: sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
third_party = [m for m in list(sys.modules) if m.split(".")[0] not in sys.stdlib_module_names
               and m.split(".")[0] not in ("mlffbench", "__main__") and m not in sys.builtin_module_names]
print(json.dumps({"modules": names, "by_libraries": changed(start, before), "by_mlffbench": changed(before, after),
                  "third_party": third_party}))
"""


# Loaded by every interpreter the test starts (PYTHONPATH): one line when the interpreter starts
# (a re-execution starts it again, same pid), one when the command body's first heavy module or jax
# is imported, one at exit with the environment variables the process changed.
SITECUSTOMIZE = """
import atexit, json, os, sys
_before = dict(os.environ)

def _log(event, **extra):
    with open(os.environ["MLFFBENCH_TEST_LOG"], "a") as f:
        f.write(json.dumps({"event": event, "pid": os.getpid(), "XLA_FLAGS": os.environ.get("XLA_FLAGS"),
                            "GLIBC_TUNABLES": os.environ.get("GLIBC_TUNABLES"), "jax": "jax" in sys.modules, **extra}) + "\\n")

class _Watch:
    seen = set()

    def find_spec(self, name, path=None, target=None):
        # the built-in datasets plugin is loaded with the registry: the command's work has begun
        if name in ("jax", "mlffbench.data.builtin") and name not in self.seen:
            self.seen.add(name)
            _log(name)
        return None

sys.meta_path.insert(0, _Watch())
_log("start", argv=sys.argv[1:])
atexit.register(lambda: _log("exit", changed=sorted(k for k in _before.keys() | os.environ.keys() if _before.get(k) != os.environ.get(k))))
"""


def _clean_env(**changes: str) -> dict[str, str]:
    """This environment without the process set-up (the test session sets XLA's flags itself)."""
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "GLIBC_TUNABLES", runtime.OPT_OUT)}
    env.update(changes)
    return env


def _mlffbench(tmp_path: Path, *args: str, **env_changes: str) -> list[dict]:
    """Run the console script with the watching sitecustomize; the events it logged."""
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    log = tmp_path / f"log-{len(list(tmp_path.glob('log-*')))}.jsonl"
    env = _clean_env(
        PYTHONPATH=os.pathsep.join([str(site), *filter(None, [os.environ.get("PYTHONPATH")])]),
        MLFFBENCH_TEST_LOG=str(log),
        MLFFBENCH_RUNS_DIR=str(tmp_path / "runs"),
        **env_changes,
    )
    script = Path(sys.executable).parent / "mlffbench"
    command = [sys.executable, str(script)] if script.is_file() else [sys.executable, "-m", "mlffbench.cli.app"]
    subprocess.run([*command, *args], env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    return [json.loads(line) for line in log.read_text().splitlines()]


def _import_all(*first: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", IMPORT_ALL, *first],
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_importing_every_core_module_leaves_the_environment_unchanged():
    alone = _import_all()
    assert "mlffbench.backends.jax" in alone["modules"] and "mlffbench.speed.runtime" in alone["modules"]
    assert "XLA_FLAGS" not in alone["by_mlffbench"] and "GLIBC_TUNABLES" not in alone["by_mlffbench"]
    # the same modules after the libraries they import: whatever still changes is mlffbench's doing
    apart = _import_all(*alone["third_party"])
    assert apart["by_mlffbench"] == []
    assert set(alone["by_mlffbench"]) == set(apart["by_libraries"])  # the libraries' own variables, nothing else


@pytest.mark.parametrize(
    "args", [("--help",), ("run", "--help"), ("bench", "--help"), ("config",), ("runs",), ("datasets",)]
)
def test_commands_that_neither_train_nor_time_leave_the_process_alone(tmp_path, args):
    events = _mlffbench(tmp_path, *args)
    assert [e["event"] for e in events if e["event"] == "start"] == ["start"]  # not re-executed
    assert events[0]["GLIBC_TUNABLES"] is None and events[0]["XLA_FLAGS"] is None
    assert events[-1]["event"] == "exit" and events[-1]["changed"] == []


@pytest.mark.skipif(not runtime._is_glibc(), reason="glibc malloc tunables only")
def test_a_command_that_trains_reexecutes_once_with_the_flags_before_its_work_starts(tmp_path):
    events = _mlffbench(tmp_path, "run", "no-such-model")  # the set-up comes before the model is looked up
    starts = [e for e in events if e["event"] == "start"]
    assert len(starts) == 2 and starts[0]["pid"] == starts[1]["pid"]  # one re-execution, the same command line
    assert starts[0]["argv"] == starts[1]["argv"] == ["run", "no-such-model"]
    tuned = starts[1]
    assert tuned["GLIBC_TUNABLES"] == ":".join(runtime.TUNABLES)
    assert f"--{runtime.XLA_YNN_FLAG}=" in tuned["XLA_FLAGS"].split()  # there when the interpreter starts
    body = [e for e in events if e["event"] == "mlffbench.data.builtin"]
    assert len(body) == 1 and not body[0]["jax"] and body[0]["GLIBC_TUNABLES"] == tuned["GLIBC_TUNABLES"]


def test_without_the_tuned_allocator_the_flags_are_set_before_jax_is_imported(tmp_path):
    events = _mlffbench(tmp_path, "run", "no-such-model", **{runtime.OPT_OUT: "1"})
    assert [e["event"] for e in events if e["event"] == "start"] == ["start"]
    body = [e for e in events if e["event"] == "mlffbench.data.builtin"]
    assert len(body) == 1 and not body[0]["jax"] and body[0]["GLIBC_TUNABLES"] is None
    assert f"--{runtime.XLA_YNN_FLAG}=" in body[0]["XLA_FLAGS"].split()
    assert events[-1]["changed"] == ["XLA_FLAGS"]  # the one change, made by the command's set-up


def test_exactly_the_commands_that_train_or_time_set_up_their_process():
    from mlffbench.cli.app import main

    marked = {name for name, command in main.commands.items() if getattr(command.callback, "prepares_process", False)}
    assert marked == {"run", "tune", "bench", "compare", "md"}


def test_xla_flags_keep_the_users_choice():
    assert runtime.xla_flags({}) == f"--{runtime.XLA_YNN_FLAG}="
    assert runtime.xla_flags({"XLA_FLAGS": "--xla_dump_to=/tmp/x"}) == f"--xla_dump_to=/tmp/x --{runtime.XLA_YNN_FLAG}="
    assert runtime.xla_flags({"XLA_FLAGS": f"--{runtime.XLA_YNN_FLAG}=default"}) is None


def test_the_compilation_cache_folder_is_chosen_from_the_environment(tmp_path):
    cache = str(tmp_path / "cache")
    # default: in mlffbench's cache folder; every compiled program kept
    env = {"MLFFBENCH_CACHE_DIR": cache}
    assert runtime.set_compilation_cache(env) == str(Path(cache) / "jax-compiled")
    assert env[runtime.JAX_CACHE_DIR] == str(Path(cache) / "jax-compiled")
    assert env[runtime.JAX_CACHE_MIN_SECONDS] == "0"
    # a folder of one's own
    env = {"MLFFBENCH_CACHE_DIR": cache, runtime.COMPILE_CACHE_ENV: str(tmp_path / "mine")}
    assert runtime.set_compilation_cache(env) == str(tmp_path / "mine")
    # JAX's own variables win, the minimum compile time too
    env = {runtime.JAX_CACHE_DIR: "/elsewhere", runtime.JAX_CACHE_MIN_SECONDS: "2", runtime.COMPILE_CACHE_ENV: "x"}
    assert runtime.set_compilation_cache(env) == "/elsewhere" and env[runtime.JAX_CACHE_MIN_SECONDS] == "2"
    # off: nothing is set
    for off in ("off", "0", "False"):
        env = {runtime.COMPILE_CACHE_ENV: off}
        assert runtime.set_compilation_cache(env) is None and env == {runtime.COMPILE_CACHE_ENV: off}
