"""The train stage (``ecram train``): one algorithm × seed into ``OUT/run.zarr``, with a buffered
recorder, checkpoints and signal handling.

Loads the instantiated arrays, resolves the run (:func:`pipeline.training.run.setup`) and records
every epoch that :func:`pipeline.training.run.run_epochs` yields: the epoch's regions of
``run.zarr`` and a checkpoint.

The run folder is built in a temporary sibling (``.<name>.tmp``) and renamed into place at the end;
an interrupted run leaves the sibling with its last checkpoint, and ``--resume`` continues from it
to exactly the store an uninterrupted run writes.
"""

from __future__ import annotations

# params sections this stage reads (dvc.yaml declares them: tested)
SECTIONS = ("base", "network", "dataset", "train", "record")

import os
import signal
from pathlib import Path

import numpy as np

from .. import config, fsutil, progress, store
from ..crossbar.arrays import layer_block
from .instantiate import load_arrays
from ..errors import InputError, TrainingDiverged
from ..training import ledger as ledger_mod
from ..training import run as training
from ..training import schemes
from ..training.metrics import EPOCH_METRICS, LEDGER_METRICS, LEDGER_NAMES

CHECKPOINT = "checkpoint.npz"


class Recorder:
    """Creates ``run.zarr`` with every array at its final shape, then writes one epoch's regions
    at a time from NumPy buffers; conductance snapshots are streamed in blocks of at most
    ``record.block_mb`` (the zarr chunk along ``snapshot`` is no larger), so memory does not grow
    with the training-set size."""

    def __init__(self, s: store.Store):
        self.s = s

    @classmethod
    def create(cls, path: Path, su: training.Setup, p, epochs: int, flt: bool) -> "Recorder":
        net = su.net
        dev = net.dev
        P = net.g0.shape[0]
        n_train = len(su.data.y_train)
        steps = training.snapshot_steps(n_train, epochs, training.snapshot_every(p.record, n_train))
        attrs = {"algorithm": su.algorithm, "seed": su.seed, "sizes": net.sizes, "float": flt,
                 "samples_per_epoch": len(su.data.y_train), "test_samples": len(su.data.y_test),
                 "arrays": net.attrs, "params": {k: config.to_dict(getattr(p, k)) for k in
                                                 ("base", "network", "dataset", "train", "record")},
                 "values_held": ledger_mod.values_held(su.algorithm, net.sizes),
                 "reads_per_sample": ledger_mod.reads_per_sample(su.algorithm, net.n_layers)}
        s = store.Store.create(path, attrs=attrs)
        E = epochs + 1
        s.array("epoch", ("epoch",), (E,), dtype="i8", data=np.arange(E), attrs={"units": "1"})
        for m in EPOCH_METRICS:
            s.array(m.name, ("epoch",), (E,), attrs={"units": m.units, "description": m.description})
        for m in LEDGER_METRICS:
            s.array(m.name, ("epoch",), (E,), dtype="i8", fill=-1, attrs={"units": m.units, "description": m.description})
        per_epoch = max(1, min(len(steps) // max(epochs, 1), training.block_snapshots(p.record, 1 if flt else P, net.g0.shape[1])))
        s.array("snapshot", ("snapshot",), (len(steps),), dtype="i8", data=steps,
                attrs={"units": "samples", "description": "global training sample count of each snapshot"})
        for l in range(net.n_layers):
            r, c = int(dev.rows[l]), int(dev.cols[l])
            if flt:
                s.array(f"W_{l}", ("snapshot", "pair_w", f"row_{l}", f"col_{l}"), (len(steps), 1, r, c),
                        chunks=(per_epoch, 1, r, c), attrs={"units": "1", "description": f"weights of layer {l}"})
            else:
                s.array(f"G_{l}", ("snapshot", "pair", f"row_{l}", f"col_{l}"), (len(steps), P, r, c),
                        chunks=(per_epoch, P, r, c), attrs={"units": "S", "description": f"conductances of layer {l}"})
                for pol in ("up", "down"):
                    s.array(f"pulses_{pol}_{l}", ("pair", f"row_{l}", f"col_{l}"), (P, r, c), dtype="i8", fill=0,
                            attrs={"units": "pulses", "description": f"{'potentiation' if pol == 'up' else 'depression'} pulses per device"})
        k = su.data.n_classes
        s.array("confusion", ("true_class", "predicted_class"), (k, k), dtype="i8", fill=0,
                attrs={"units": "samples", "description": "test-set confusion matrix after the last epoch (hardware inference)"})
        n_units = int(dev.rows.sum())
        n_probe = len(su.probe_idx)
        unit_layer = np.repeat(np.arange(net.n_layers), dev.rows)
        s.array("unit_layer", ("unit",), (n_units,), dtype="i8", data=unit_layer, attrs={"units": "1"})
        s.array("probe_sample", ("probe",), (n_probe,), dtype="i8", data=su.probe_idx,
                attrs={"units": "1", "description": "test-set index of each probe sample"})
        for name, desc in (("probe_ideal", "exact backprop errors of the present weights (noise-free)"),
                           ("probe_insitu", "errors the algorithm writes with, measured in situ")):
            s.array(name, ("epoch", "probe", "unit"), (E, n_probe, n_units), chunks=(1, max(n_probe, 1), n_units),
                    attrs={"units": "1", "description": desc})
        return cls(s)

    def write_epoch0(self, su: training.Setup, res: training.EpochResult, state: training.State, flt: bool) -> None:
        s = self.s
        for name, val in res.metrics.items():
            s.write(name, 0, val)
        s.write("energy_J", 0, 0.0)
        for name in LEDGER_NAMES:
            s.write(name, 0, 0)
        snap = (state.W[None, :] if flt else state.g)[None]
        self.write_snaps(su, snap, 0, flt)
        s.write("probe_ideal", 0, res.probe_ideal)
        s.write("probe_insitu", 0, res.probe_insitu)

    def write_snaps(self, su: training.Setup, snaps: np.ndarray, first: int, flt: bool) -> None:
        n = snaps.shape[0]
        for l in range(su.net.n_layers):
            self.s.write(f"W_{l}" if flt else f"G_{l}", slice(first, first + n), layer_block(snaps, su.net.dev, l))

    def write_counts(self, su: training.Setup, cnt_up, cnt_dn) -> None:
        for l in range(su.net.n_layers):
            self.s.write(f"pulses_up_{l}", ..., layer_block(cnt_up, su.net.dev, l))
            self.s.write(f"pulses_down_{l}", ..., layer_block(cnt_dn, su.net.dev, l))


    def write_scheme(self, p, su: training.Setup, state: training.State, flt: bool) -> None:
        """The update scheme (attrs) and its digital state after the last written epoch (device
        algorithms only): the mixed-precision accumulator χ or tiki-taka's buffer H (``chi_<l>``),
        c-TTv2's chopper signs (``chop_<l>``, one per input column, when columns are read or
        out-choppers are on; ``chop_rows_<l>``, one per output row, when rows are read or
        out-choppers are on), the auto-scale running means (``tt_amax_<l>``: m_x, m_d) and the
        zero-shift offsets (``zero_<l>``)."""
        sc = su.scheme_entry
        dpw = 0.0 if flt else schemes.digital_per_weight(sc.name, p.train, su.net.sizes)
        self.s.set_attrs(scheme=sc.name, scheme_digital_per_weight=dpw, scheme_planes=0 if flt else sc.planes)
        if flt:
            return
        dev = su.net.dev
        tt = sc.code == schemes.TIKI_TAKA
        has_chi = sc.code == schemes.MIXED_PRECISION or (tt and p.train.tt_algorithm != "ttv1")
        what = "tiki-taka buffer H" if tt else "mixed-precision accumulator χ"
        co = 0
        for l in range(su.net.n_layers):
            r, c = int(dev.rows[l]), int(dev.cols[l])
            if has_chi:
                self.s.array(f"chi_{l}", (f"row_{l}", f"col_{l}"), (r, c), data=layer_block(state.chi, dev, l),
                             attrs={"units": "1", "description": f"{what} of layer {l} after the last written "
                                    "epoch (weight units, not yet written to the devices)"})
            if tt and p.train.tt_algorithm == "c-ttv2":
                if p.train.tt_transfer_columns or p.train.tt_out_chop_prob > 0.0:
                    self.s.array(f"chop_{l}", (f"col_{l}",), (c,), data=state.chop[co:co + c],
                                 attrs={"units": "1", "description": f"c-TTv2 chopper sign of each input column of "
                                        f"layer {l} after the last written epoch"})
                if not p.train.tt_transfer_columns or p.train.tt_out_chop_prob > 0.0:
                    ro = int(dev.cols.sum() + dev.rows[:l].sum())
                    self.s.array(f"chop_rows_{l}", (f"row_{l}",), (r,), data=state.chop[ro:ro + r],
                                 attrs={"units": "1", "description": f"c-TTv2 chopper sign of each output row of "
                                        f"layer {l} after the last written epoch"})
            if dev.zero.shape[0]:
                self.s.array(f"zero_{l}", (f"row_{l}", f"col_{l}"), (r, c), data=layer_block(dev.zero, dev, l),
                             attrs={"units": "S", "description": f"zero-shift offset of the written pair of layer "
                                    f"{l} (its read at the symmetry point)"})
            if tt and su.cfg.tt_auto_scale:  # (ttv1 ignores the option)
                L = su.net.n_layers
                self.s.array(f"tt_amax_{l}", ("amax_of",), (2,), data=np.array([state.amax[l], state.amax[L + l]]),
                             attrs={"units": "1", "amax_of": "input, error", "description":
                                    f"tiki-taka auto-scale running means of layer {l} after the last written epoch: "
                                    "m_x (largest |input|) and m_d (largest |error|) of its updates"})
            co += c


def _save_checkpoint(path: Path, state: training.State, epoch: int, zero: np.ndarray | None = None) -> None:
    """The training state after ``epoch``: conductances, weights, pulse counters, the scheme's
    digital state (χ / H, chopper signs, auto-scale means) and the zero-shift offsets (``zero``; size
    0: none)."""
    tmp = path.with_name(path.name + ".part.npz")
    np.savez(tmp, g=state.g, W=state.W, cnt_up=state.cnt_up, cnt_dn=state.cnt_dn, chi=state.chi, chop=state.chop,
             amax=state.amax, zero=np.zeros(0) if zero is None else zero, epoch=np.int64(epoch))
    os.replace(tmp, path)


def _load_checkpoint(path: Path, zero: np.ndarray | None = None) -> tuple[training.State, int]:
    """The state of a checkpoint; ``zero``: the zero-shift offsets of the arrays being resumed
    (they must be the checkpoint's)."""
    z = np.load(path)
    chop = z["chop"].copy() if "chop" in z.files else None
    amax = z["amax"].copy() if "amax" in z.files else None
    if zero is not None and "zero" in z.files and not np.array_equal(z["zero"], zero):
        raise InputError("--resume", f"the checkpoint {path} holds other zero-shift offsets than these arrays' "
                         "calibration; rerun without --resume")
    state = training.State(z["g"].copy(), z["W"].copy(), z["cnt_up"].copy(), z["cnt_dn"].copy(), z["chi"].copy(), chop,
                           amax)
    return state, int(z["epoch"])


def _train_into(p, su: training.Setup, tmp: Path, resume: bool, epochs: int) -> None:
    """Train into folder ``tmp`` (run.zarr + checkpoint), resuming from its checkpoint if asked."""
    flt = su.algorithm_entry.is_float
    every = training.snapshot_every(p.record, len(su.data.y_train))
    steps = training.snapshot_steps(len(su.data.y_train), epochs, every)
    ckpt = tmp / CHECKPOINT
    run_path = tmp / "run.zarr"
    state = training.State.initial(su.net)
    start = 0
    if resume and ckpt.exists() and run_path.exists():
        state, start = _load_checkpoint(ckpt, su.net.dev.zero)
        rec = Recorder(store.Store.open(run_path))
        progress.log(f"resuming {su.algorithm}-{su.seed} after epoch {start}")
    else:
        fsutil.remove(run_path)
        rec = Recorder.create(run_path, su, p, epochs, flt)
        rec.write_epoch0(su, training.initial_epoch(su, state, probes=True), state, flt)
    def write_snaps(snaps: np.ndarray, snap_steps: np.ndarray) -> None:  # a block, while the epoch runs
        first = int(np.searchsorted(steps, snap_steps[0]))
        assert np.array_equal(steps[first:first + len(snap_steps)], snap_steps)
        rec.write_snaps(su, snaps, first, flt)

    with progress.bar(f"train {su.algorithm}-{su.seed}", total=epochs) as bar:
        bar.advance(start)
        for res in training.run_epochs(p, su, state, start + 1, epochs, every=every, probes=True,
                                       on_snaps=write_snaps):
            epoch, s = res.epoch, rec.s
            for name, val in res.metrics.items():
                s.write(name, epoch, val)
            for k, name in enumerate(LEDGER_NAMES):
                s.write(name, epoch, res.ledger[k])
            s.write("probe_ideal", epoch, res.probe_ideal)
            s.write("probe_insitu", epoch, res.probe_insitu)
            s.write("confusion", ..., training.confusion(su.data.y_test, res.pred, su.data.n_classes))
            if not flt:
                rec.write_counts(su, state.cnt_up, state.cnt_dn)
            rec.write_scheme(p, su, state, flt)
            _save_checkpoint(ckpt, state, epoch, su.net.dev.zero)
            progress.log(f"{su.algorithm}-{su.seed} epoch {epoch}/{epochs}: loss {res.metrics['train_loss']:.4f} "
                         f"train {res.metrics['train_acc_eval']:.3f} test {res.metrics['test_acc']:.3f}",
                         verbose_only=True)
            bar.advance()
    rec.s.consolidate()
    ckpt.unlink(missing_ok=True)


class _Terminated(Exception):
    pass


def _on_sigterm(signum, frame):  # noqa: ARG001
    raise _Terminated()


def run(p, *, algorithm: str, seed: int, arrays_path: Path, out: Path, resume: bool) -> None:
    """``ecram train``: one run into ``out/run.zarr`` (atomic; resumable after interruption).
    ``algorithm``: a run label (an algorithm, or ``<algorithm>+<scheme>``)."""
    p, algorithm = training.resolve(p, algorithm)
    training.make_config(p, algorithm, seed)  # refuse a bad algorithm, loss or output path before reading anything
    fsutil.check_output_path(out, want_dir=True)
    net = load_arrays(arrays_path, parallel_min=p.train.parallel_min, draw=seed)  # this seed's own array draw
    su = training.setup(p, algorithm, seed, net)
    old = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        with fsutil.atomic_path(out, keep_tmp_on_error=True) as tmp:
            if not resume:
                fsutil.remove(tmp / CHECKPOINT)
            _train_into(p, su, tmp, resume, p.train.epochs)
    except (_Terminated, KeyboardInterrupt):
        progress.log(f"interrupted: checkpoint kept in {fsutil.tmp_sibling(out)}; continue with --resume")
        raise SystemExit(143)
    except TrainingDiverged as exc:
        fsutil.remove(fsutil.tmp_sibling(out))
        raise InputError("train", str(exc)) from None
    finally:
        signal.signal(signal.SIGTERM, old)
    progress.log(f"{algorithm}-{seed}: wrote {out}")
