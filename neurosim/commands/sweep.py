"""``neurosim sweep``: run every run of a sweep protocol on dask.distributed."""

from __future__ import annotations

import os
import signal

import click

from ..core.options import ConfigError
from .common import EXIT_INTERRUPTED, fail

EXIT_RUNS_FAILED = 1


@click.command()
@click.argument("protocol", type=click.Path())
@click.option("--scheduler", metavar="ADDRESS", default=None,
              help="Address of a running dask scheduler (e.g. tcp://host:8786); default: a LocalCluster.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="LocalCluster workers (default: one per CPU, or one per GPU with --device gpu).")
@click.option("--max-epochs", type=click.IntRange(min=1), default=None,
              help="Cap training.epochs of every run (a shortened sweep; rerun without it to extend).")
@click.option("--only", "only", multiple=True, metavar="PATTERN",
              help="Run only runs whose name matches (glob, or substring); repeatable.")
@click.option("--device", type=click.Choice(["cpu", "gpu", "auto"]), default=None,
              help="Override the protocol's device.")
@click.option("--out", type=click.Path(), default=None,
              help="Sweep store (default: the protocol's recording.out, else runs/<name>.zarr).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Override a protocol key in every run (repeatable).")
@click.option("--list", "list_only", is_flag=True, help="List the expanded runs and exit.")
@click.option("--heartbeat", type=float, default=60.0, show_default=True,
              help="Seconds between progress lines while no run completes.")
def sweep(protocol, scheduler, workers, max_epochs, only, device, out, sets, list_only, heartbeat):
    """Run the grid of runs of a sweep PROTOCOL (YAML with `sweep:` and `seeds:`).

    Each run records into SWEEP_STORE/runs/<name>; starting the same sweep again skips
    finished runs, resumes unfinished ones from their checkpoints and retries failed ones.
    Exit code 1 when some runs failed (they are recorded in the sweep store).
    """
    from ..protocol import parse_set
    from ..recording import StoreError
    from ..sweep import load_sweep, run_sweep

    try:
        sw = load_sweep(protocol, parse_set(sets), max_epochs=max_epochs, only=only)
    except ConfigError as exc:
        fail(str(exc))
    runs = sw.runs
    if not runs:
        fail(f"--only {' '.join(only)} matches none of the {sw.n_total} runs (see --list)")
    if list_only:
        for r in runs:
            click.echo(r.name)
        return
    if out is None:
        rec_out = (sw.raw.get("recording") or {}).get("out")
        out = rec_out or os.path.join("runs", f"{sw.name}.zarr")
    def _term(signum, frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, _term)
    try:
        res = run_sweep(sw, out, scheduler=scheduler, workers=workers, device=device,
                        echo=click.echo, heartbeat=heartbeat)
    except StoreError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        fail(f"interrupted; finished runs are kept and unfinished ones resume from their last checkpoint "
             f"when the same command is run again ({out})", EXIT_INTERRUPTED)
    finally:
        signal.signal(signal.SIGTERM, old)
    click.echo(f"[sweep] {len(res.finished)} finished, {len(res.skipped)} skipped (already finished), "
               f"{len(res.failed)} failed in {res.seconds:.1f} s -> {res.store}")
    if res.failed:
        fail(f"{len(res.failed)} run(s) failed (errors recorded in {res.store}); "
             f"rerun the same command to retry them", EXIT_RUNS_FAILED)
