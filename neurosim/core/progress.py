"""What a training run is doing, for a person watching it: a bar on a terminal, lines in a
notebook or a log (:class:`Progress`, :func:`make_progress`)."""

from __future__ import annotations

import math
import os
import sys
import time
from typing import Protocol


class RunProgress(Protocol):
    """What the training loop tells a person watching it (:class:`Progress` is one display;
    :func:`watch` gives any object passed as ``progress`` this interface)."""

    def phase(self, text: str) -> None:
        """A start-up phase (``loading data``, ``first evaluation (epoch 0)``, ``training``)."""

    def step(self, epoch: int, batch: int, n_batches: int, loss) -> None:
        """After an optimizer step (epoch 1-based, batch 1-based and done)."""

    def evaluated(self, epoch, metrics: dict) -> None:
        """After an evaluation at ``epoch`` (epochs completed, possibly fractional)."""

    def write(self, text: str) -> None:
        """A note on a line of its own (dropped where nothing is shown)."""

    def warn(self, text: str) -> None:
        """A message a person must see (a signal received): on its own line."""


def _ignore(*args) -> None:
    pass


def _to_stderr(text: str) -> None:
    sys.stderr.write(f"\n{text}\n")


class _Given:
    """A ``progress`` object as given (a :class:`Progress`-like object, a step callback
    ``f(epoch, batch, n_batches, loss)``, or None) with the :class:`RunProgress` parts it
    lacks: nothing is shown for them, and a warning goes to stderr."""

    def __init__(self, given):
        self.phase = getattr(given, "phase", None) or _ignore
        self.step = given if callable(given) else _ignore
        self.evaluated = getattr(given, "evaluated", None) or _ignore
        self.write = getattr(given, "write", None) or _ignore
        self.warn = getattr(given, "write", None) or _to_stderr


def watch(progress) -> RunProgress:
    """``progress`` as a :class:`RunProgress` (a :class:`Progress` as it is)."""
    return progress if isinstance(progress, Progress) else _Given(progress)


def format_epoch(epoch) -> str:
    """Whole epochs as integers (``3``), a cut-short epoch with two decimals (``0.09``)."""
    e = float(epoch)
    return str(int(e)) if e == int(e) else f"{e:.2f}"


def _terminal_size(stream) -> tuple[int, int]:
    """(columns, lines) of the terminal behind ``stream``; (0, 0) when unknown."""
    try:
        size = os.get_terminal_size(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return 0, 0
    return size.columns, size.lines


def format_position(epoch, epochs=None, steps_per_epoch=None) -> str:
    """Where a run is, the way the progress bar says it: ``epoch 3/3`` after whole epochs,
    ``epoch 1/3 batch 170/469`` inside one (``epoch``: epochs completed, fractional for a
    cut-short epoch; without ``steps_per_epoch`` the fraction is shown, ``epoch 0.36``)."""
    e = float(epoch)
    of = f"/{int(epochs)}" if epochs else ""
    if e == int(e) or not steps_per_epoch:
        return f"epoch {format_epoch(e)}{of}"
    done = int(e)
    batch = int(round((e - done) * int(steps_per_epoch)))
    return f"epoch {done + 1}{of} batch {batch}/{int(steps_per_epoch)}"


def start_notes(protocol: dict) -> list[str]:
    """Lines a run prints before anything else: the protocol's ``caveat``."""
    out = []
    if protocol.get("caveat"):
        out.append(f"caveat: {' '.join(str(protocol['caveat']).split())}")
    return out


#: how progress is shown: ``auto`` (a bar on a terminal, lines elsewhere), ``bar``, ``lines``
MODES = ("auto", "bar", "lines")


def in_notebook() -> bool:
    """True inside a Jupyter kernel (its output is no terminal, but a person is watching)."""
    shell = sys.modules.get("IPython")
    try:
        ip = shell.get_ipython() if shell is not None else None
    except Exception:  # noqa: BLE001
        return False
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


def make_progress(protocol: dict, progress=True, stream=None):
    """The progress display of ``neurosim.run(..., progress=...)``: ``True``/``"auto"`` (a bar
    on a terminal; in a notebook or a log, a line per evaluation and a status line every
    10 s in a notebook, 30 s in a log), ``"bar"``, ``"lines"``, ``False``/``None`` (nothing),
    or an object with the :class:`Progress` interface (used as given)."""
    if progress is None or progress is False or progress == "none":
        return None
    if not (progress is True or isinstance(progress, str)):
        return progress
    mode = "auto" if progress is True else progress
    if mode not in MODES:
        raise ValueError(f"progress must be True, False, or one of {MODES}, not {progress!r}")
    tr = protocol["training"]
    return Progress(tr["epochs"], max_steps=tr["max_steps"], stream=stream, mode=mode,
                    interval=10.0 if in_notebook() else 30.0)


class Progress:
    """What a training run is doing, on stderr, for a person watching it.

    The training loop calls :meth:`phase` for the start-up phases (loading data, compiling
    kernels, the first evaluation), :meth:`step` after every optimizer step (``__call__`` is
    the same), :meth:`evaluated` after every evaluation, :meth:`write` for any message
    and :meth:`close` at the end (also on errors, so an error message starts its own line).

    On a terminal one live bar (`tqdm <https://tqdm.github.io>`_, a maintained progress
    library: terminal width, redrawing and messages above the bar are its job, not ours)
    shows the epoch and batch, steps done of the run's total, elapsed time, the time left
    at the smoothed rate, the rate and the running mean of the mini-batch loss since the
    last evaluation.  Every evaluation prints a line of its own (epoch, train/test error in
    %, losses).  When stderr is not a terminal (a log file, a pipe) there is no bar and no
    carriage return: one line per evaluation, and a status line at most every ``interval``
    seconds (rate over that interval).

    The loss is accumulated without converting it to a Python float (on the GPU that
    would synchronise the device every step); it is converted only when shown.
    """

    BAR_FORMAT = ("{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} steps "
                  "[{elapsed}<{remaining}, {rate_fmt}]{postfix}")

    def __init__(self, epochs: int, enabled: bool = True, max_steps: int | None = None,
                 stream=None, interval: float = 30.0, refresh: float = 0.2, clock=time.monotonic,
                 mode: str = "auto"):
        self.epochs = int(epochs)
        self.max_steps = int(max_steps) if max_steps else None
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        isatty = getattr(self.stream, "isatty", None)
        if mode not in MODES:
            raise ValueError(f"progress mode must be one of {MODES}, not {mode!r}")
        #: a live bar (``bar``; ``auto``: on a terminal) or lines (``lines``; ``auto``: else)
        self.tty = mode == "bar" or (mode == "auto" and bool(isatty and isatty()))
        self.interval = float(interval)
        self.refresh = float(refresh)
        self.clock = clock
        self.t0 = clock()
        self.bar = None
        self._loss_sum = 0.0
        self._loss_n = 0
        self._last_line = None  # non-tty: time and step of the last status line
        self._last_draw = -math.inf
        self._pos = None  # (epoch, batch, n_batches, global step, total)

    # --- the interface the training loop calls ---------------------------------------
    def phase(self, text: str) -> None:
        """Announce a phase (``loading data``, ``compiling kernels``, ``first evaluation``)."""
        self.write(f"[{self._clock_text()}] {text}")

    def step(self, epoch: int, batch: int, n_batches: int, loss) -> None:
        """After an optimizer step: ``epoch`` (1-based, the one in progress), ``batch``
        (1-based, done), the epoch's batches and the step's mini-batch loss."""
        if not self.enabled:
            return
        self._loss_sum = self._loss_sum + loss  # stays on the device for CuPy scalars
        self._loss_n += 1
        n = (int(epoch) - 1) * int(n_batches) + int(batch)
        total = self.epochs * int(n_batches)
        if self.max_steps:
            total = min(total, self.max_steps)
        self._pos = (int(epoch), int(batch), int(n_batches), n, max(total, n))
        now = self.clock()
        if self.tty:
            self._draw(now)
        elif self._last_line is None:
            self._last_line = (now, n)  # the rate is measured from here
        elif now - self._last_line[0] >= self.interval:
            t_last, n_last = self._last_line
            rate = (n - n_last) / max(now - t_last, 1e-9)
            self._emit(self._status_text(rate))
            self._last_line = (now, n)

    __call__ = step

    def evaluated(self, epoch, metrics: dict) -> None:
        """After an evaluation at ``epoch`` (epochs completed, possibly fractional):
        ``metrics`` holds train_error and test_error (%), train_loss and test_loss."""
        if not self.enabled:
            return

        def pct(k):
            v = float(metrics.get(k, math.nan))
            return f"{v:.2f}%" if math.isfinite(v) else "n/a"

        def num(k):
            v = float(metrics.get(k, math.nan))
            return f"{v:.4f}" if math.isfinite(v) else "n/a"

        where = format_position(epoch, self.epochs, self._pos[2] if self._pos else None)
        self.write(f"[{self._clock_text()}] {where}: "
                   f"train error {pct('train_error')}, test error {pct('test_error')}; "
                   f"loss train {num('train_loss')}, test {num('test_loss')}")
        self._loss_sum, self._loss_n = 0.0, 0
        if not self.tty and self._last_line is not None and self._pos is not None:
            self._last_line = (self.clock(), self._pos[3])  # the evaluation line is news enough

    def write(self, text: str) -> None:
        """A message on a line of its own (above the bar on a terminal)."""
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(text, file=self.stream)
        else:
            self._emit(text)

    warn = write

    def close(self) -> None:
        """End the bar with a newline (idempotent); call it before printing an error."""
        if self.bar is not None:
            if self._loss_n:  # steps since the last evaluation: show where the loop stopped
                self._set_text()
            self.bar.close()
            self.bar = None

    # --- helpers ------------------------------------------------------------------------
    def _clock_text(self) -> str:
        s = int(self.clock() - self.t0)
        return f"{s // 3600}:{(s % 3600) // 60:02d}:{s % 60:02d}" if s >= 3600 else \
            f"{s // 60:02d}:{s % 60:02d}"

    def _emit(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def _mean_loss(self) -> float:
        return float(self._loss_sum) / self._loss_n if self._loss_n else math.nan

    def _desc(self) -> str:
        epoch, batch, n_batches, _, _ = self._pos
        return f"epoch {epoch}/{self.epochs} batch {batch}/{n_batches}"

    def _postfix(self) -> str:
        return f"mean loss {self._mean_loss():.4f}"

    def _set_text(self) -> None:
        self.bar.set_description_str(self._desc(), refresh=False)
        self.bar.set_postfix_str(self._postfix(), refresh=False)

    def _draw(self, now: float) -> None:
        from tqdm import tqdm

        _, _, _, n, total = self._pos
        if self.bar is None:
            # a terminal that reports no size (some ptys) would get no bar at all from tqdm
            cols, lines = _terminal_size(self.stream)
            width = {"dynamic_ncols": True} if cols > 0 and lines > 0 else {"ncols": 100, "nrows": 24}
            self.bar = tqdm(total=total, initial=n - 1, file=self.stream, bar_format=self.BAR_FORMAT,
                            desc=self._desc(), postfix=self._postfix(), smoothing=0.1,
                            mininterval=self.refresh, leave=True, unit="step", **width)
            self.bar.start_t -= self.clock() - self.t0  # elapsed: since the command started
        self.bar.total = total
        if now - self._last_draw >= self.refresh:
            self._last_draw = now
            self._set_text()  # converts the loss: at most every `refresh` seconds
        self.bar.update(n - self.bar.n)

    def _status_text(self, rate: float) -> str:
        from tqdm import tqdm

        _, _, _, n, total = self._pos
        return tqdm.format_meter(n, total, self.clock() - self.t0, prefix=self._desc(), rate=rate,
                                 unit="step", bar_format=self.BAR_FORMAT.replace("|{bar}|", ""),
                                 postfix=self._postfix())
