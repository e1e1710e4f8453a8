"""Entry point of the NeuralIL plugin.

The package and its registration exist so that the plugin surface is exercised by a
separate distribution; the NeuralIL model itself is not implemented yet, so the hook
registers no model (``mlffbench models`` does not list it).
"""

from mlffbench import hookimpl


@hookimpl
def mlffbench_models(register):
    """NeuralIL registers nothing until its model is implemented."""
