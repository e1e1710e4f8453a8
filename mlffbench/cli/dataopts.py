"""The data options of every command that takes a dataset: units, stress sign, keys, format,
card folders. They apply to the dataset however it is named (a registered name, a card or a
path); see :mod:`mlffbench.data.user`.

:func:`data_options` adds the options and hands the command their values as one frozen
:class:`~mlffbench.data.user.DataRequest`, its ``data`` argument: the command passes it to the
resolution of its dataset (``resolve_card(name, data)``), or runs the code that resolves names
itself inside ``command_request(data)``. Nothing is kept between commands.
"""

from __future__ import annotations

import functools

import click

_PARAMS = ("data_format", "data_units", "data_stress_sign", "data_keys", "data_cards")


def _parsed(parser: str):
    """A callback that checks the values as they are parsed (the error names the option):
    ``parser``, a function of :mod:`mlffbench.data.user` (imported when a command runs)."""

    def callback(ctx, param, value):
        if value:
            from mlffbench.data import user

            getattr(user, parser)(value)
        return value

    return callback


def data_options(f):
    """``--format``, ``--unit Q=U``, ``--stress-sign``, ``--key FIELD=KEY``, ``--cards DIR``:
    the command gets them as ``data`` (a :class:`~mlffbench.data.user.DataRequest`)."""

    @functools.wraps(f)
    def command(*args, **kwargs):
        from mlffbench.data.user import DataRequest

        values = {name: kwargs.pop(name) for name in _PARAMS}
        kwargs["data"] = DataRequest.of(
            units=values["data_units"],
            stress_sign=values["data_stress_sign"],
            keys=values["data_keys"],
            format=values["data_format"],
            cards=values["data_cards"],
        )
        return f(*args, **kwargs)

    options = [
        click.option(
            "--format",
            "data_format",
            help="Format of a dataset given as a path: an mlffbench format (extxyz, neuralil-jsonl, ...) "
            "or any ASE format name (default: ASE's detection).",
        ),
        click.option(
            "--unit",
            "data_units",
            multiple=True,
            callback=_parsed("parse_units"),
            help="Unit of the data, quantity=unit (repeatable): energy=eV|meV|hartree|Ry|kcal/mol|kJ/mol, "
            "length=angstrom|bohr|nm, stress=eV/angstrom^3|GPa|kbar|bar.",
        ),
        click.option(
            "--stress-sign",
            "data_stress_sign",
            type=click.Choice(["ase", "vasp"]),
            help="Sign of the stored stress: ase (tensile positive) or vasp (pressure positive).",
        ),
        click.option(
            "--key",
            "data_keys",
            multiple=True,
            callback=_parsed("parse_keys"),
            help="Info/array key of a field, field=KEY (repeatable): energy, forces, stress, virial, group; "
            "e.g. stress=virial_kbar.",
        ),
        click.option(
            "--cards",
            "data_cards",
            multiple=True,
            type=click.Path(exists=True, file_okay=False),
            help="Folder of dataset cards (*.toml) of your own (repeatable; also $MLFFBENCH_CARDS).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command
