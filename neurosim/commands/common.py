"""Shared pieces of the command-line commands.

Exit codes: 0 success; 2 bad input (protocol, circuit, data, existing store);
3 the run diverged (NaN/Inf); 130 interrupted (checkpoint written).
"""

from __future__ import annotations

import sys
import time

import click

EXIT_INPUT, EXIT_DIVERGED, EXIT_INTERRUPTED = 2, 3, 130


def fail(msg: str, code: int = EXIT_INPUT):
    click.echo(f"error: {msg}", err=True)
    sys.exit(code)


class Progress:
    """One status line on stderr: epoch, batch, loss, rate."""

    def __init__(self, epochs: int, enabled: bool = True):
        self.epochs = epochs
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self.t0 = time.time()
        self.last = 0.0
        self.n = 0

    def __call__(self, epoch, batch, n_batches, loss):
        self.n += 1
        now = time.time()
        end_of_epoch = batch == n_batches
        if not self.enabled or (now - self.last < (0.2 if self.tty else 30.0) and not end_of_epoch):
            return
        self.last = now
        rate = self.n / max(now - self.t0, 1e-9)
        frac = batch / n_batches
        bar = "#" * int(20 * frac) + "-" * (20 - int(20 * frac))
        line = (f"epoch {epoch}/{self.epochs} [{bar}] batch {batch}/{n_batches} "
                f"loss {float(loss):.4f} {rate:.1f} steps/s")
        if self.tty:
            click.echo("\r" + line, err=True, nl=end_of_epoch)
        elif end_of_epoch:
            click.echo(line, err=True)
