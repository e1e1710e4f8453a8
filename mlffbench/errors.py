"""User-facing errors: the CLI prints their message as one line and exits non-zero."""


class MlffbenchError(Exception):
    """Base class for errors caused by user input (files, names, options)."""

    exit_code = 2


class DataError(MlffbenchError):
    """A dataset file is missing, truncated, malformed, or holds invalid values."""


class UnknownNameError(MlffbenchError):
    """An unknown model, dataset, format or element name."""


class PluginError(MlffbenchError):
    """A plugin failed to load or registered something invalid."""


class ConfigError(MlffbenchError):
    """An invalid configuration value or option combination."""


class RunError(MlffbenchError):
    """A run directory is missing, incompatible or would be overwritten."""
