"""The ``ecram`` command line (``python -m pipeline``): one command or group per pipeline stage.

This is the only module that imports typer. Every command reads ``params.yaml`` (``--params``)
sections it needs, accepts ``--set key.path=value`` overrides, and turns a bad input into one
line ``error: <where>: <what>`` with exit status 2 (``--debug`` shows the traceback).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer

from .errors import InputError
from .training.algorithms import NAMES as ALGORITHM_NAMES

app = typer.Typer(
    name="ecram",
    help=(
        "Simulate in-situ training of neural networks on arrays of organic EC-RAM devices and compare "
        "progressive gradient descent with backpropagation.\n\n"
        "Stages (run them all with `dvc repro`): device fit -> array init -> train -> evaluate -> figures.\n\n"
        "Example: python -m pipeline train --algorithm progressive --seed 0"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
device_app = typer.Typer(help="Device characterization: synthesise pulse trains, fit a device model.",
                         no_args_is_help=True)
array_app = typer.Typer(help="Crossbar arrays: instantiate the per-layer conductances of a network.",
                        no_args_is_help=True)
bench_app = typer.Typer(help="Throughput benchmarks (results in benchmarks/RESULTS.md).", no_args_is_help=True)
app.add_typer(device_app, name="device")
app.add_typer(array_app, name="array")
app.add_typer(bench_app, name="bench")

PARAMS_OPT = typer.Option(Path("params.yaml"), "--params", "-p", help="params file to read")
SET_OPT = typer.Option(None, "--set", "-s", help="override a param: key.path=value (repeatable)")


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="show tracebacks of errors"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress output"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="more progress output"),
):
    from . import progress

    progress.configure(quiet=quiet, verbose=verbose)


# ------------------------------------------------------------------------------------------ info


@app.command()
def info(params: Path = PARAMS_OPT):
    """Print versions, numba threading layer and threads, cache folder, data and results paths.

    Reads: nothing but the environment. Writes: nothing. Example: python -m pipeline info
    """
    from .info import describe

    typer.echo(describe(params))


# --------------------------------------------------------------------------------------- device


@device_app.command("synth")
def device_synth(
    device: Path = typer.Option(..., "--device", help="device.yaml describing the population"),
    devices: int = typer.Option(4, "--devices", min=1, help="devices to synthesise"),
    cycles: int = typer.Option(3, "--cycles", min=1, help="potentiation/depression cycles per device"),
    pulses: int = typer.Option(100, "--pulses", min=2, help="pulses per ramp"),
    seed: int = typer.Option(0, "--seed", min=0),
    out: Path = typer.Option(..., "--out", help="output table (.csv, .csv.gz, .zarr, .nc)"),
    truth: Optional[Path] = typer.Option(None, "--truth", help="also write the drawn per-device parameters (YAML)"),
):
    """Synthesise a characterization table (long form, DESIGN §1.5) from a device description.

    Reads: DEVICE (device.yaml). Writes: OUT (one row per read: device, cycle, pulse, polarity,
    conductance_S) and, with --truth, the per-device parameters actually drawn.

    Example: python -m pipeline device synth --device results/device/device.yaml --devices 16
    --cycles 5 --pulses 100 --seed 1 --out synth.csv.gz
    """
    from .stages import characterize

    characterize.run(device=device, devices=devices, cycles=cycles, pulses=pulses, seed=seed, out=out, truth=truth)


@device_app.command("fit")
def device_fit(
    data: Optional[Path] = typer.Option(None, "--data", help="table (.csv/.csv.gz), dataset (.zarr/.nc) or look-up-table folder; default: params characterization.source"),
    family: Optional[str] = typer.Option(None, "--family", help="auto | constant | linear | soft-bounds | power (default: params device.family)"),
    out: Path = typer.Option(Path("results/device"), "--out", help="output folder"),
    params: Path = PARAMS_OPT,
    overrides: Optional[list[str]] = SET_OPT,
):
    """Fit a device model to characterization data.

    Reads: DATA and params sections characterization, device. Writes OUT/device.yaml (the device
    population: model, parameters' mean and device-to-device std, c2c and read noise, family
    comparison, uncertainty), OUT/fit.zarr (per-device estimates, residuals), OUT/metrics.json.

    Example: python -m pipeline device fit --data data/enode/multi --family auto --out results/device
    """
    from . import config
    from .stages import fit as stage

    p = config.load(params, sections=stage.SECTIONS, overrides=overrides)
    stage.run(p, data=data, family=family, out=out)


# ---------------------------------------------------------------------------------------- array


@array_app.command("init")
def array_init(
    device: Path = typer.Option(Path("results/device/device.yaml"), "--device", help="device population (device.yaml)"),
    out: Path = typer.Option(Path("results/arrays/arrays.zarr"), "--out", help="output zarr store"),
    params: Path = PARAMS_OPT,
    overrides: Optional[list[str]] = SET_OPT,
):
    """Instantiate the crossbar arrays of the network: per-device parameters drawn once from the
    population, stuck devices, initial conductances, mapping.

    Reads: DEVICE and params sections base, array, network, dataset. Writes: OUT (arrays.zarr).

    Example: python -m pipeline array init --device results/device/device.yaml
    """
    from . import config
    from .stages import instantiate

    p = config.load(params, sections=instantiate.SECTIONS, overrides=overrides)
    instantiate.run(p, device=device, out=out)


# ---------------------------------------------------------------------------------------- train


@app.command()
def train(
    algorithm: str = typer.Option(..., "--algorithm", "-a", help=" | ".join(ALGORITHM_NAMES) + "; or <algorithm>+<scheme> (e.g. progressive+mixed-precision)"),
    seed: int = typer.Option(0, "--seed", min=0, help="training seed (shuffling, pulse noise)"),
    arrays_path: Path = typer.Option(Path("results/arrays/arrays.zarr"), "--arrays", help="instantiated arrays"),
    out: Optional[Path] = typer.Option(None, "--out", help="run folder (default results/train/<algorithm>-<seed>)"),
    resume: bool = typer.Option(False, "--resume", help="continue an interrupted run from its checkpoint"),
    threads: int = typer.Option(1, "--threads", min=1, help="numba threads inside the run (> 1: threaded kernels "
                                "for arrays of at least train.parallel_min devices; the same bits as 1)"),
    params: Path = PARAMS_OPT,
    overrides: Optional[list[str]] = SET_OPT,
):
    """Train the network in situ with one algorithm and seed (online SGD, pulses through the devices).

    Reads: ARRAYS (devices, mapping, read and update model) and params sections base, network,
    dataset, train, record. Writes:
    OUT/run.zarr (per-epoch metrics, conductance snapshots, pulse counts, ledger, probes); a
    checkpoint OUT.ckpt/ while running (removed at the end).

    Example: python -m pipeline train --algorithm progressive --seed 0
    """
    from . import config
    from .stages import train as stage

    p = config.load(params, sections=stage.SECTIONS, overrides=overrides)
    out = out or Path("results/train") / f"{algorithm}-{seed}"
    if threads > 1:
        from .training import run as training_run

        training_run.set_threads(threads)
    stage.run(p, algorithm=algorithm, seed=seed, arrays_path=arrays_path, out=out, resume=resume)


# ------------------------------------------------------------------------------------- evaluate


@app.command()
def evaluate(
    runs: Path = typer.Option(Path("results/train"), "--runs", help="folder of run folders"),
    out: Path = typer.Option(Path("results/eval"), "--out", help="output folder"),
    params: Path = PARAMS_OPT,
    overrides: Optional[list[str]] = SET_OPT,
):
    """Collect every run into one labelled dataset (dims algorithm, seed, epoch) and metrics.

    Reads: RUNS/*/run.zarr and params sections train, evaluate. Writes: OUT/eval.zarr,
    OUT/metrics.json (final accuracies, mean and sd over seeds), OUT/curves/*.csv (for dvc plots).

    Example: python -m pipeline evaluate --runs results/train --out results/eval
    """
    from . import config
    from .stages import evaluate as stage

    p = config.load(params, sections=stage.SECTIONS, overrides=overrides)
    stage.run(p, runs=runs, out=out)


# -------------------------------------------------------------------------------------- figures


@app.command()
def figures(
    out: Path = typer.Option(Path("results/figures"), "--out", help="output folder"),
    only: Optional[list[str]] = typer.Option(None, "--only", help="make only these figures (fig1 ... fig6)"),
    eval_dir: Path = typer.Option(Path("results/eval"), "--eval", help="evaluated results"),
    device_dir: Path = typer.Option(Path("results/device"), "--device-dir", help="fit results (fig2)"),
    sweeps_dir: Path = typer.Option(Path("results/sweeps"), "--sweeps", help="sweep results (fig5)"),
    params: Path = PARAMS_OPT,
    overrides: Optional[list[str]] = SET_OPT,
):
    """Draw the paper's figures from evaluated results (never re-runs a simulation).

    Reads: EVAL, DEVICE_DIR, SWEEPS and params section figures. Writes: OUT/figN_*.png and .pdf.

    Example: python -m pipeline figures --only fig4
    """
    from . import config
    from .stages import figures as stage

    p = config.load(params, sections=stage.SECTIONS, overrides=overrides)
    stage.run(p, out=out, only=only, eval_dir=eval_dir, device_dir=device_dir, sweeps_dir=sweeps_dir)


# --------------------------------------------------------------------------------------- sweeps


@app.command()
def sweep(
    name: str = typer.Argument(..., help="name of a sweep in params.yaml sweeps:"),
    out: Optional[Path] = typer.Option(None, "--out", help="output store (default results/sweeps/<name>.zarr)"),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="tcp://host:port of a running Dask scheduler"),
    workers: int = typer.Option(0, "--workers", min=0, help="local workers (0: cores / threads per worker)"),
    threads: int = typer.Option(1, "--threads", min=1, help="numba threads per worker"),
    allow_incomplete: bool = typer.Option(False, "--allow-incomplete",
                                          help="put a store with failed tasks in place (marked incomplete)"),
    device: Path = typer.Option(Path("results/device/device.yaml"), "--device", help="device population of the hardware points"),
    params: Path = PARAMS_OPT,
    overrides: Optional[list[str]] = SET_OPT,
):
    """Run a parameter sweep on Dask (a local cluster by default) into one zarr store.

    Reads: DEVICE and params sections base, device, array, network, dataset, train, evaluate,
    sweeps (the sweep's grid overrides the others). Writes: OUT (one region per task, built in
    .<name>.zarr.tmp; a rerun after failed tasks runs only the missing ones).

    Example: python -m pipeline sweep depth --workers 2
    """
    from . import config
    from .stages import sweep as stage

    p = config.load(params, sections=stage.SECTIONS, overrides=overrides)
    stage.run(p, name=name, out=out, scheduler=scheduler, workers=workers, threads=threads,
              allow_incomplete=True if allow_incomplete else None, device=device, source=str(params))


# ---------------------------------------------------------------------------------------- bench


@bench_app.command("kernels")
def bench_kernels(quick: bool = typer.Option(False, "--quick", help="fewer sizes and repeats")):
    """Time the pulsed update, forward and transposed reads (device-updates per second).

    Writes: benchmarks/results/kernels.json. Example: python -m pipeline bench kernels
    """
    from benchmarks import kernels

    kernels.main(quick=quick)


@bench_app.command("training")
def bench_training(quick: bool = typer.Option(False, "--quick")):
    """Time full in-situ training on optdigits 64-32-10 (samples per second).

    Writes: benchmarks/results/training.json. Example: python -m pipeline bench training
    """
    from benchmarks import training

    training.main(quick=quick)


# ------------------------------------------------------------------------------------------ main


def _sigterm_as_interrupt() -> None:
    """SIGTERM unwinds like Ctrl-C, so every temporary output is removed on the way out (train
    installs its own handler that keeps its checkpoint)."""
    import signal

    def handler(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (e.g. called from a worker): leave it
        pass


GLOBAL_FLAGS = ("--debug", "--quiet", "-q", "--verbose", "-v")


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning input errors into one line and exit status 2.

    The global flags (--debug, --quiet, --verbose) are accepted anywhere on the line."""
    argv = list(sys.argv[1:] if argv is None else argv) or ["--help"]
    flags = [a for a in argv if a in GLOBAL_FLAGS]
    argv = flags + [a for a in argv if a not in GLOBAL_FLAGS]
    debug = "--debug" in argv or os.environ.get("ECRAM_DEBUG") == "1"
    _sigterm_as_interrupt()
    try:
        rc = app(args=argv, standalone_mode=False, prog_name="ecram")
    except InputError as exc:
        if debug:
            raise
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(2)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise SystemExit(130)
    except (typer.Exit, typer.Abort) as exc:
        raise SystemExit(getattr(exc, "exit_code", 130))
    except Exception as exc:  # usage errors of the command-line parser
        if hasattr(exc, "format_message") and hasattr(exc, "exit_code") and not debug:
            typer.echo(f"error: {exc.format_message()}", err=True)
            raise SystemExit(2)
        raise
    if isinstance(rc, int) and rc:
        raise SystemExit(rc)
