"""``neurosim run``: train a protocol and record it."""

from __future__ import annotations

import shlex

import click

from ..core.options import ConfigError
from ..core.progress import start_notes
from .common import EXIT_DIVERGED, EXIT_INTERRUPTED, Progress, fail, summary_line


@click.command()
@click.argument("protocol", type=click.Path())
@click.option("--device", type=click.Choice(["cpu", "gpu", "auto"]), default=None,
              help="Override the protocol's device.")
@click.option("--out", type=click.Path(), default=None, help="Output store (default: protocol's).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Override a protocol key, e.g. --set training.epochs=3 (repeatable).")
@click.option("--resume", is_flag=True, help="Continue the store from its last checkpoint.")
@click.option("--overwrite", is_flag=True, help="Replace an existing store.")
@click.option("--quiet", is_flag=True, help="No progress line.")
@click.option("--progress", "progress_mode", type=click.Choice(["auto", "bar", "lines"]),
              default="auto", show_default=True,
              help="A live bar, or a line per evaluation and a status line every 30 s "
                   "(auto: a bar on a terminal, lines in a log).")
def run(protocol, device, out, sets, resume, overwrite, quiet, progress_mode):
    """Train a PROTOCOL (YAML) and record it to a Zarr store."""
    from ..core.backend import DeviceError, resolve_device
    from ..data import DataError
    from ..protocol import load_protocol, parse_set
    from ..recording import StoreError
    from ..train import DivergenceError, Interrupted, run_protocol

    try:
        proto = load_protocol(protocol, parse_set(sets))
    except ConfigError as exc:
        fail(str(exc))
    out = out or proto.recording.out
    again = " ".join(shlex.quote(a) for a in (protocol, "--out", str(out),
                                              *[x for v in sets for x in ("--set", v)], "--resume"))
    prog = Progress(proto.training.epochs, enabled=not quiet,
                    max_steps=proto.training.max_steps, mode=progress_mode)
    for line in start_notes(proto):
        click.echo(line, err=True)  # even with --quiet: these change what the run means
    try:
        resolve_device(device or proto.device)  # before any data loads
        try:
            summary = run_protocol(proto, out=out, device=device, resume=resume,
                                   overwrite=overwrite, progress=prog)
        finally:
            prog.close()  # the bar ends its line before any message below
    except (DataError, StoreError, ConfigError, DeviceError) as exc:
        fail(str(exc))
    except DivergenceError as exc:
        fail(f"run diverged: {exc}. The store keeps every checkpoint before it: {out}",
             EXIT_DIVERGED)
    except Interrupted as exc:
        fail(f"{exc}. Resume with: neurosim run {again}", EXIT_INTERRUPTED)
    except KeyboardInterrupt:  # before the loop, or a second Ctrl-C: the last commit stays
        fail(f"interrupted; the store keeps its last checkpoint. Resume with: neurosim run {again}",
             EXIT_INTERRUPTED)
    click.echo(summary_line(summary))
