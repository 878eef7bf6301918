"""Command line entry point: ``neurosim COMMAND``.

Each command lives in its own module under :mod:`neurosim.commands`; adding a
command is one module plus one entry in :data:`COMMANDS`.

Exit codes: 0 success; 1 internal error (a bug: one line, the traceback in a log file, or on
the terminal with ``--debug``); 2 bad input (protocol, circuit, data, store, environment);
3 the run diverged (NaN/Inf); 130 interrupted (checkpoint written).
"""

from __future__ import annotations

import importlib
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

import click

from .core import host

# the command's process-wide host settings, before the commands import NumPy (OpenBLAS reads its
# thread timeout then); a program that imports neurosim as a library keeps its own
host.configure()


def _user_errors() -> tuple:
    """Exceptions that describe a user's input or environment (exit 2, one line)."""
    from .core.options import ConfigError
    from .data import DataError
    from .recording import StoreError

    return ConfigError, DataError, StoreError


def _log_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "neurosim" / "logs"


def write_log(text: str) -> Path | None:
    """Write ``text`` to a new log file (the cache directory, else the temporary directory)."""
    name = time.strftime("neurosim-%Y%m%dT%H%M%S") + f"-{os.getpid()}.log"
    for folder in (_log_dir(), Path(tempfile.gettempdir())):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / name
            path.write_text(text)
            return path
        except OSError:
            continue
    return None


class _Main(click.Group):
    """The command group: any exception a command lets through ends as one line."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit, KeyboardInterrupt):
            raise
        except _user_errors() as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except Exception as exc:  # a bug: say so in one line, keep the traceback
            if (ctx.obj or {}).get("debug") or os.environ.get("NEUROSIM_DEBUG"):
                raise
            tb = "".join(traceback.format_exception(exc))
            log = write_log(f"neurosim {' '.join(sys.argv[1:])}\n\n{tb}")
            where = f"the traceback is in {log}" if log else "no log file could be written"
            msg = str(exc).splitlines()[0] if str(exc) else ""
            click.echo(f"internal error: {type(exc).__name__}: {msg[:200]} (a bug in neurosim, not in "
                       f"your input; {where}; --debug shows it here)", err=True)
            sys.exit(1)

#: "module:function" of every command, in help order
COMMANDS = [
    "neurosim.commands.run:run",
    "neurosim.commands.inspect:inspect",
    "neurosim.commands.theory:theory",
    "neurosim.commands.report:report",
    "neurosim.commands.sweep:sweep",
    "neurosim.commands.compare:compare",
    "neurosim.commands.plot:plot",
]


@click.group(cls=_Main)
@click.version_option(package_name="neurosim")
@click.option("--debug", is_flag=True, help="Show the traceback of an internal error.")
@click.pass_context
def main(ctx, debug):
    """neurosim: credit assignment by broadcast error vectors, batched and as circuits."""
    ctx.obj = {"debug": debug}


for _spec in COMMANDS:
    _mod, _name = _spec.split(":")
    main.add_command(getattr(importlib.import_module(_mod), _name))


if __name__ == "__main__":  # pragma: no cover
    main()
