"""Marks the ``mlffbench`` commands that train or time: they set up their process
(:func:`mlffbench.speed.runtime.prepare_process`) before their body runs; every other command and
``--help`` leaves the process as it started (docs/process-setup.md)."""

from __future__ import annotations

import functools

from mlffbench.speed.runtime import prepare_process

# Set by the console script (mlffbench.cli.app.entry): only then may a command re-execute the
# process. A command invoked in-process (click's CliRunner, a test) sets XLA's flags only.
console_script = False


def trains_or_times(command):
    """Decorator for a command body that trains or times; put it right above the ``def``."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        prepare_process(reexec=console_script)
        return command(*args, **kwargs)

    wrapper.prepares_process = True
    return wrapper
