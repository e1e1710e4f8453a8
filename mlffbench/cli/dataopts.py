"""The data options of every command that takes a dataset: units, stress sign, keys, format,
card folders. They apply to the dataset however it is named (a registered name, a card or a
path); see :mod:`mlffbench.data.user`."""

from __future__ import annotations

import click

from mlffbench.data import user
from mlffbench.data.user import parse_units


def _set(name: str, convert=None):
    def callback(ctx, param, value):
        value = convert(value) if convert and value else value
        user.set_request(**{name: value})
        return value

    return callback


def _units(items):

    return parse_units(items)


def _options_callback(name):
    def callback(ctx, param, value):
        keep = {k: v for k, v in user.request().options.items() if (k == "stress_sign") != (name == "sign")}
        if ctx.meta.get("mlffbench_data_fresh") is None:  # first data option of this command: start clean
            ctx.meta["mlffbench_data_fresh"] = True
            keep = {}
        new = {}
        if value:
            new = user.parse_keys(value) if name == "keys" else {"stress_sign": value}
        user.set_request(options={**keep, **new})
        return value

    return callback


def data_options(f):
    """``--format``, ``--unit Q=U``, ``--stress-sign``, ``--key FIELD=KEY``, ``--cards DIR``."""
    options = [
        click.option(
            "--format",
            "data_format",
            expose_value=False,
            callback=_set("format"),
            help="Format of a dataset given as a path: an mlffbench format (extxyz, neuralil-jsonl, ...) "
            "or any ASE format name (default: ASE's detection).",
        ),
        click.option(
            "--unit",
            "data_units",
            multiple=True,
            expose_value=False,
            callback=_set("units", _units),
            help="Unit of the data, quantity=unit (repeatable): energy=eV|meV|hartree|Ry|kcal/mol|kJ/mol, "
            "length=angstrom|bohr|nm, stress=eV/angstrom^3|GPa|kbar|bar.",
        ),
        click.option(
            "--stress-sign",
            "data_stress_sign",
            type=click.Choice(["ase", "vasp"]),
            expose_value=False,
            callback=_options_callback("sign"),
            help="Sign of the stored stress: ase (tensile positive) or vasp (pressure positive).",
        ),
        click.option(
            "--key",
            "data_keys",
            multiple=True,
            expose_value=False,
            callback=_options_callback("keys"),
            help="Info/array key of a field, field=KEY (repeatable): energy, forces, stress, virial, group; "
            "e.g. stress=virial_kbar.",
        ),
        click.option(
            "--cards",
            "data_cards",
            multiple=True,
            expose_value=False,
            type=click.Path(exists=True, file_okay=False),
            callback=_set("cards", tuple),
            help="Folder of dataset cards (*.toml) of your own (repeatable; also $MLFFBENCH_CARDS).",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f
