"""Command line entry point: ``neurosim COMMAND``.

Each command lives in its own module under :mod:`neurosim.commands`; adding a
command is one module plus one entry in :data:`COMMANDS`.

Exit codes: 0 success; 2 bad input (protocol, circuit, data, existing store);
3 the run diverged (NaN/Inf); 130 interrupted (checkpoint written).
"""

from __future__ import annotations

import importlib

import click

#: "module:function" of every command, in help order
COMMANDS = [
    "neurosim.commands.run:run",
    "neurosim.commands.inspect:inspect",
    "neurosim.commands.theory:theory",
    "neurosim.commands.report:report",
    "neurosim.commands.sweep:sweep",
    "neurosim.commands.compare:compare",
]


@click.group()
@click.version_option(package_name="neurosim")
def main():
    """neurosim: credit assignment by broadcast error vectors, batched and as circuits."""


for _spec in COMMANDS:
    _mod, _name = _spec.split(":")
    main.add_command(getattr(importlib.import_module(_mod), _name))


if __name__ == "__main__":  # pragma: no cover
    main()
