"""The jitted training loop (DESIGN §1.1–1.2, §2.3): every algorithm, any depth, one epoch per call.

Notation (0-based layers ``l = 0..L-1``): ``W_l`` has shape (rows_l, cols_l), cols includes the
bias. Forward: ``ã_l = [a_l; 1]``, ``z_l = W_l ã_l``, ``a_{l+1} = f_l(z_l)``. Loss ½‖a_L − t‖² (MSE) or
cross-entropy. Online SGD: ``ΔW_l = −η_l δ_l ã_lᵀ``.

Algorithms (codes below):

* ``backprop`` / ``backprop-float`` / ``manhattan``: one forward pass; every δ_l by transposed
  reads of the arrays *before any write*; then every array is written (manhattan: sign encoding).
* ``progressive`` / ``progressive-float``: for l = L-1 … 0: a forward pass on the present
  hardware, the output error, transposed reads through the (already updated) arrays above l down
  to l, write array l. Nothing is held between layer updates.
* ``progressive-held`` / ``progressive-held-float``: one forward pass, activations held; write
  array L-1; δ_{l} = (W_{l+1} after its update)ᵀ δ_{l+1} ⊙ f'(z_l); write array l; …

Hardware variants read and write the devices through :mod:`pipeline.crossbar.kernels`; float
variants use float64 weights ``W`` in the same flat layout and exact arithmetic.

Buffers use flat layouts: activations ``A`` (layer-l input at ``aoff[l]``, ``cols_l`` values incl.
the bias 1; network output at ``aoff[L]``), pre-activations and errors ``Z``, ``D`` at ``zoff[l]``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit, uint64

from ..crossbar import kernels as K
from ..crossbar import schemes as KS
from ..rng import STREAM_READ, key4
from . import algorithms, metrics, schemes
from .neurons import (  # noqa: F401  (re-exported: the loop's activation, loss and derivative codes)
    ACTIVATION_CODES, DERIV_EXACT, DERIV_HARDWARE, HARD_SIGMOID, IDENTITY, LOSS_CE, LOSS_MSE, RELU, SIGMOID, SOFTMAX,
    TANH, _activate, _deriv, output_error)

# algorithm codes: the registry's; the loop knows an algorithm only by its update order and
# whether it is float (tables by code below), so a new algorithm of a known order is one registry entry
ALGORITHM_CODES = dict(algorithms.CODES)
# the update order of each algorithm code, as the loop branches on it (a registry order the loop
# does not know fails here, at import)
O_BACKPROP, O_PROGRESSIVE, O_PROGRESSIVE_HELD = 0, 1, 2
_LOOP_ORDER = {algorithms.ORDER_BACKPROP: O_BACKPROP, algorithms.ORDER_MANHATTAN: O_BACKPROP,
               algorithms.ORDER_PROGRESSIVE: O_PROGRESSIVE, algorithms.ORDER_PROGRESSIVE_HELD: O_PROGRESSIVE_HELD}
_BY_CODE = sorted(algorithms.REGISTRY, key=lambda a: a.code)
ORDER_OF = np.array([_LOOP_ORDER[a.order] for a in _BY_CODE], np.int64)  # by algorithm code
FLOAT = np.array([a.is_float for a in _BY_CODE])  # by algorithm code: float64 weights, no devices

# ledger slots (per epoch totals), in the order of metrics.LEDGER_METRICS
L_READS = metrics.LEDGER_SLOT["reads"]
L_DEVICE_READS = metrics.LEDGER_SLOT["device_reads"]
L_PULSES_UP = metrics.LEDGER_SLOT["pulses_up"]
L_PULSES_DOWN = metrics.LEDGER_SLOT["pulses_down"]
L_FORWARD = metrics.LEDGER_SLOT["forward_passes"]
L_VERIFY_READS = metrics.LEDGER_SLOT["verify_reads"]
L_TRANSFERS = metrics.LEDGER_SLOT["transfers"]
L_REFRESHES = metrics.LEDGER_SLOT["refreshes"]
N_LEDGER = metrics.N_LEDGER

STREAM_EVAL = 50
PROBE_STEP0 = 1 << 40


class Config(NamedTuple):
    algorithm: int
    hidden: int  # activation code of hidden layers
    output: int  # activation code of the output layer
    loss: int
    derivative: int
    seed: int
    scheme: int = schemes.DIRECT  # update scheme code (training.schemes); float algorithms ignore it
    mp_subtract: int = KS.MP_READBACK  # mixed precision: KS.MP_READBACK or KS.MP_NOMINAL
    carry_every: int = 1  # carry: samples between transfers
    carry_rounds: int = 1  # carry: write-verify rounds per pair (also of a refresh)
    refresh_margin: float = 0.0  # any scheme: refresh pairs this close to a bound after every sample (0: off)
    tt_algorithm: int = KS.TT_V2  # tiki-taka: KS.TT_V1, TT_V2 or TT_C2
    tt_transfer_every: int = 1  # tiki-taka: samples between transfer events
    tt_n_reads: int = 1  # tiki-taka: columns of A read per layer and event
    tt_transfer_lr: float = 1.0  # tiki-taka: × the layer's rate
    tt_fast_lr: float = 1.0  # tiki-taka: × the layer's rate, for A's update
    tt_thres_scale: float = 1.0  # TTv2: threshold of H in C steps
    tt_momentum: float = 0.0  # TTv2: fraction of H kept after a pulse
    tt_forget_buffer: bool = True  # TTv2: H ← momentum·H after a pulse (else H −= (1 − momentum)·pulses)
    tt_in_chop_prob: float = 0.0  # c-TTv2: chopper flip probability per column read
    tt_max_steps: int = 1  # TTv2: most pulses per weight and transfer
    tt_transfer_columns: bool = True  # tiki-taka: read columns of A (else rows, transposed reads)
    tt_random_selection: bool = False  # tiki-taka: first line read drawn at random per layer and event
    tt_in_chop_random: bool = True  # c-TTv2: in-choppers flip at random (else regularly)
    tt_out_chop_prob: float = 0.0  # c-TTv2: out-chopper flip probability per full sweep (0: no out-choppers)
    tt_with_reset_prob: float = 0.0  # TTv1: probability of resetting a read line of A (write-verify, carry_rounds)
    tt_scale_fast_lr: bool = True  # tiki-taka: A's rate × the layer's rate (else fast_lr alone)
    tt_auto_scale: bool = False  # TTv2: A's rate × n_max·ε / (m_x·m_d), running means of the largest |a|, |δ|
    tt_auto_momentum: float = 0.99  # TTv2: momentum of the running means of tt_auto_scale
    tt_auto_granularity: float = 0.0  # TTv2: H's threshold × this / samples per sweep of the read lines (0: off)
    tt_correct_gradient: bool = False  # TTv2: the read of A enters H divided by A's rate


# The jitted functions take their arguments in three small groups (numba accepts NamedTuples), so
# new state is a new field, not a new positional argument at every call site.


class Static(NamedTuple):
    """What a sample reads and never changes: the arrays' devices and physics, the training
    configuration and the learning rate of every layer."""

    dev: K.Devices
    ph: K.Physics
    cfg: Config
    lrs: np.ndarray  # (L,) float64


_NO_CHI = np.zeros(0)  # State.chi of a scheme without an accumulator (never written: size 0)
_NO_CHOP = np.zeros(0)  # State.chop of a scheme without choppers
_NO_CACHE = np.zeros(0)  # State.t without cached read terms (reads derive every term from g)
_NO_AMAX = np.zeros(0)  # State.amax of a run without tiki-taka's auto-scale


class State(NamedTuple):
    """What training changes: conductances ``g`` (P, N) (hardware algorithms), float weights ``W``
    (N,) (float algorithms), pulse counters (P, N), the ledger (per-epoch totals) and the update
    scheme's digital state: ``chi`` (N,), the mixed-precision accumulator or tiki-taka's buffer H
    (size 0 for the other schemes; the default, for callers that build a State of the ``direct``
    scheme in Python) and ``chop`` (Σ cols,), c-TTv2's chopper sign of every input column of
    every layer (±1; size 0 otherwise); ``t`` (N,), the cached read terms of ``g``
    (``K.terms``: reads use it, writes keep it in step; size 0: reads derive every term from ``g``);
    ``amax`` (2L,), tiki-taka's auto-scale running means m_x of every layer, then m_d of every
    layer (0 until a layer's first update; size 0 without ``tt_auto_scale``)."""

    g: np.ndarray
    W: np.ndarray
    cnt_up: np.ndarray
    cnt_dn: np.ndarray
    ledger: np.ndarray
    chi: np.ndarray = _NO_CHI
    chop: np.ndarray = _NO_CHOP
    t: np.ndarray = _NO_CACHE
    amax: np.ndarray = _NO_AMAX


class Work(NamedTuple):
    """Scratch buffers of one sample: activations ``A``, pre-activations ``Z``, errors ``D`` in the
    flat layouts at ``aoff`` / ``zoff``, and ``tmp`` for a transposed read."""

    A: np.ndarray
    Z: np.ndarray
    D: np.ndarray
    tmp: np.ndarray
    aoff: np.ndarray
    zoff: np.ndarray


@njit(cache=True)
def is_float(algorithm):
    """Float64 weights, no devices (callable from Python and from jitted code)."""
    return FLOAT[algorithm]


# ------------------------------------------------------------------------------- float reads


@njit(cache=True)
def _float_fwd(W, dev, layer, x, y):
    """y = W_l x, each row summed in order of j; four rows side by side (four independent chains:
    the same bits as one row at a time, without waiting on one chain's additions)."""
    r, c, o = dev.rows[layer], dev.cols[layer], dev.off[layer]
    i = 0
    while i + 4 <= r:
        b0 = o + i * c
        b1 = b0 + c
        b2 = b1 + c
        b3 = b2 + c
        a0 = 0.0
        a1 = 0.0
        a2 = 0.0
        a3 = 0.0
        for j in range(c):
            xj = x[j]
            a0 += W[b0 + j] * xj
            a1 += W[b1 + j] * xj
            a2 += W[b2 + j] * xj
            a3 += W[b3 + j] * xj
        y[i] = a0
        y[i + 1] = a1
        y[i + 2] = a2
        y[i + 3] = a3
        i += 4
    for i in range(i, r):
        acc = 0.0
        base = o + i * c
        for j in range(c):
            acc += W[base + j] * x[j]
        y[i] = acc


@njit(cache=True)
def _float_tr(W, dev, layer, d, x):
    """x = W_lᵀ d, each column summed over rows in order; unsigned indices (no negative-index
    wraparound), so LLVM vectorises across the independent columns: the same bits."""
    r, c, o = dev.rows[layer], dev.cols[layer], dev.off[layer]
    for j in range(c):
        x[j] = 0.0
    uc = uint64(c)
    for i in range(r):
        base = uint64(o + i * c)
        di = d[i]
        for j in range(uint64(0), uc):
            x[j] += W[base + j] * di


@njit(cache=True)
def _float_update(W, dev, layer, d, a, lr):
    """W_l += (-lr·d)·aᵀ elementwise; unsigned indices so the row loop vectorises (same bits)."""
    r, c, o = dev.rows[layer], dev.cols[layer], dev.off[layer]
    uc = uint64(c)
    for i in range(r):
        base = uint64(o + i * c)
        s = -lr * d[i]
        for j in range(uint64(0), uc):
            W[base + j] += s * a[j]


# --------------------------------------------------------------------------------- one sample


@njit(cache=True)
def offsets(dev):
    L = dev.rows.shape[0]
    aoff = np.zeros(L + 2, np.int64)
    zoff = np.zeros(L + 1, np.int64)
    for l in range(L):
        aoff[l + 1] = aoff[l] + dev.cols[l]
        zoff[l + 1] = zoff[l] + dev.rows[l]
    aoff[L + 1] = aoff[L] + dev.rows[L - 1]
    return aoff, zoff


@njit(cache=True)
def work(dev):
    """Scratch buffers for ``dev``'s layer sizes."""
    aoff, zoff = offsets(dev)
    return Work(np.zeros(aoff[-1]), np.zeros(zoff[-1]), np.zeros(zoff[-1]), np.zeros(int(dev.cols.max()) + 1),
                aoff, zoff)


@njit(cache=True)
def forward(s, st, wk, flt, x, step, nread, noisy, start=0):
    """One forward pass; returns the updated read counter ``nread`` (read noise stream).

    ``start`` > 0: the layers below ``start`` are not evaluated again; their outputs in ``wk`` are
    those of this sample's earlier pass (the caller guarantees that the reads would give the same
    bits: no read noise, arrays not written since). Their reads still count in the ledger and the
    read counter, as the hardware performs them."""
    dev, ph, cfg = s.dev, s.ph, s.cfg
    g, W, ledger = st.g, st.W, st.ledger
    A, Z, aoff, zoff = wk.A, wk.Z, wk.aoff, wk.zoff
    L = dev.rows.shape[0]
    n0 = dev.cols[0] - 1
    if start == 0:
        for j in range(n0):
            A[j] = x[j]
        A[n0] = 1.0
    for l in range(L):
        if l >= start:
            xin = A[aoff[l]:aoff[l] + dev.cols[l]]
            z = Z[zoff[l]:zoff[l] + dev.rows[l]]
            if flt:
                _float_fwd(W, dev, l, xin, z)
            else:
                K.read_forward_t(st.t, g, dev, ph, l, xin, z, key4(cfg.seed, STREAM_READ + nread, step, l), noisy)
        if not flt:
            nread += 1
            ledger[L_DEVICE_READS] += dev.rows[l] * dev.cols[l] * g.shape[0]
        ledger[L_READS] += 1
        if l >= start:
            out = A[aoff[l + 1]:aoff[l + 1] + dev.rows[l]]
            _activate(cfg.output if l == L - 1 else cfg.hidden, Z[zoff[l]:zoff[l] + dev.rows[l]], out)
            if l < L - 1:
                A[aoff[l + 1] + dev.rows[l]] = 1.0
    ledger[L_FORWARD] += 1
    return nread


@njit(cache=True)
def hidden_error(s, st, wk, flt, l, step, nread, noisy, mode):
    """δ_l = (W_{l+1}ᵀ δ_{l+1})[:rows_l] ⊙ f'(z_l) by a transposed read of array l+1."""
    dev, ph, cfg = s.dev, s.ph, s.cfg
    g, W, ledger = st.g, st.W, st.ledger
    A, Z, D, tmp, aoff, zoff = wk.A, wk.Z, wk.D, wk.tmp, wk.aoff, wk.zoff
    dn = D[zoff[l + 1]:zoff[l + 1] + dev.rows[l + 1]]
    x = tmp[:dev.cols[l + 1]]
    if flt:
        _float_tr(W, dev, l + 1, dn, x)
    else:
        K.read_transposed_t(st.t, g, dev, ph, l + 1, dn, x, key4(cfg.seed, STREAM_READ + nread, step, l + 1), noisy)
        nread += 1
        ledger[L_DEVICE_READS] += dev.rows[l + 1] * dev.cols[l + 1] * g.shape[0]
    ledger[L_READS] += 1
    r = dev.rows[l]
    for i in range(r):
        zi = Z[zoff[l] + i]
        ai = A[aoff[l + 1] + i]
        D[zoff[l] + i] = x[i] * _deriv(cfg.hidden, zi, ai, mode)
    return nread


@njit(cache=True)
def tt_chop_size(dev, cfg):
    """The chopper signs c-TTv2 needs (State.chop): one per input column of every layer, and one
    per output row of every layer after them when rows are read or out-choppers are on."""
    n = dev.cols.sum()
    if not cfg.tt_transfer_columns or cfg.tt_out_chop_prob > 0.0:
        n += dev.rows.sum()
    return n


@njit(cache=True)
def _mean_of_max(amax, k, x, momentum):
    """aihwkit's ``updateAutoScale`` (mini-batch of one) of running mean ``amax[k]`` with
    v = max|x|: m ← v at the first positive v, then m ← momentum·m + (1 − momentum)·v for every
    positive v (an all-zero ``x`` leaves m)."""
    v = 0.0
    for i in range(x.shape[0]):
        v = max(v, abs(x[i]))
    if amax[k] <= 0.0:
        amax[k] = v
    elif v > 0.0:
        tau = 1.0 - momentum
        amax[k] = (1.0 - tau) * amax[k] + tau * v


@njit(cache=True)
def tt_fast_rate(cfg, ph, lrs, amax, l):
    """A's rate of layer ``l`` (aihwkit's pulse-count learning rate): ``tt_fast_lr`` × the layer's
    rate (``tt_scale_fast_lr``), with ``tt_auto_scale`` × n_max·ε_A / (m_x·m_d) once both running
    means are positive (ε_A: the mean nominal step of a pulse)."""
    lr = cfg.tt_fast_lr * lrs[l] if cfg.tt_scale_fast_lr else cfg.tt_fast_lr
    if cfg.tt_auto_scale:
        L = lrs.shape[0]
        mx, md = amax[l], amax[L + l]
        if mx > 0.0 and md > 0.0:
            lr *= ph.n_max * 0.5 * (ph.dw_pot + ph.dw_dep) / (mx * md)
    return lr


@njit(cache=True)
def tt_fast_rates(cfg, ph, lrs, amax):
    """:func:`tt_fast_rate` of every layer."""
    out = np.empty(lrs.shape[0])
    for l in range(lrs.shape[0]):
        out[l] = tt_fast_rate(cfg, ph, lrs, amax, l)
    return out


@njit(cache=True)
def tt_threshold_gains(dev, cfg):
    """TTv2 / c-TTv2's threshold factor per layer with ``tt_auto_granularity`` g > 0 (aihwkit
    auto_granularity): g / (samples per sweep of the read lines = lines × transfer_every / reads
    per transfer); None when off."""
    if cfg.tt_auto_granularity <= 0.0:
        return None
    L = dev.rows.shape[0]
    out = np.empty(L)
    for l in range(L):
        lines = dev.cols[l] if cfg.tt_transfer_columns else dev.rows[l]
        out[l] = cfg.tt_auto_granularity * cfg.tt_n_reads / (lines * cfg.tt_transfer_every)
    return out


@njit(cache=True)
def write_layer(s, st, wk, flt, l, step):
    """Write ΔW_l = −η_l δ_l ã_lᵀ into layer ``l`` (float weights, or through the devices by the
    update scheme ``s.cfg.scheme``)."""
    dev = s.dev
    d = wk.D[wk.zoff[l]:wk.zoff[l] + dev.rows[l]]
    a = wk.A[wk.aoff[l]:wk.aoff[l] + dev.cols[l]]
    if flt:
        _float_update(st.W, dev, l, d, a, s.lrs[l])
    elif s.cfg.scheme == schemes.MIXED_PRECISION:
        if st.chi.shape[0] != st.g.shape[1]:
            raise ValueError("mixed-precision update without its accumulator (State.chi)")
        up, dn, nv = KS.mp_write_layer(st.g, dev, s.ph, l, d, a, s.lrs[l], st.chi, s.cfg.mp_subtract, s.cfg.seed,
                                       step, st.cnt_up, st.cnt_dn, st.t)
        st.ledger[L_PULSES_UP] += up
        st.ledger[L_PULSES_DOWN] += dn
        st.ledger[L_VERIFY_READS] += nv
    elif s.cfg.scheme == schemes.TIKI_TAKA:
        chopped = s.cfg.tt_algorithm == KS.TT_C2
        if chopped and st.chop.shape[0] != tt_chop_size(dev, s.cfg) and st.chop.shape[0] != dev.cols.sum() + \
                dev.rows.sum():
            raise ValueError("c-TTv2 update without its chopper signs (State.chop)")
        if s.cfg.tt_auto_scale:
            if st.amax.shape[0] != 2 * dev.rows.shape[0]:
                raise ValueError("tiki-taka auto-scale without its running means (State.amax)")
            _mean_of_max(st.amax, l, a, s.cfg.tt_auto_momentum)
            _mean_of_max(st.amax, dev.rows.shape[0] + l, d, s.cfg.tt_auto_momentum)
        up, dn = KS.tt_write_fast(st.g, dev, s.ph, l, d, a, tt_fast_rate(s.cfg, s.ph, s.lrs, st.amax, l), st.chop,
                                  chopped, s.cfg.seed, step, st.cnt_up, st.cnt_dn, st.t)
        st.ledger[L_PULSES_UP] += up
        st.ledger[L_PULSES_DOWN] += dn
    else:
        up, dn = K.update_layer_serial(st.g, dev, s.ph, l, d, a, s.lrs[l], s.cfg.seed, step, st.cnt_up, st.cnt_dn,
                                       st.t)
        st.ledger[L_PULSES_UP] += up
        st.ledger[L_PULSES_DOWN] += dn


@njit(cache=True)
def train_sample(s, st, wk, x, t, step, rec, record):
    """One online-SGD sample with ``s.cfg.algorithm``; returns (loss, correct) of its first forward
    pass. With ``record``, the δ each layer was written with is copied into ``rec`` (flat, zoff)."""
    dev, cfg = s.dev, s.cfg
    A, Z, D, aoff, zoff = wk.A, wk.Z, wk.D, wk.aoff, wk.zoff
    L = dev.rows.shape[0]
    alg = cfg.algorithm
    flt = is_float(alg)
    mode = cfg.derivative
    nread = 0
    nread = forward(s, st, wk, flt, x, step, nread, True)
    out_a = A[aoff[L]:aoff[L] + dev.rows[L - 1]]
    out_z = Z[zoff[L - 1]:zoff[L]]
    out_d = D[zoff[L - 1]:zoff[L]]
    loss, ok = output_error(cfg, out_a, out_z, t, out_d, mode)
    order = ORDER_OF[alg]
    if order == O_BACKPROP:
        for l in range(L - 2, -1, -1):
            nread = hidden_error(s, st, wk, flt, l, step, nread, True, mode)
        if record:
            rec[:] = D[:zoff[L]]
        for l in range(L - 1, -1, -1):
            write_layer(s, st, wk, flt, l, step)
    elif order == O_PROGRESSIVE_HELD:
        for l in range(L - 1, -1, -1):
            if l < L - 1:
                nread = hidden_error(s, st, wk, flt, l, step, nread, True, mode)
            if record:
                rec[zoff[l]:zoff[l + 1]] = D[zoff[l]:zoff[l + 1]]
            write_layer(s, st, wk, flt, l, step)
    else:  # O_PROGRESSIVE: a fresh forward pass before every layer's write
        # layers 0 … l are not written yet this sample: with noise-free reads their outputs are
        # those of the first pass, to the bit, so only layers l+1 … L-1 are evaluated again
        same = flt or s.ph.read_noise == 0.0
        for l in range(L - 1, -1, -1):
            if l < L - 1:
                nread = forward(s, st, wk, flt, x, step, nread, True, l + 1 if same else 0)
                output_error(cfg, out_a, out_z, t, out_d, mode)
                for k in range(L - 2, l - 1, -1):
                    nread = hidden_error(s, st, wk, flt, k, step, nread, True, mode)
            if record:
                rec[zoff[l]:zoff[l + 1]] = D[zoff[l]:zoff[l + 1]]
            write_layer(s, st, wk, flt, l, step)
    return loss, ok


# ------------------------------------------------------------------------------------- epochs


@njit(cache=True)
def _snapshot(g, W, flt, snaps, s):
    if flt:
        snaps[s, 0, :] = W
    else:
        snaps[s, :, :] = g


@njit(cache=True, inline="always")
def _count(ledger, up, dn, nv, slot, n):
    """Ledger of a transfer or refresh event: its pulses, verify reads and ``n`` events in ``slot``."""
    ledger[L_PULSES_UP] += up
    ledger[L_PULSES_DOWN] += dn
    ledger[L_VERIFY_READS] += nv
    ledger[slot] += n


@njit(cache=True)
def _read_cache(g, dev, ph, flt):
    """The cached read terms of ``g`` for a hardware run (``K.terms``), size 0 for a float run."""
    if flt:
        return np.zeros(0)
    return K.terms(g, dev, ph)


@njit(cache=True)
def run_epoch(g, W, dev, ph, cfg, lrs, X, T, order, step0, every, cnt_up, cnt_dn, ledger, snaps, snap_steps,
              loss0=0.0, chi=None, chop=None, amax=None):
    """Train one epoch over ``order``. Global sample counter starts at ``step0``; a snapshot of the
    conductances (float: weights) is taken after every ``every``-th global sample.
    ``loss0``: the loss sum so far, when an epoch is run as consecutive slices of its order (the sum
    then continues exactly as in one call). ``chi``: the update scheme's accumulator (State.chi;
    None: none); ``chop``: c-TTv2's chopper signs (State.chop; None: none); ``amax``: tiki-taka's
    auto-scale running means (State.amax; None: none).
    Returns (loss sum, correct, snapshots taken, bad sample index or -1)."""
    s_ = Static(dev, ph, cfg, lrs)
    if chi is None:
        ch = np.zeros(0)
    else:
        ch = chi
    if chop is None:
        cp = np.zeros(0)
    else:
        cp = chop
    if amax is None:
        am = np.zeros(0)
    else:
        am = amax
    flt = is_float(cfg.algorithm)
    st = State(g, W, cnt_up, cnt_dn, ledger, ch, cp, _read_cache(g, dev, ph, flt), am)
    thr_gain = tt_threshold_gains(dev, cfg)
    tc = st.t  # the cached read terms every transfer, refresh and drift below keeps in step
    if cfg.scheme == schemes.TIKI_TAKA and not flt and cfg.tt_algorithm != KS.TT_V1 and \
            ch.shape[0] != g.shape[1]:
        raise ValueError("TTv2 without its buffer H (chi)")
    wk = work(dev)
    rec = np.zeros(1)
    loss_sum = loss0
    correct = 0
    s = 0
    for k in range(order.shape[0]):
        i = order[k]
        step = step0 + k
        loss, ok = train_sample(s_, st, wk, X[i], T[i], step, rec, False)
        if not np.isfinite(loss):  # a non-finite weight shows up in the next sample's loss
            return loss_sum, correct, s, k
        if not flt:
            if ph.drift < 1.0:
                K.drift(g, dev, ph)
                K.sync_all(g, dev, ph, tc)
            if cfg.scheme == schemes.CARRY and (step + 1) % cfg.carry_every == 0:
                up, dn, nv = KS.carry_transfer(g, dev, ph, cfg.carry_rounds, cfg.seed, step, cnt_up, cnt_dn, tc)
                _count(ledger, up, dn, nv, L_TRANSFERS, 1)
            if cfg.scheme == schemes.TIKI_TAKA and (step + 1) % cfg.tt_transfer_every == 0:
                h_gain = None
                if cfg.tt_correct_gradient:
                    h_gain = 1.0 / tt_fast_rates(cfg, ph, lrs, am)
                up, dn, nv = KS.tt_transfer(g, dev, ph, ch, cp, cfg.tt_algorithm, cfg.tt_n_reads, lrs,
                                            cfg.tt_transfer_lr, cfg.tt_thres_scale, cfg.tt_momentum,
                                            cfg.tt_forget_buffer, cfg.tt_in_chop_prob, cfg.tt_max_steps,
                                            (step + 1) // cfg.tt_transfer_every - 1, cfg.seed, step, cnt_up, cnt_dn,
                                            tc, cfg.tt_transfer_columns, cfg.tt_random_selection,
                                            cfg.tt_in_chop_random, cfg.tt_out_chop_prob, cfg.tt_with_reset_prob,
                                            cfg.carry_rounds, h_gain, thr_gain)
                _count(ledger, up, dn, nv, L_TRANSFERS, 1)
            if cfg.refresh_margin > 0.0:
                up, dn, nv, nr = KS.refresh(g, dev, ph, cfg.refresh_margin, cfg.carry_rounds, cfg.seed, step, cnt_up,
                                            cnt_dn, tc)
                _count(ledger, up, dn, nv, L_REFRESHES, nr)
        loss_sum += loss
        correct += ok
        if (step + 1) % every == 0:
            _snapshot(g, W, flt, snaps, s)
            snap_steps[s] = step + 1
            s += 1
    if flt:  # the last sample's update has no next loss to show a non-finite weight
        for m in range(W.shape[0]):
            if not np.isfinite(W[m]):
                return loss_sum, correct, s, order.shape[0] - 1
    return loss_sum, correct, s, -1


@njit(cache=True)
def evaluate_set(g, W, dev, ph, cfg, X, T, stream, step0, pred):
    """Inference on the (noisy) hardware: mean loss and accuracy over a set; the predicted class
    of every sample goes into ``pred``."""
    s = Static(dev, ph, cfg, np.zeros(1))
    flt = is_float(cfg.algorithm)
    st = State(g, W, np.zeros((1, 1), np.int64), np.zeros((1, 1), np.int64), np.zeros(N_LEDGER, np.int64),
               np.zeros(0), np.zeros(0), _read_cache(g, dev, ph, flt), np.zeros(0))
    wk = work(dev)
    A, Z, D, aoff, zoff = wk.A, wk.Z, wk.D, wk.aoff, wk.zoff
    L = dev.rows.shape[0]
    loss_sum = 0.0
    correct = 0
    for i in range(X.shape[0]):
        forward(s, st, wk, flt, X[i], step0 + i, stream, True)
        loss, ok = output_error(cfg, A[aoff[L]:aoff[L] + dev.rows[L - 1]], Z[zoff[L - 1]:zoff[L]], T[i],
                                D[zoff[L - 1]:zoff[L]], DERIV_EXACT)
        best = 0
        for j in range(1, dev.rows[L - 1]):
            if A[aoff[L] + j] > A[aoff[L] + best]:
                best = j
        pred[i] = best
        loss_sum += loss
        correct += ok
    n = max(X.shape[0], 1)
    return loss_sum / n, correct / n


@njit(cache=True)
def ideal_errors(Wi, g, dev, ph, cfg, x, t, out):
    """Exact backprop errors of every layer for weights ``Wi`` (noise-free, exact f')."""
    s = Static(dev, ph, cfg, np.zeros(1))
    st = State(g, Wi, np.zeros((1, 1), np.int64), np.zeros((1, 1), np.int64), np.zeros(N_LEDGER, np.int64),
               np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0))  # every field: numba fills no NamedTuple defaults
    wk = work(dev)
    A, Z, tmp, aoff, zoff = wk.A, wk.Z, wk.tmp, wk.aoff, wk.zoff
    L = dev.rows.shape[0]
    forward(s, st, wk, True, x, 0, 0, False)
    output_error(cfg, A[aoff[L]:aoff[L] + dev.rows[L - 1]], Z[zoff[L - 1]:zoff[L]], t, out[zoff[L - 1]:zoff[L]], DERIV_EXACT)
    for l in range(L - 2, -1, -1):
        dn = out[zoff[l + 1]:zoff[l + 1] + dev.rows[l + 1]]
        xx = tmp[:dev.cols[l + 1]]
        _float_tr(Wi, dev, l + 1, dn, xx)
        for i in range(dev.rows[l]):
            out[zoff[l] + i] = xx[i] * _deriv(cfg.hidden, Z[zoff[l] + i], A[aoff[l + 1] + i], DERIV_EXACT)


@njit(cache=True)
def probe(g, W, dev, ph, cfg, lrs, Xp, Tp, step0, ideal, insitu, chi=None, chop=None, amax=None):
    """For each probe sample: the ideal backprop errors of the present weights (noise-free reads
    of the devices) and the errors the algorithm actually writes with in situ (noisy reads,
    through the arrays it has already updated in that sample), on a copy of the state (``chi``:
    the scheme's accumulator, ``chop``: the chopper signs, ``amax``: the auto-scale means, copied
    too)."""
    if chi is None:  # a scheme with an accumulator, probed without one: a fresh (zero) χ
        ch = np.zeros(g.shape[1]) if cfg.scheme == schemes.MIXED_PRECISION else np.zeros(0)
    else:
        ch = chi
    if chop is None:  # c-TTv2 probed without its choppers: every sign +1
        cp = np.ones(tt_chop_size(dev, cfg)) if cfg.scheme == schemes.TIKI_TAKA and cfg.tt_algorithm == KS.TT_C2 \
            else np.zeros(0)
    else:
        cp = chop
    if amax is None:  # auto-scale probed without its running means: no update seen yet
        am = np.zeros(2 * lrs.shape[0]) if cfg.scheme == schemes.TIKI_TAKA and cfg.tt_auto_scale else np.zeros(0)
    else:
        am = amax
    s = Static(dev, ph, cfg, lrs)
    wk = work(dev)
    ledger = np.zeros(N_LEDGER, np.int64)
    flt = is_float(cfg.algorithm)
    P, N = g.shape
    Wi = np.empty(N)
    for k in range(Xp.shape[0]):
        if flt:
            Wi[:] = W
        else:
            for idx in range(N):
                Wi[idx] = K.weight(g, dev, ph, idx)
        ideal_errors(Wi, g, dev, ph, cfg, Xp[k], Tp[k], ideal[k])
        gk = g.copy()
        st = State(gk, W.copy(), np.zeros((P, N), np.int64), np.zeros((P, N), np.int64), ledger, ch.copy(),
                   cp.copy(), _read_cache(gk, dev, ph, flt), am.copy())
        train_sample(s, st, wk, Xp[k], Tp[k], step0 + k, insitu[k], True)
