"""One algorithm × seed in memory: resolve a run (:func:`setup`) and drive its epochs
(:func:`run_epochs`); no files are written here.

Python is entered once per epoch: it draws the epoch's order (NumPy generator seeded by
(seed, epoch)), calls :func:`pipeline.training.loop.run_epoch`, evaluates on the hardware and,
when asked, probes the in-situ errors. The train stage (:mod:`pipeline.stages.train`) records
each epoch into ``run.zarr`` with checkpoints; a sweep calls :func:`simulate`, which keeps the
per-epoch metrics only.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from .. import config, datasets
from ..crossbar import arrays as arr
from ..crossbar import kernels as K
from ..errors import InputError, TrainingDiverged
from ..crossbar import schemes as KS
from . import algorithms, loop, schemes, threaded, variants
from . import ledger as ledger_mod
from .metrics import LEDGER_NAMES, NAMES


@dataclass
class Setup:
    """Everything one training run needs, resolved from params and the arrays."""

    net: arr.Crossbars
    data: datasets.Split
    cfg: loop.Config
    lrs: np.ndarray
    T_train: np.ndarray
    T_test: np.ndarray
    probe_idx: np.ndarray
    algorithm: str
    seed: int
    scheme: str = "direct"  # train.scheme (float algorithms ignore it)
    x_eval: np.ndarray | None = None  # the per-epoch training-set evaluation subset (None: all)
    T_eval: np.ndarray | None = None

    @property
    def scheme_entry(self) -> schemes.Scheme:
        return schemes.get(self.scheme)

    @property
    def algorithm_entry(self) -> algorithms.Algorithm:
        return algorithms.get(self.algorithm)


@dataclass
class State:
    """The training state, updated in place by the kernels: conductances ``g``, float weights
    ``W`` (same flat layout), the per-device pulse counters and the update scheme's digital state:
    ``chi`` (N,) (the mixed-precision accumulator, or tiki-taka's buffer H; zero and untouched for
    the other schemes) and ``chop`` (Σ cols + Σ rows,) (c-TTv2's chopper sign of every input
    column, then of every output row, of every layer, ±1, all +1 at the start; the row signs are
    used by row transfers and out-choppers only; untouched by the other schemes). Tiki-taka's
    transfer counter is the global sample count (the epoch in the checkpoint): the line a
    transfer reads (in turn, or drawn from the counter-based generator keyed on the step)
    follows from it. ``amax`` (2L,): tiki-taka's auto-scale running means, m_x of every layer
    then m_d of every layer (0 before a layer's first update; untouched without
    ``train.tt_auto_scale``)."""

    g: np.ndarray
    W: np.ndarray
    cnt_up: np.ndarray
    cnt_dn: np.ndarray
    chi: np.ndarray | None = None
    chop: np.ndarray | None = None
    amax: np.ndarray | None = None

    def __post_init__(self):
        if self.chi is None:
            self.chi = np.zeros(self.g.shape[1])
        if self.chop is None:
            self.chop = np.zeros(0)
        if self.amax is None:
            self.amax = np.zeros(0)

    @classmethod
    def initial(cls, net: arr.Crossbars) -> "State":
        g = net.g0.copy()
        return cls(g, net.weights0().copy(), np.zeros(g.shape, np.int64), np.zeros(g.shape, np.int64),
                   np.zeros(g.shape[1]), np.ones(int(net.dev.cols.sum() + net.dev.rows.sum())),
                   np.zeros(2 * net.n_layers))


@dataclass
class EpochResult:
    """What one epoch produced. ``snaps``/``snap_steps`` are views of buffers that the next epoch
    overwrites: use them before asking for the next one (empty when they were streamed to
    ``on_snaps`` during the epoch)."""

    epoch: int
    metrics: dict[str, float]  # metrics.EPOCH_NAMES (epoch 0: the evaluated ones only)
    ledger: np.ndarray  # counts in the slots of loop.N_LEDGER
    pred: np.ndarray | None  # test-set predictions (hardware inference)
    snaps: np.ndarray | None  # snapshots taken in the epoch (flat layout)
    snap_steps: np.ndarray | None  # their global sample counts
    probe_ideal: np.ndarray | None
    probe_insitu: np.ndarray | None


def targets(y: np.ndarray, k: int, output: str) -> np.ndarray:
    lo = -1.0 if output == "tanh" else 0.0
    t = np.full((len(y), k), lo)
    t[np.arange(len(y)), y] = 1.0
    return t


def make_config(p, algorithm: str, seed: int) -> loop.Config:
    n = p.network
    if algorithm not in algorithms.CODES:
        raise InputError("--algorithm", f"got {algorithm!r}, expected one of {', '.join(algorithms.NAMES)}")
    if n.loss == "ce" and n.output not in ("sigmoid", "softmax"):
        raise InputError("network.loss", f"cross-entropy needs a sigmoid or softmax output, got output {n.output!r}")
    t = p.train
    if t.scheme != "direct" and algorithms.get(algorithm).encoding is not None:
        raise InputError("train.scheme", f"{algorithm} fixes its own write encoding and runs only with the direct "
                         f"scheme, got {t.scheme!r}")
    if t.scheme == "tiki-taka" and t.tt_algorithm == "c-ttv2" and t.tt_gamma != 0.0:
        raise InputError("train.tt_gamma", f"got {t.tt_gamma}, but c-ttv2 holds A chopped and this tile reads A "
                         "and C in one summed read, so A cannot be de-chopped in the forward weight; expected 0")
    auto_scale, auto_granularity, correct = schemes.tt_rate_options(t)
    return loop.Config(algorithm=algorithms.CODES[algorithm], hidden=loop.ACTIVATION_CODES[n.activation],
                       output=loop.ACTIVATION_CODES[n.output], loss=0 if n.loss == "mse" else 1,
                       derivative=0 if n.derivative == "exact" else 1, seed=int(seed),
                       scheme=schemes.CODES[t.scheme],
                       mp_subtract=KS.MP_READBACK if t.mp_subtract == "readback" else KS.MP_NOMINAL,
                       carry_every=int(t.carry_every), carry_rounds=int(t.carry_rounds),
                       refresh_margin=float(t.refresh_margin),
                       tt_algorithm=schemes.TT_ALGORITHMS.index(t.tt_algorithm),
                       tt_transfer_every=int(t.tt_transfer_every), tt_n_reads=int(t.tt_n_reads_per_transfer),
                       tt_transfer_lr=float(t.tt_transfer_lr), tt_fast_lr=float(t.tt_fast_lr),
                       tt_thres_scale=float(t.tt_thres_scale), tt_momentum=float(t.tt_momentum),
                       tt_forget_buffer=bool(t.tt_forget_buffer), tt_in_chop_prob=float(t.tt_in_chop_prob),
                       tt_max_steps=int(t.tt_max_steps), tt_transfer_columns=bool(t.tt_transfer_columns),
                       tt_random_selection=bool(t.tt_random_selection), tt_in_chop_random=bool(t.tt_in_chop_random),
                       tt_out_chop_prob=float(t.tt_out_chop_prob), tt_with_reset_prob=float(t.tt_with_reset_prob),
                       tt_scale_fast_lr=bool(t.tt_scale_fast_lr), tt_auto_scale=auto_scale,
                       tt_auto_momentum=float(t.tt_auto_momentum), tt_auto_granularity=auto_granularity,
                       tt_correct_gradient=correct)


def setup(p, algorithm: str, seed: int, net: arr.Crossbars, data: datasets.Split | None = None) -> Setup:
    """Resolve one run; ``data``: the dataset of ``p.dataset`` when the caller has loaded it."""
    data = datasets.load(p.dataset) if data is None else data
    sizes = arr.network_sizes(data.n_features, p.network.hidden, data.n_classes)
    if list(sizes) != list(net.sizes):
        raise InputError("arrays", f"stored arrays are {'-'.join(map(str, net.sizes))} but params ask for "
                         f"{'-'.join(map(str, sizes))}; rerun: python -m pipeline array init")
    cfg = make_config(p, algorithm, seed)
    entry = algorithms.get(algorithm)
    if entry.encoding is not None:  # the algorithm fixes how its updates become pulses (manhattan: sign)
        net = dataclasses.replace(net, ph=net.ph._replace(encoding=K.ENCODINGS[entry.encoding]))
    if cfg.scheme == schemes.MIXED_PRECISION:  # requests are whole numbers of nominal steps: rounded to nearest
        net = dataclasses.replace(net, ph=net.ph._replace(encoding=K.ENC_NEAREST))
    if cfg.scheme == schemes.CARRY and not entry.is_float:  # a second, significance-weighted pair per weight
        net = arr.with_carry_pair(net, p.train.carry_gamma, p.base.seed)
    if cfg.scheme == schemes.TIKI_TAKA and not entry.is_float:  # the fast pair A and the slow pair C
        net = arr.with_transfer_pair(net, p.train.tt_gamma, p.base.seed)
    zs = p.train.zero_shift or (cfg.scheme == schemes.TIKI_TAKA and p.train.tt_zero_shift)
    if zs and not entry.is_float:  # the written pair's zero at its symmetry point
        net = arr.zero_shift(net, p.train.zero_shift_cycles, int(p.base.seed) * 1000003 + int(seed))
    lrs = np.asarray(config.layer_lrs(p.train, net.sizes), np.float64)
    k = data.n_classes
    T_train = targets(data.y_train, k, p.network.output)
    T_test = targets(data.y_test, k, p.network.output)
    n_probe = min(p.record.probes, len(data.y_test))
    probe_idx = np.linspace(0, len(data.y_test) - 1, n_probe).astype(np.int64) if n_probe else np.zeros(0, np.int64)
    ev = train_eval_idx(len(data.y_train), p.record.train_eval)
    x_eval, T_eval = (None, None) if ev is None else (np.ascontiguousarray(data.x_train[ev]), np.ascontiguousarray(T_train[ev]))
    return Setup(net, data, cfg, lrs, T_train, T_test, probe_idx, algorithm, int(seed), p.train.scheme, x_eval, T_eval)


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    return np.random.default_rng(np.random.SeedSequence([seed, 0x5EED, epoch])).permutation(n).astype(np.int64)


def snapshot_every(record, n_train: int) -> int:
    """The snapshot cadence in samples: ``record.every``, or (0, auto) ``n_train // record.snapshots``
    (at least 1), so that a run keeps about ``snapshots`` per epoch whatever the training-set size."""
    return int(record.every) if record.every else max(1, n_train // int(record.snapshots))


def snapshot_steps(n_train: int, epochs: int, every: int) -> np.ndarray:
    """Global sample counts at which snapshots are taken (0 = the initial state)."""
    total = n_train * epochs
    return np.concatenate([[0], np.arange(every, total + 1, every)]).astype(np.int64)


def block_snapshots(record, n_pairs: int, n_devices: int) -> int:
    """How many snapshots fit in ``record.block_mb`` (at least 1): the most a run holds in memory."""
    return max(1, (int(record.block_mb) << 20) // (8 * n_pairs * n_devices))


def train_eval_idx(n_train: int, n: int) -> np.ndarray | None:
    """The training samples evaluated after each epoch: ``n`` evenly spaced indices (fixed for the
    run), or None (all) when ``n`` is 0 or covers the set."""
    if n == 0 or n >= n_train:
        return None
    return np.linspace(0, n_train - 1, n).astype(np.int64)  # spacing >= 1: n distinct indices


def _eval_epoch(su: Setup, g, W, epoch: int, pred_test: np.ndarray | None = None):
    """Hardware inference on the training and test sets after ``epoch`` (noise keyed on epoch)."""
    d = su.data
    base = loop.PROBE_STEP0 * 2 + epoch * (1 << 24)
    x_tr, T_tr = (d.x_train, su.T_train) if su.x_eval is None else (su.x_eval, su.T_eval)
    pred_tr = np.zeros(len(x_tr), np.int64)
    pred_te = np.zeros(len(d.y_test), np.int64) if pred_test is None else pred_test
    tr = loop.evaluate_set(g, W, su.net.dev, su.net.ph, su.cfg, x_tr, T_tr, loop.STREAM_EVAL, base, pred_tr)
    te = loop.evaluate_set(g, W, su.net.dev, su.net.ph, su.cfg, d.x_test, su.T_test, loop.STREAM_EVAL + 1, base, pred_te)
    return tr, te


def _probe_epoch(su: Setup, g, W, epoch: int, chi=None, chop=None, amax=None):
    n_units = int(su.net.dev.rows.sum())
    n = len(su.probe_idx)
    ideal = np.zeros((n, n_units))
    insitu = np.zeros((n, n_units))
    if n:
        xp = np.ascontiguousarray(su.data.x_test[su.probe_idx])
        tp = np.ascontiguousarray(su.T_test[su.probe_idx])
        loop.probe(g, W, su.net.dev, su.net.ph, su.cfg, su.lrs, xp, tp, loop.PROBE_STEP0 + epoch * (1 << 20), ideal, insitu, chi, chop,
                   amax)
    return ideal, insitu


_THREADS = 1  # numba threads of this process's training runs (set_threads)


def set_threads(n: int) -> int:
    """Train with ``n`` numba threads in this process (capped at numba's pool). 1: the serial,
    cached loop; more: its threaded twin (:mod:`pipeline.training.threaded`), compiled once per
    process, for arrays of at least ``train.parallel_min`` devices; the results are the same bits.
    Returns the thread count used."""
    import numba

    global _THREADS
    _THREADS = max(1, min(int(n), numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(_THREADS)
    return _THREADS


def train_epoch(p, su: Setup, g, W, cnt_up, cnt_dn, epoch: int, every: int, snaps, snap_steps, on_snaps=None,
                chi=None, chop=None, amax=None):
    """One epoch of training (in place on g / W / counters) and its hardware evaluation.

    With ``on_snaps``, the epoch runs as consecutive slices of its order of ``len(snaps) * every``
    samples, and each slice's snapshots go to ``on_snaps(snaps, steps)`` as soon as it is done:
    bit-identical to one call (every draw is keyed on the global step, the loss sum continues),
    with memory bounded by the ``snaps`` buffer. Returns (ledger counts, snapshots left in
    ``snaps``, test predictions, per-epoch metrics)."""
    n_train = len(su.data.y_train)
    order = epoch_order(su.seed, epoch, n_train)
    led = np.zeros(loop.N_LEDGER, np.int64)
    span = n_train if on_snaps is None else max(1, min(n_train, snaps.shape[0] * every))
    loss_sum, correct, ns, bad = 0.0, 0, 0, -1
    epoch_fn = threaded.run_epoch() if _THREADS > 1 else loop.run_epoch
    for a in range(0, max(n_train, 1), span):
        part = order[a:a + span]
        loss_sum, ok, ns, bad = epoch_fn(g, W, su.net.dev, su.net.ph, su.cfg, su.lrs, su.data.x_train,
                                               su.T_train, part, (epoch - 1) * n_train + a, every, cnt_up, cnt_dn,
                                               led, snaps, snap_steps, loss_sum, chi, chop, amax)
        correct += ok
        if bad >= 0:
            bad += a
            break
        if on_snaps is not None and ns:
            on_snaps(snaps[:ns], snap_steps[:ns])
            ns = 0
    if bad >= 0:
        raise TrainingDiverged(f"{su.algorithm}-{su.seed}: NaN or Inf at epoch {epoch}, sample {bad} "
                               f"(training index {int(order[bad])}); lower train.lr or check the device file")
    pred = np.zeros(len(su.data.y_test), np.int64)
    (trl, tra), (tel, tea) = _eval_epoch(su, g, W, epoch, pred)
    metrics = {"train_loss": loss_sum / n_train, "train_acc": correct / n_train, "train_loss_eval": trl,
               "train_acc_eval": tra, "test_loss": tel, "test_acc": tea, "energy_J": ledger_mod.energy(led, p.train)}
    return led, ns, pred, metrics


def initial_epoch(su: Setup, state: State, *, probes: bool) -> EpochResult:
    """Epoch 0, the state before training: hardware inference (and the probes if asked)."""
    (trl, tra), (tel, tea) = _eval_epoch(su, state.g, state.W, 0)
    metrics = {"train_loss_eval": trl, "train_acc_eval": tra, "test_loss": tel, "test_acc": tea}
    ideal, insitu = _probe_epoch(su, state.g, state.W, 0, state.chi, state.chop, state.amax) if probes else (None, None)
    return EpochResult(0, metrics, np.zeros(loop.N_LEDGER, np.int64), None, None, None, ideal, insitu)


def run_epochs(p, su: Setup, state: State, first: int, last: int, *, every: int | None = None,
               probes: bool = False, on_snaps=None, block: int | None = None) -> Iterator[EpochResult]:
    """Train epochs ``first`` … ``last`` in place on ``state``, one :class:`EpochResult` each: the
    one epoch driver of the train stage and of :func:`simulate`.

    ``every``: take a snapshot every that many global samples (None: no snapshots); ``on_snaps``:
    stream them, ``on_snaps(snaps, global_steps)``, at most ``block`` at a time (default: as many
    as ``record.block_mb`` holds) instead of keeping an epoch's worth; ``probes``: probe the
    in-situ errors after each epoch. Raises TrainingDiverged on NaN or Inf."""
    n_train = len(su.data.y_train)
    if every is None:
        every = np.iinfo(np.int64).max // 4
        snaps = np.zeros((1, 1, 1))
        snap_steps = np.zeros(1, np.int64)
        on_snaps = None
    else:
        P = 1 if su.algorithm_entry.is_float else state.g.shape[0]
        n = n_train // every + 2
        if on_snaps is not None:
            n = min(n, block if block is not None else block_snapshots(p.record, P, state.g.shape[1]))
        snaps = np.zeros((max(n, 1), P, state.g.shape[1]))
        snap_steps = np.zeros(snaps.shape[0], np.int64)
    for epoch in range(first, last + 1):
        led, ns, pred, metrics = train_epoch(p, su, state.g, state.W, state.cnt_up, state.cnt_dn, epoch, every,
                                             snaps, snap_steps, on_snaps, state.chi, state.chop, state.amax)
        ideal, insitu = _probe_epoch(su, state.g, state.W, epoch, state.chi, state.chop, state.amax) if probes else (None, None)
        yield EpochResult(epoch, metrics, led, pred, snaps[:ns], snap_steps[:ns], ideal, insitu)


def resolve(p, label: str):
    """``(params, algorithm)`` of a run label: ``<algorithm>`` runs with ``train.scheme``,
    ``<algorithm>+<scheme>`` (:mod:`pipeline.training.variants`) with that scheme."""
    alg, scheme = variants.parse(label)
    if label not in variants.LABELS:
        raise InputError("--algorithm", f"got {label!r}, expected one of {', '.join(variants.LABELS)}")
    if scheme is not None:
        p = config.with_changes(p, {"train.scheme": scheme})
    return p, alg


def simulate(p, spec, algorithm: str, seed: int) -> dict[str, np.ndarray]:
    """Instantiate arrays from a device population and train in memory (no store, no probes or
    snapshots): the unit of work of a sweep. Returns per-epoch arrays (epoch 0 = before
    training) of every metric and ledger count (:data:`pipeline.training.metrics.NAMES`).
    ``algorithm``: a run label (an algorithm, or ``<algorithm>+<scheme>``)."""
    p, algorithm = resolve(p, algorithm)
    make_config(p, algorithm, seed)
    data = datasets.load(p.dataset)
    net = arr.build(p, spec, arr.network_sizes(data.n_features, p.network.hidden, data.n_classes))
    su = setup(p, algorithm, seed, net, data)
    state = State.initial(su.net)  # su.net: the scheme's tile (carry: four planes)
    E = p.train.epochs
    out = {k: np.full(E + 1, np.nan) for k in NAMES}
    for k, v in initial_epoch(su, state, probes=False).metrics.items():
        out[k][0] = v
    for res in run_epochs(p, su, state, 1, E):
        for k, v in res.metrics.items():
            out[k][res.epoch] = v
        for k, name in enumerate(LEDGER_NAMES):
            out[name][res.epoch] = res.ledger[k]
    return out


def confusion(y: np.ndarray, pred: np.ndarray, k: int) -> np.ndarray:
    m = np.zeros((k, k), np.int64)
    np.add.at(m, (y, pred), 1)
    return m
