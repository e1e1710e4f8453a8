"""Command-line options that several commands share: one decorator each, so that the options read
and behave the same in every command (the data options are in :mod:`mlffbench.cli.dataopts`)."""

from __future__ import annotations

from pathlib import Path

import click

DATASET_HELP = "Dataset name (see `mlffbench datasets`; default: ean, see `mlffbench config`)."
DATA_DIR_HELP = "Folder with the original dataset files (default: $MLFFBENCH_DATA_DIR)."
NUMBERS_JSON_HELP = "Also write the numbers to this JSON file."


def dataset_option(f):
    """``--dataset/-d NAME``."""
    return click.option("--dataset", "-d", "dataset", help=DATASET_HELP)(f)


def data_dir_option(f):
    """``--data-dir DIR``."""
    return click.option("--data-dir", type=click.Path(path_type=Path), help=DATA_DIR_HELP)(f)


def runs_dir_option(help: str):
    """``--runs-dir DIR`` (``help``: what the command keeps there)."""
    return click.option("--runs-dir", type=click.Path(path_type=Path), help=help)


def tracking_options(f):
    """``--tracking-uri URI`` and ``--no-tracking``."""
    f = click.option("--no-tracking", is_flag=True, help="Do not log to MLflow.")(f)
    return click.option("--tracking-uri", help="MLflow tracking URI (default: SQLite store in the runs dir).")(f)


def count_option(name: str, default: int, help: str):
    """``NAME N``: a count of at least 1, its default shown."""
    return click.option(name, type=click.IntRange(1), default=default, show_default=True, help=help)


def json_option(help: str = NUMBERS_JSON_HELP):
    """``--json FILE``."""
    return click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), help=help)
