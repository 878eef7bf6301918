"""What a person sees while a run trains and when it ends: the progress display, the summary
line, and the one-line error for an unusable GPU."""

from __future__ import annotations

import io
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from neurosim.cli import main
from neurosim.commands.common import Progress, format_duration, summary_line

METRICS = {"train_error": 2.85, "test_error": 3.83, "train_loss": 0.0912, "test_loss": 0.1254}


class Stream(io.StringIO):
    def __init__(self, tty: bool):
        super().__init__()
        self.tty = tty

    def isatty(self):
        return self.tty


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def _train(p: Progress, clock: Clock, epochs=3, n_batches=50, dt=2.0):
    """A fake loop: dt seconds per step, an evaluation after every epoch."""
    p.phase("loading data")
    p.evaluated(0, {**METRICS, "train_error": 90.0})
    for e in range(1, epochs + 1):
        for b in range(1, n_batches + 1):
            clock.t += dt
            p(e, b, n_batches, 0.5)
        p.evaluated(e, METRICS)
    p.close()


def test_non_terminal_output_is_lines_per_evaluation_and_rate_limited():
    s, clock = Stream(tty=False), Clock()
    p = Progress(3, stream=s, interval=30.0, clock=clock)
    _train(p, clock)  # 150 steps x 2 s = 300 s
    out = s.getvalue()
    assert "\r" not in out and out.endswith("\n")
    lines = out.splitlines()
    assert lines[0] == "[00:00] loading data"
    evals = [ln for ln in lines if ": train error" in ln]
    assert len(evals) == 4  # epoch 0 and after each of the 3 epochs
    assert evals[1] == ("[01:40] epoch 1/3: train error 2.85%, test error 3.83%; "
                        "loss train 0.0912, test 0.1254")
    assert evals[0].startswith("[00:00] epoch 0/3: train error 90.00%")
    status = [ln for ln in lines if ln.startswith("epoch ") and " steps [" in ln]
    # a status line at most every 30 s: 300 s -> at most 10, and at least one per epoch here
    assert 3 <= len(status) <= 10
    first = status[0]
    assert first.startswith("epoch 1/3 batch 16/50") and "16/150 steps" in first
    assert "2.00s/step" in first and "mean loss 0.5000" in first  # rate over the interval
    assert "[00:32<04:28" in first  # elapsed < remaining: 134 steps at 2 s
    assert "<" in first  # elapsed<remaining (the ETA)


def test_interval_is_respected_between_status_lines():
    s, clock = Stream(tty=False), Clock()
    p = Progress(1, stream=s, interval=30.0, clock=clock)
    for b in range(1, 1001):  # 1000 steps x 0.1 s = 100 s, no evaluation
        clock.t += 0.1
        p(1, b, 1000, 1.0)
    status = s.getvalue().splitlines()
    assert len(status) == 3  # at 30, 60, 90 s after the first step


def test_running_mean_loss_resets_at_each_evaluation():
    s, clock = Stream(tty=False), Clock()
    p = Progress(2, stream=s, interval=1.0, clock=clock)
    for b, loss in enumerate((1.0, 2.0, 3.0, 6.0), 1):
        clock.t += 1.0
        p(1, b, 4, loss)
    assert s.getvalue().splitlines()[-1].endswith("mean loss 3.0000")  # (1+2+3+6)/4
    p.evaluated(1, METRICS)
    clock.t += 1.0
    p(2, 1, 4, 0.25)
    clock.t += 1.0
    p(2, 2, 4, 0.75)
    assert s.getvalue().splitlines()[-1].endswith("mean loss 0.5000")


def test_terminal_bar_messages_on_their_own_lines():
    s, clock = Stream(tty=True), Clock()
    p = Progress(2, stream=s, max_steps=5, refresh=0.0, clock=clock)
    p(1, 1, 4, 0.5)
    p(1, 2, 4, 0.5)
    p.write("signal 2: stopping after this step")
    p(1, 3, 4, 0.5)
    p.close()
    out = s.getvalue()
    assert "/5 steps" in out  # max_steps caps the total (2 epochs x 4 batches = 8)
    assert "\rsignal 2: stopping after this step\n" in out  # the bar is cleared first
    assert out.endswith("\n")  # close() ends the bar's line: an error message starts a new one
    p.close()  # idempotent
    assert s.getvalue() == out


def test_quiet_prints_nothing():
    s = Stream(tty=False)
    p = Progress(1, enabled=False, stream=s)
    p.phase("loading data")
    p(1, 1, 1, 0.1)
    p.evaluated(1, METRICS)
    p.close()
    assert s.getvalue() == ""


@pytest.mark.parametrize("stopped, epochs, words", [
    ("epochs", 3, "stopped: all 3 epochs done"),
    ("epochs", 1, "stopped: 1 epoch done"),
    ("early stop (zero train error)", 40, "stopped: zero train error at epoch 40"),
    ("max_steps 40", 0.0853, "stopped: step limit training.max_steps=40 reached at epoch 0.09"),
    ("max_steps 40", 0.0853, "stopped: step limit training.max_steps=40 reached at epoch 1/3 batch 40/469"),
    ("max_steps 500", 1.0661, "stopped: step limit training.max_steps=500 reached at epoch 2/3 batch 31/469"),
])
def test_summary_line_in_words(stopped, epochs, words):
    spe = {"0.09": None}.get(words[-4:], 469)  # the position as the bar counts it, when known
    s = SimpleNamespace(store="runs/grouped_mnist.zarr", epochs=epochs, steps=1407, train_error=2.85,
                        test_error=3.83, stopped=stopped, seconds=504.5, n_epochs=3, steps_per_epoch=spe)
    assert summary_line(s) == (f"runs/grouped_mnist.zarr: {words}; 1407 steps; train error 2.85%, "
                               f"test error 3.83%; training time 8 min 24 s")


def test_durations():
    assert [format_duration(x) for x in (2.46, 41.2, 60, 504.5, 3600 + 5 * 60 + 7)] == \
        ["2.5 s", "41 s", "1 min", "8 min 24 s", "1 h 05 min"]


def test_gpu_without_cupy_exits_2_with_the_install_line(monkeypatch, tmp_path):
    import neurosim.core.backend as backend

    monkeypatch.setattr(backend, "gpu_problem", lambda: "CuPy is not installed")
    with pytest.raises(backend.DeviceError, match=r"pip install -e \"\.\[gpu\]\""):
        backend.Backend("gpu")
    out = tmp_path / "x.zarr"
    res = CliRunner().invoke(main, ["run", "protocols/grouped_mnist.yaml", "--device", "gpu",
                                    "--out", str(out)])
    assert res.exit_code == 2, res.output
    err = res.output.strip()
    assert err.count("\n") == 0 and "Traceback" not in err
    assert err.startswith("error: device 'gpu' needs CuPy and a CUDA GPU, and CuPy is not installed")
    assert 'python -m pip install -e ".[gpu]"' in err and "neurosim[gpu]" not in err
    assert not out.exists()
