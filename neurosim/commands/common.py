"""Shared pieces of the command-line commands: exit codes, the one-line error, the
progress display of a training run and the final summary line.

Exit codes: 0 success; 2 bad input (protocol, circuit, data, existing store);
3 the run diverged (NaN/Inf); 130 interrupted (checkpoint written).
"""

from __future__ import annotations

import math
import sys

import click

from ..core.progress import Progress, format_epoch, format_position, make_progress  # noqa: F401

EXIT_INPUT, EXIT_DIVERGED, EXIT_INTERRUPTED = 2, 3, 130


def fail(msg: str, code: int = EXIT_INPUT):
    """Each line of ``msg`` as an ``error:`` line on stderr (several when a protocol has several
    errors), then exit with ``code``."""
    for line in str(msg).splitlines() or [""]:
        click.echo(f"error: {line}", err=True)
    sys.exit(code)


# ------------------------------------------------------------------------------ formatting
def format_duration(seconds: float) -> str:
    """``8 min 24 s``, ``41 s``, ``2.5 s``, ``1 h 05 min`` (words a reader does not decode)."""
    s = float(seconds)
    if not math.isfinite(s) or s < 0:
        return "unknown"
    if s < 10:
        return f"{s:.1f} s"
    s = round(s)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s" if s % 60 else f"{s // 60} min"
    return f"{s // 3600} h {(s % 3600) // 60:02d} min"


def plural(n, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def stop_reason(stopped: str, epochs, n_epochs=None, steps_per_epoch=None) -> str:
    """Why a run ended, in words, from :class:`neurosim.train.RunSummary`'s ``stopped``
    (``"epochs"``, ``"early stop (zero train error)"``, ``"max_steps N"``, ``"interrupted ..."``)
    and the epochs completed (a position inside an epoch as the progress bar gives it:
    ``epoch 1/3 batch 40/469``, with ``n_epochs`` and ``steps_per_epoch``)."""
    from ..recording.session import Stop

    s, stop = str(stopped or "epochs"), Stop.parse(stopped)
    whole = float(epochs) == int(float(epochs)) or not steps_per_epoch
    ep = format_position(epochs, None if whole else n_epochs, steps_per_epoch)[len("epoch "):]
    if stop is Stop.EPOCHS:
        n = int(float(epochs))
        return f"all {n} epochs done" if n != 1 else "1 epoch done"
    if stop is Stop.EARLY_STOP:
        return f"zero train error at epoch {ep}"
    if stop is Stop.MAX_STEPS:
        return f"step limit training.max_steps={Stop.limit(s)} reached at epoch {ep}"
    if s.startswith("interrupt"):
        return f"interrupted at epoch {ep}"
    return f"{s} at epoch {ep}"


def summary_line(summary) -> str:
    """The last line of ``neurosim run``, in words::

        runs/grouped_mnist.zarr: stopped: all 3 epochs done; 1407 steps; train error 2.85%,
        test error 3.83%; training time 8 min 24 s

    ``summary`` is a :class:`neurosim.train.RunSummary` (store, epochs, steps, train_error,
    test_error, stopped, seconds).
    """
    def err(v):
        v = float(v)
        return f"{v:.2f}%" if math.isfinite(v) else "n/a"

    epochs = summary.epochs if getattr(summary, "position", None) is None else summary.position
    why = stop_reason(summary.stopped, epochs, getattr(summary, "n_epochs", None),
                      getattr(summary, "steps_per_epoch", None))
    return (f"{summary.store}: stopped: {why}; "
            f"{plural(int(summary.steps), 'step')}; train error {err(summary.train_error)}, "
            f"test error {err(summary.test_error)}; training time {format_duration(summary.seconds)}")
