"""Stopping a run cleanly on SIGINT/SIGTERM (:class:`StopSignals`)."""

from __future__ import annotations

import signal
import threading


class Interrupted(RuntimeError):
    """SIGINT/SIGTERM: the run stopped after writing a checkpoint."""


class StopSignals:
    """While entered (in the main thread; elsewhere nothing is installed), the first SIGINT or
    SIGTERM is only noted (:attr:`received`) and said with ``say(text)``, so that the loop stops
    after its step and writes a checkpoint; a second one stops at once (KeyboardInterrupt).
    The handlers that were there before are put back on exit."""

    def __init__(self, say):
        self.say = say
        self.received = None  # the first signal's number
        self._old: dict = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._on_signal)
        return self

    def __exit__(self, *exc) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)
        self._old = {}

    def stop_now(self, where: str) -> None:
        """Once a signal was received: Interrupted, ``stopped by signal N <where>``."""
        if self.received is not None:
            raise Interrupted(f"stopped by signal {self.received} {where}")

    def _on_signal(self, signum, frame):
        if self.received is not None:  # second Ctrl-C: stop now, the last commit stays
            raise KeyboardInterrupt
        self.received = signum
        self.say(f"signal {signum}: stopping after this step and writing a checkpoint "
                 f"(press Ctrl-C again to stop at once)")
