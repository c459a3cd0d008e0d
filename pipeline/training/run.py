"""The run driver: one algorithm × seed, epochs of jitted training, a buffered recorder, checkpoints.

Python is entered once per epoch: it draws the epoch's order (NumPy generator seeded by
(seed, epoch)), calls :func:`pipeline.training.loop.run_epoch`, evaluates on the hardware, probes
the in-situ errors, writes that epoch's regions of ``run.zarr`` and a checkpoint.

The run folder is built in a temporary sibling (``.<name>.tmp``) and renamed into place at the end;
an interrupted run leaves the sibling with its last checkpoint, and ``--resume`` continues from it
to exactly the store an uninterrupted run writes.
"""

from __future__ import annotations

import dataclasses
import os
import signal
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import config, datasets, fsutil, progress, store
from ..crossbar import arrays as arr
from ..crossbar import kernels as K
from ..errors import InputError, TrainingDiverged
from . import ledger as ledger_mod
from . import loop

CHECKPOINT = "checkpoint.npz"


@dataclass
class Setup:
    """Everything one training run needs, resolved from params and the stored arrays."""

    net: arr.Network
    data: datasets.Split
    cfg: loop.Config
    lrs: np.ndarray
    T_train: np.ndarray
    T_test: np.ndarray
    probe_idx: np.ndarray
    algorithm: str
    seed: int


def targets(y: np.ndarray, k: int, output: str) -> np.ndarray:
    lo = -1.0 if output == "tanh" else 0.0
    t = np.full((len(y), k), lo)
    t[np.arange(len(y)), y] = 1.0
    return t


def make_config(p, algorithm: str, seed: int) -> loop.Config:
    n = p.network
    if algorithm not in loop.ALGORITHM_CODES:
        raise InputError("--algorithm", f"got {algorithm!r}, expected one of {', '.join(loop.ALGORITHM_CODES)}")
    if n.loss == "ce" and n.output not in ("sigmoid", "softmax"):
        raise InputError("network.loss", f"cross-entropy needs a sigmoid or softmax output, got output {n.output!r}")
    return loop.Config(algorithm=loop.ALGORITHM_CODES[algorithm], hidden=loop.ACTIVATION_CODES[n.activation],
                       output=loop.ACTIVATION_CODES[n.output], loss=0 if n.loss == "mse" else 1,
                       derivative=0 if n.derivative == "exact" else 1, seed=int(seed))


def setup(p, algorithm: str, seed: int, net: arr.Network) -> Setup:
    data = datasets.load(p.dataset)
    sizes = arr.network_sizes(data.n_features, p.network.hidden, data.n_classes)
    if list(sizes) != list(net.sizes):
        raise InputError("arrays", f"stored arrays are {'-'.join(map(str, net.sizes))} but params ask for "
                         f"{'-'.join(map(str, sizes))}; rerun: python -m pipeline array init")
    cfg = make_config(p, algorithm, seed)
    if algorithm == "manhattan":  # sign-only updates: one pulse per device above the threshold
        net = dataclasses.replace(net, ph=net.ph._replace(encoding=K.ENC_SIGN))
    lrs = np.asarray(config.layer_lrs(p.train, net.n_layers), np.float64)
    k = data.n_classes
    T_train = targets(data.y_train, k, p.network.output)
    T_test = targets(data.y_test, k, p.network.output)
    n_probe = min(p.record.probes, len(data.y_test))
    probe_idx = np.linspace(0, len(data.y_test) - 1, n_probe).astype(np.int64) if n_probe else np.zeros(0, np.int64)
    return Setup(net, data, cfg, lrs, T_train, T_test, probe_idx, algorithm, int(seed))


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    return np.random.default_rng(np.random.SeedSequence([seed, 0x5EED, epoch])).permutation(n).astype(np.int64)


def snapshot_steps(n_train: int, epochs: int, every: int) -> np.ndarray:
    """Global sample counts at which snapshots are taken (0 = the initial state)."""
    total = n_train * epochs
    return np.concatenate([[0], np.arange(every, total + 1, every)]).astype(np.int64)


class Recorder:
    """Creates ``run.zarr`` with every array at its final shape, then writes one epoch's regions
    at a time from NumPy buffers."""

    def __init__(self, s: store.Store):
        self.s = s

    @classmethod
    def create(cls, path: Path, su: Setup, p, epochs: int, flt: bool) -> "Recorder":
        net = su.net
        dev = net.dev
        P = net.g0.shape[0]
        steps = snapshot_steps(len(su.data.y_train), epochs, p.record.every)
        attrs = {"algorithm": su.algorithm, "seed": su.seed, "sizes": net.sizes, "float": flt,
                 "samples_per_epoch": len(su.data.y_train), "test_samples": len(su.data.y_test),
                 "arrays": net.attrs, "params": {k: config.to_dict(getattr(p, k)) for k in
                                                 ("base", "network", "dataset", "train", "record")},
                 "values_held": ledger_mod.values_held(su.algorithm, net.sizes),
                 "reads_per_sample": ledger_mod.reads_per_sample(su.algorithm, net.n_layers)}
        s = store.Store.create(path, attrs=attrs)
        E = epochs + 1
        s.array("epoch", ("epoch",), (E,), dtype="i8", data=np.arange(E), attrs={"units": "1"})
        for name, units, desc in (
            ("train_loss", "1", "mean loss of the training samples as seen during training (online)"),
            ("train_acc", "1", "accuracy of the training samples as seen during training (online)"),
            ("train_loss_eval", "1", "loss on the training set after the epoch (hardware inference)"),
            ("train_acc_eval", "1", "accuracy on the training set after the epoch (hardware inference)"),
            ("test_loss", "1", "loss on the test set after the epoch (hardware inference)"),
            ("test_acc", "1", "accuracy on the test set after the epoch (hardware inference)"),
            ("energy_J", "J", "write and read energy spent in the epoch"),
        ):
            s.array(name, ("epoch",), (E,), attrs={"units": units, "description": desc})
        for k, name in enumerate(ledger_mod.LEDGER_NAMES):
            s.array(name, ("epoch",), (E,), dtype="i8", fill=-1,
                    attrs={"units": ledger_mod.LEDGER_UNITS[k], "description": ledger_mod.LEDGER_DOC[k]})
        per_epoch = max(1, len(steps) // max(epochs, 1))
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


def _eval_epoch(su: Setup, g, W, epoch: int, pred_test: np.ndarray | None = None):
    """Hardware inference on the training and test sets after ``epoch`` (noise keyed on epoch)."""
    d = su.data
    base = loop.PROBE_STEP0 * 2 + epoch * (1 << 24)
    pred_tr = np.zeros(len(d.y_train), np.int64)
    pred_te = np.zeros(len(d.y_test), np.int64) if pred_test is None else pred_test
    tr = loop.evaluate_set(g, W, su.net.dev, su.net.ph, su.cfg, d.x_train, su.T_train, loop.STREAM_EVAL, base, pred_tr)
    te = loop.evaluate_set(g, W, su.net.dev, su.net.ph, su.cfg, d.x_test, su.T_test, loop.STREAM_EVAL + 1, base, pred_te)
    return tr, te


def _probe_epoch(su: Setup, g, W, epoch: int):
    n_units = int(su.net.dev.rows.sum())
    n = len(su.probe_idx)
    ideal = np.zeros((n, n_units))
    insitu = np.zeros((n, n_units))
    if n:
        xp = np.ascontiguousarray(su.data.x_test[su.probe_idx])
        tp = np.ascontiguousarray(su.T_test[su.probe_idx])
        loop.probe(g, W, su.net.dev, su.net.ph, su.cfg, su.lrs, xp, tp, loop.PROBE_STEP0 + epoch * (1 << 20), ideal, insitu)
    return ideal, insitu


class _Terminated(Exception):
    pass


def _on_sigterm(signum, frame):  # noqa: ARG001
    raise _Terminated()


def train(p, su: Setup, tmp: Path, resume: bool, epochs: int) -> None:
    """Train into folder ``tmp`` (run.zarr + checkpoint), resuming from its checkpoint if asked."""
    net = su.net
    flt = bool(loop.is_float(su.cfg.algorithm))
    n_train = len(su.data.y_train)
    every = p.record.every
    ckpt = tmp / CHECKPOINT
    run_path = tmp / "run.zarr"
    g = net.g0.copy()
    W = net.weights0().copy()
    cnt_up = np.zeros_like(g, dtype=np.int64)
    cnt_dn = np.zeros_like(g, dtype=np.int64)
    steps = snapshot_steps(n_train, epochs, every)
    start = 0
    if resume and ckpt.exists() and run_path.exists():
        z = np.load(ckpt)
        g, W, cnt_up, cnt_dn = z["g"].copy(), z["W"].copy(), z["cnt_up"].copy(), z["cnt_dn"].copy()
        start = int(z["epoch"])
        rec = Recorder(store.Store.open(run_path))
        progress.log(f"resuming {su.algorithm}-{su.seed} after epoch {start}")
    else:
        fsutil.remove(run_path)
        rec = Recorder.create(run_path, su, p, epochs, flt)
        _write_epoch0(rec, su, g, W, flt)
    snaps = np.zeros((n_train // every + 2, 1 if flt else g.shape[0], g.shape[1]))
    snap_steps = np.zeros(snaps.shape[0], np.int64)
    with progress.bar(f"train {su.algorithm}-{su.seed}", total=epochs) as bar:
        bar.advance(start)
        for epoch in range(start + 1, epochs + 1):
            led, ns, pred, metrics = train_epoch(p, su, g, W, cnt_up, cnt_dn, epoch, every, snaps, snap_steps)
            ideal, insitu = _probe_epoch(su, g, W, epoch)
            s = rec.s
            for name, val in metrics.items():
                s.write(name, epoch, val)
            for k, name in enumerate(ledger_mod.LEDGER_NAMES):
                s.write(name, epoch, led[k])
            if ns:
                first = int(np.searchsorted(steps, snap_steps[0]))
                assert np.array_equal(steps[first:first + ns], snap_steps[:ns])
                _write_snaps(rec, su, snaps[:ns], first, flt)
            s.write("probe_ideal", epoch, ideal)
            s.write("probe_insitu", epoch, insitu)
            s.write("confusion", ..., confusion(su.data.y_test, pred, su.data.n_classes))
            if not flt:
                _write_counts(rec, su, cnt_up, cnt_dn)
            _save_checkpoint(ckpt, g, W, cnt_up, cnt_dn, epoch)
            progress.log(f"{su.algorithm}-{su.seed} epoch {epoch}/{epochs}: loss {metrics['train_loss']:.4f} "
                         f"train {metrics['train_acc_eval']:.3f} test {metrics['test_acc']:.3f}", verbose_only=True)
            bar.advance()
    rec.s.consolidate()
    ckpt.unlink(missing_ok=True)


def train_epoch(p, su: Setup, g, W, cnt_up, cnt_dn, epoch: int, every: int, snaps, snap_steps):
    """One epoch of training (in place on g / W / counters) and its hardware evaluation.

    Returns (ledger counts, snapshots taken, test predictions, per-epoch metrics)."""
    n_train = len(su.data.y_train)
    order = epoch_order(su.seed, epoch, n_train)
    led = np.zeros(loop.N_LEDGER, np.int64)
    loss_sum, correct, ns, bad = loop.run_epoch(g, W, su.net.dev, su.net.ph, su.cfg, su.lrs, su.data.x_train,
                                                su.T_train, order, (epoch - 1) * n_train, every, cnt_up, cnt_dn,
                                                led, snaps, snap_steps)
    if bad >= 0:
        raise TrainingDiverged(f"{su.algorithm}-{su.seed}: NaN or Inf at epoch {epoch}, sample {bad} "
                               f"(training index {int(order[bad])}); lower train.lr or check the device file")
    pred = np.zeros(len(su.data.y_test), np.int64)
    (trl, tra), (tel, tea) = _eval_epoch(su, g, W, epoch, pred)
    metrics = {"train_loss": loss_sum / n_train, "train_acc": correct / n_train, "train_loss_eval": trl,
               "train_acc_eval": tra, "test_loss": tel, "test_acc": tea, "energy_J": ledger_mod.energy(led, p.train)}
    return led, ns, pred, metrics


def simulate(p, spec, algorithm: str, seed: int) -> dict[str, np.ndarray]:
    """Instantiate arrays from a device population and train in memory (no store, no probes or
    snapshots): the unit of work of a sweep. Returns per-epoch arrays (epoch 0 = before
    training) of every metric and ledger count."""
    make_config(p, algorithm, seed)
    data = datasets.load(p.dataset)
    net = arr.build(p, spec, arr.network_sizes(data.n_features, p.network.hidden, data.n_classes))
    su = setup(p, algorithm, seed, net)
    g, W = net.g0.copy(), net.weights0().copy()
    cnt_up = np.zeros(g.shape, np.int64)
    cnt_dn = np.zeros(g.shape, np.int64)
    E = p.train.epochs
    names = ("train_loss", "train_acc", "train_loss_eval", "train_acc_eval", "test_loss", "test_acc", "energy_J")
    out = {k: np.full(E + 1, np.nan) for k in names + ledger_mod.LEDGER_NAMES}
    (out["train_loss_eval"][0], out["train_acc_eval"][0]), (out["test_loss"][0], out["test_acc"][0]) = _eval_epoch(su, g, W, 0)
    snaps = np.zeros((1, 1, 1))
    snap_steps = np.zeros(1, np.int64)
    huge = np.iinfo(np.int64).max // 4
    for epoch in range(1, E + 1):
        led, _, _, metrics = train_epoch(p, su, g, W, cnt_up, cnt_dn, epoch, huge, snaps, snap_steps)
        for k, v in metrics.items():
            out[k][epoch] = v
        for k, name in enumerate(ledger_mod.LEDGER_NAMES):
            out[name][epoch] = led[k]
    return out


def confusion(y: np.ndarray, pred: np.ndarray, k: int) -> np.ndarray:
    m = np.zeros((k, k), np.int64)
    np.add.at(m, (y, pred), 1)
    return m


def _write_epoch0(rec: Recorder, su: Setup, g, W, flt: bool) -> None:
    (trl, tra), (tel, tea) = _eval_epoch(su, g, W, 0)
    s = rec.s
    for name, val in (("train_loss_eval", trl), ("train_acc_eval", tra), ("test_loss", tel), ("test_acc", tea),
                      ("energy_J", 0.0)):
        s.write(name, 0, val)
    for name in ledger_mod.LEDGER_NAMES:
        s.write(name, 0, 0)
    snap = (W[None, :] if flt else g)[None]
    _write_snaps(rec, su, snap, 0, flt)
    ideal, insitu = _probe_epoch(su, g, W, 0)
    s.write("probe_ideal", 0, ideal)
    s.write("probe_insitu", 0, insitu)


def _write_snaps(rec: Recorder, su: Setup, snaps: np.ndarray, first: int, flt: bool) -> None:
    dev = su.net.dev
    n = snaps.shape[0]
    for l in range(su.net.n_layers):
        r, c, o = int(dev.rows[l]), int(dev.cols[l]), int(dev.off[l])
        block = snaps[:, :, o:o + r * c].reshape(n, snaps.shape[1], r, c)
        rec.s.write(f"W_{l}" if flt else f"G_{l}", slice(first, first + n), block)


def _write_counts(rec: Recorder, su: Setup, cnt_up, cnt_dn) -> None:
    dev = su.net.dev
    P = cnt_up.shape[0]
    for l in range(su.net.n_layers):
        r, c, o = int(dev.rows[l]), int(dev.cols[l]), int(dev.off[l])
        rec.s.write(f"pulses_up_{l}", ..., cnt_up[:, o:o + r * c].reshape(P, r, c))
        rec.s.write(f"pulses_down_{l}", ..., cnt_dn[:, o:o + r * c].reshape(P, r, c))


def _save_checkpoint(path: Path, g, W, cnt_up, cnt_dn, epoch: int) -> None:
    tmp = path.with_name(path.name + ".part.npz")
    np.savez(tmp, g=g, W=W, cnt_up=cnt_up, cnt_dn=cnt_dn, epoch=np.int64(epoch))
    os.replace(tmp, path)


def train_command(p, *, algorithm: str, seed: int, arrays_path: Path, out: Path, resume: bool) -> None:
    """``ecram train``: one run into ``out/run.zarr`` (atomic; resumable after interruption)."""
    make_config(p, algorithm, seed)  # refuse a bad algorithm, loss or output path before reading anything
    fsutil.check_output_path(out, want_dir=True)
    from ..stages.instantiate import load_arrays

    net = load_arrays(arrays_path, parallel_min=p.train.parallel_min)
    su = setup(p, algorithm, seed, net)
    old = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        with fsutil.atomic_path(out, keep_tmp_on_error=True) as tmp:
            if not resume:
                fsutil.remove(tmp / CHECKPOINT)
            train(p, su, tmp, resume, p.train.epochs)
    except (_Terminated, KeyboardInterrupt):
        progress.log(f"interrupted: checkpoint kept in {fsutil.tmp_sibling(out)}; continue with --resume")
        raise SystemExit(143)
    except TrainingDiverged as exc:
        fsutil.remove(fsutil.tmp_sibling(out))
        raise InputError("train", str(exc)) from None
    finally:
        signal.signal(signal.SIGTERM, old)
    progress.log(f"{algorithm}-{seed}: wrote {out}")
