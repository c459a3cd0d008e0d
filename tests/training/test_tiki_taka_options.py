"""Tiki-Taka options of aihwkit's TransferCompound / ChoppedTransferCompound (issue 11):
``tt_transfer_columns`` (row transfers are the column transfers of the transposed layer),
``tt_random_selection`` (covers every line, deterministic for a seed), ``tt_in_chop_random``
(regular flips every p-th read of a line), ``tt_out_chop_prob`` (the update's sign and the read's
undo each other; flips after the last line's read), ``tt_with_reset_prob`` (TTv1: A's read line
programmed back to zero, counted), the storage ledger, the float-run ignores derived from the
registry, bad values refused (also of the auto-scale options), resume and 1 vs 2 threads with out-choppers."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline import config
from pipeline.crossbar import kernels as K
from pipeline.crossbar import schemes as KS
from pipeline.sweep import spec as sweep_spec
from pipeline.training import loop, schemes
from tests.training.test_schemes import _iris_run, digest, same_with_one_and_two_threads
from tests.training.test_tiki_taka import _A, _C, _fill_A, _tt_net, _zeros


def _transfer(net, g, H, chop, alg, *, n_reads=1, lt=1.0, thres=1.0, chop_prob=0.0, event=0, step=0, ph=None,
              columns=True, random_sel=False, in_chop_random=True, out_chop_prob=0.0, reset_prob=0.0, rounds=3,
              max_steps=10**6, t=None):
    """One transfer event with every option given (``t``: the cached read terms, kept in step)."""
    cu, cd = _zeros(g)
    L = net.dev.rows.shape[0]
    out = KS.tt_transfer(g, net.dev, net.ph if ph is None else ph, H, chop, alg, n_reads, np.full(L, lt), 1.0, thres,
                         0.0, False, chop_prob, max_steps, event, 7, step, cu, cd, t, columns, random_sel,
                         in_chop_random, out_chop_prob, reset_prob, rounds)
    return out, cu, cd


def _signs(net):
    return np.ones(int(net.dev.cols.sum() + net.dev.rows.sum()))


# ------------------------------------------------------------------------------ rows = transposed


@pytest.mark.parametrize("alg", [KS.TT_V1, KS.TT_V2, KS.TT_C2])
def test_row_transfer_is_the_column_transfer_of_the_transposed_layer(alg):
    """One layer 5×4 (3 inputs + bias → 5) read by rows against the layer 4×5 (4 inputs + bias →
    4) holding its transpose, read by columns (ideal identical devices, nearest rounding, no read
    noise): the same C, H, pulses, reads and chopper signs, transposed (c-TTv2: the row signs of
    the one are the column signs of the other; in- and out-choppers both flip, probability 1)."""
    net1 = _tt_net(0.0, sizes=(3, 5), zero_shift=False)
    net2 = _tt_net(0.0, sizes=(4, 4), zero_shift=False)
    assert (int(net1.dev.rows[0]), int(net1.dev.cols[0])) == (int(net2.dev.cols[0]), int(net2.dev.rows[0])) == (5, 4)
    ph = net1.ph._replace(encoding=K.ENC_NEAREST)
    assert (net2.ph.g_scale, net2.ph.dw_pot, net2.ph.read_noise) == (ph.g_scale, ph.dw_pot, 0.0)
    g1 = net1.g0.copy()
    _fill_A(net1, g1, np.random.default_rng(11), scale=0.05)
    perm = np.arange(20).reshape(5, 4).T.ravel()  # net2 cross-point (i, j) = net1 cross-point (j, i)
    g2 = np.ascontiguousarray(g1[:, perm])
    rng = np.random.default_rng(12)
    H1 = rng.uniform(-0.5, 0.5, 20) * ph.dw_pot
    H2 = H1[perm].copy()
    c1 = np.where(rng.random(9) < 0.5, -1.0, 1.0)  # net1: 4 column signs, then 5 row signs
    c2 = np.concatenate([c1[4:], c1[:4]])  # net2: its 5 column signs are net1's row signs
    c1_0, c2_0 = c1.copy(), c2.copy()
    prob = 1.0 if alg == KS.TT_C2 else 0.0
    (o1, cu1, cd1) = _transfer(net1, g1, H1, c1, alg, n_reads=5, lt=3.0, ph=ph, columns=False, chop_prob=prob,
                               out_chop_prob=prob)
    (o2, cu2, cd2) = _transfer(net2, g2, H2, c2, alg, n_reads=5, lt=3.0, ph=ph, columns=True, chop_prob=prob,
                               out_chop_prob=prob)
    assert o1 == o2 and o1[0] + o1[1] > 0 and o1[2] == 20
    np.testing.assert_array_equal(g1[:, perm], g2)
    np.testing.assert_array_equal(cu1[:, perm], cu2)
    np.testing.assert_array_equal(cd1[:, perm], cd2)
    np.testing.assert_array_equal(H1[perm], H2)
    np.testing.assert_array_equal(np.concatenate([c1[4:], c1[:4]]), c2)
    if alg == KS.TT_C2:  # every sign flipped once: the read line's (in) and, after the last line, the other axis' (out)
        np.testing.assert_array_equal(c1, -c1_0)
        np.testing.assert_array_equal(c2, -c2_0)
    # a row read moves C's rows: one event reading row 2 only touches C's row 2
    g = net1.g0.copy()
    _fill_A(net1, g, np.random.default_rng(11), scale=0.05)
    C0 = _C(g, ph).reshape(5, 4)
    _transfer(net1, g, np.zeros(20), _signs(net1), KS.TT_V1, n_reads=1, lt=3.0, ph=ph, columns=False, event=2)
    moved = (_C(g, ph).reshape(5, 4) != C0).any(axis=1)
    assert moved[2] and moved.sum() == 1


# --------------------------------------------------------------------------------- random selection


def test_random_selection_covers_every_line_and_is_deterministic():
    """Random first line per layer and event (keyed on seed and step): over 60 events every column
    of each layer is read, about uniformly, the same for the same key and not the in-turn order."""
    net = _tt_net(0.0, sizes=(4, 5, 3), zero_shift=False)
    g = net.g0.copy()
    _fill_A(net, g, np.random.default_rng(2), scale=0.05)
    N = g.shape[1]
    dev = net.dev
    seen = [[], []]
    for step in range(60):
        for rep in range(2):
            H = np.zeros(N)
            (up, dn, nr), _, _ = _transfer(net, g.copy(), H, np.zeros(0), KS.TT_V2, thres=1e9, event=0, step=step,
                                           random_sel=True)
            assert nr == int(dev.rows.sum())  # one line per layer
            cols = []
            for l in range(2):
                o, r, c = int(dev.off[l]), int(dev.rows[l]), int(dev.cols[l])
                hit = np.flatnonzero(np.abs(H[o:o + r * c].reshape(r, c)).sum(axis=0) > 0)
                assert len(hit) == 1
                cols.append(int(hit[0]))
            if rep == 0:
                for l in range(2):
                    seen[l].append(cols[l])
            else:
                assert cols == [seen[0][-1], seen[1][-1]]  # the same key draws the same line
    for l, c in enumerate((5, 6)):
        counts = np.bincount(seen[l], minlength=c)
        assert (counts > 0).all() and counts.max() < 30, counts
    assert set(seen[0]) != {0}  # event 0 in turn would always read column 0


# -------------------------------------------------------------------------------------- choppers


@pytest.mark.parametrize("prob,period", [(0.25, 4), (0.3, 4), (0.6, 2), (1.0, 2)])
def test_regular_in_chopper_flips_exactly_every_p_reads(prob, period):
    """``in_chop_random`` false: a line read in turn flips after every p-th read of it,
    p = max(ceil(1/in_chop_prob), 2) (aihwkit's counter of full sweeps), whatever the key."""
    net = _tt_net(0.0, sizes=(4, 5, 3), zero_shift=False)
    g = net.g0.copy()
    chop = _signs(net)
    ncol = 5  # layer 0's columns (the layer with 5 input lines: 4 inputs + bias)
    history = []
    for event in range(ncol * 3 * period):
        _transfer(net, g, np.zeros(g.shape[1]), chop, KS.TT_C2, n_reads=1, chop_prob=prob, event=event, step=event,
                  in_chop_random=False)
        history.append(chop[:ncol].copy())
    history = np.array(history)
    for j in range(ncol):
        reads_of_j = np.arange(j, len(history), ncol)  # events reading column j
        flips = np.flatnonzero(np.diff(np.concatenate([[1.0], history[:, j]])) != 0)
        np.testing.assert_array_equal(flips, reads_of_j[period - 1::period])
    assert (chop[ncol + 6:] == 1).all()  # no out-choppers asked: the row signs never move


def test_out_chopper_sign_of_update_and_read_undo_each_other():
    """c-TTv2 with fixed in- and out-chopper signs (flip probabilities 0), ideal linear device,
    nearest rounding, γ = 0: A holds r_i·c_j·A_ij and the read multiplies it back, so twenty
    steps of writes and transfers give TTv2's C and H to round-off, by columns and by rows."""
    net = _tt_net(0.0, sizes=(4, 4, 2), zero_shift=False)
    ph = net.ph._replace(encoding=K.ENC_NEAREST)
    dev = net.dev
    rng = np.random.default_rng(21)
    signs = np.where(rng.random(int(dev.cols.sum() + dev.rows.sum())) < 0.5, -1.0, 1.0)
    assert (signs[:int(dev.cols.sum())] == -1).any() and (signs[int(dev.cols.sum()):] == -1).any()
    for columns in (True, False):
        out = []
        for alg, chop in ((KS.TT_V2, np.zeros(0)), (KS.TT_C2, signs.copy())):
            g = net.g0.copy()
            H = np.zeros(g.shape[1])
            r2 = np.random.default_rng(22)
            for step in range(20):
                cu, cd = _zeros(g)
                for layer in (1, 0):
                    d = r2.normal(size=int(dev.rows[layer]))
                    a = r2.uniform(-1, 1, int(dev.cols[layer]))
                    KS.tt_write_fast(g, dev, ph, layer, d, a, 0.01, chop, alg == KS.TT_C2, 1, step, cu, cd)
                _transfer(net, g, H, chop, alg, n_reads=2, lt=2.0, event=step, step=step, ph=ph, columns=columns,
                          out_chop_prob=0.0)
            out.append((g, H, _A(g, dev, ph)))
        (g0, H0, A0), (g1, H1, A1) = out
        assert np.abs(_C(g0, ph) - _C(net.g0, ph)).max() > 0  # C moved
        np.testing.assert_allclose(_C(g1, ph), _C(g0, ph), rtol=0, atol=1e-12)
        np.testing.assert_allclose(H1, H0, rtol=0, atol=1e-15)
        s = np.concatenate([np.outer(signs[int(dev.cols.sum()) + int(dev.rows[:l].sum()):][:int(dev.rows[l])],
                                     signs[int(dev.cols[:l].sum()):][:int(dev.cols[l])]).ravel() for l in range(2)])
        np.testing.assert_allclose(A1, s * A0, rtol=0, atol=1e-12)  # A holds the chopped gradient


def test_out_choppers_flip_after_the_last_line_only():
    """Out-chopper flips (probability 1) happen after the read of a layer's last line: reading
    columns 0–1 leaves the row signs, reading the last column flips every row sign of that layer;
    probability 0.5 flips some, the same for the same key; without row signs they are refused."""
    net = _tt_net(0.0, sizes=(4, 5, 3), zero_shift=False)
    g = net.g0.copy()
    nc = int(net.dev.cols.sum())
    chop = _signs(net)
    _transfer(net, g, np.zeros(g.shape[1]), chop, KS.TT_C2, n_reads=2, event=0, out_chop_prob=1.0)
    assert (chop == 1).all()
    _transfer(net, g, np.zeros(g.shape[1]), chop, KS.TT_C2, n_reads=1, event=4, out_chop_prob=1.0)  # layer 0: col 4
    assert (chop[nc:nc + 5] == -1).all() and (chop[nc + 5:] == 1).all() and (chop[:nc] == 1).all()
    flips = []
    for _ in range(2):
        c = _signs(net)
        _transfer(net, g, np.zeros(g.shape[1]), c, KS.TT_C2, n_reads=6, event=0, step=3, out_chop_prob=0.5)
        flips.append(c)
    np.testing.assert_array_equal(flips[0], flips[1])
    assert 0 < (flips[0][nc:] == -1).sum() < 8
    with pytest.raises(ValueError, match="row signs"):
        _transfer(net, g, np.zeros(g.shape[1]), np.ones(nc), KS.TT_C2, out_chop_prob=0.5)


# ----------------------------------------------------------------------------------- TTv1 reset


def test_ttv1_reset_programs_the_read_line_of_A_to_zero():
    """with_reset_prob 1: after an event every read column of A is back at zero within half a
    step (write-verify through the device law), C got A's read, the other columns of A are kept;
    the reset pulses are counted on A's planes; probability 0 changes nothing (γ = 0.5: the reset
    moves the forward weight, so the cached read terms must follow it)."""
    net = _tt_net(0.5, sizes=(4, 4, 2), zero_shift=False)
    ph = net.ph._replace(encoding=K.ENC_NEAREST)
    dev = net.dev
    g = net.g0.copy()
    _fill_A(net, g, np.random.default_rng(31), scale=0.05)
    A0, C0 = _A(g, dev, ph), _C(g, ph)
    gk = g.copy()
    (up, dn, nr), cu, cd = _transfer(net, g, np.zeros(0), np.zeros(0), KS.TT_V1, n_reads=2, ph=ph, reset_prob=1.0)
    read, read2 = np.zeros(g.shape[1], bool), np.zeros(g.shape[1], bool)
    for l in range(2):
        o, r, c = int(dev.off[l]), int(dev.rows[l]), int(dev.cols[l])
        m = np.zeros((r, c), bool)
        m[:, :2] = True
        read[o:o + r * c] = m.ravel()
        read2[o:o + r * c] = np.roll(m, 2, axis=1).ravel()  # event 1: columns 2 and 3
    A1 = _A(g, dev, ph)
    assert np.abs(A0[read]).max() > 10 * ph.dw_pot
    assert np.abs(A1[read]).max() <= 0.5 * ph.dw_pot * (1 + 1e-9)
    np.testing.assert_array_equal(A1[~read], A0[~read])
    assert np.abs(_C(g, ph) - C0 - np.where(read, A0, 0.0)).max() <= 0.5 * ph.dw_pot * (1 + 1e-9)
    assert up + dn == cu.sum() + cd.sum() and cu[:2].sum() + cd[:2].sum() > 0
    assert nr > read.sum()  # the transfer reads plus the verify reads of the reset
    (up0, dn0, nr0), _, _ = _transfer(net, gk, np.zeros(0), np.zeros(0), KS.TT_V1, n_reads=2, ph=ph, reset_prob=0.0)
    assert nr0 == read.sum() and np.array_equal(_A(gk, dev, ph), A0)
    # the cached read terms follow the reset's writes
    t = K.terms(g, dev, ph)
    _transfer(net, g, np.zeros(0), np.zeros(0), KS.TT_V1, n_reads=2, event=1, ph=ph, reset_prob=1.0, t=t)
    assert np.abs(A0[read2]).max() > 10 * ph.dw_pot
    assert np.abs(_A(g, dev, ph)[read | read2]).max() <= 0.5 * ph.dw_pot * (1 + 1e-9)
    assert t.tobytes() == K.terms(g, dev, ph).tobytes()


def test_training_with_reset_counts_every_pulse_and_read():
    """run_epoch, TTv1 with resets and row transfers from random lines: the ledger equals the
    kernel counters; transfers are counted; conductances stay in bounds."""
    net = _tt_net(0.0, sizes=(4, 5, 3))
    rng = np.random.default_rng(4)
    X = rng.random((12, 4))
    T = np.eye(3)[rng.integers(0, 3, 12)]
    cfg = loop.Config(loop.ALGORITHM_CODES["progressive"], loop.SIGMOID, loop.SIGMOID, loop.LOSS_MSE,
                      loop.DERIV_EXACT, 5, schemes.TIKI_TAKA, carry_rounds=3, tt_algorithm=KS.TT_V1,
                      tt_transfer_every=3, tt_n_reads=2, tt_transfer_lr=50.0, tt_transfer_columns=False,
                      tt_random_selection=True, tt_with_reset_prob=0.5)
    g = net.g0.copy()
    cu, cd = _zeros(g)
    led = np.zeros(loop.N_LEDGER, np.int64)
    loop.run_epoch(g, net.weights0(), net.dev, net.ph, cfg, np.array([2.0, 2.0]), X, T, np.arange(36) % 12, 0,
                   10**9, cu, cd, led, np.zeros((1, 1, 1)), np.zeros(1, np.int64), 0.0, np.zeros(g.shape[1]),
                   _signs(net))
    assert led[loop.L_TRANSFERS] == 12
    assert led[loop.L_VERIFY_READS] > 12 * 2 * (5 + 6)  # row reads (5 and 6 columns) plus verify reads
    assert led[loop.L_PULSES_UP] == cu.sum() and led[loop.L_PULSES_DOWN] == cd.sum()
    assert cu[2:].sum() + cd[2:].sum() > 0
    assert np.all((g >= net.dev.g_min) & (g <= net.dev.g_max))


# --------------------------------------------------------------------------- storage, params, sweeps


def test_storage_of_the_choppers_and_float_ignores():
    sizes = [4, 8, 3]
    cols, rows = 5 + 9, 8 + 3
    W = 5 * 8 + 9 * 3
    t = config.with_changes(config.Train(), {"tt_zero_shift": False, "tt_algorithm": "c-ttv2", "tt_auto_scale": False})
    dpw = schemes.digital_per_weight
    assert dpw("tiki-taka", t, sizes) == pytest.approx(1.0 + cols / W)
    assert dpw("tiki-taka", config.with_changes(t, {"tt_transfer_columns": False}), sizes) == pytest.approx(1 + rows / W)
    assert dpw("tiki-taka", config.with_changes(t, {"tt_out_chop_prob": 0.1}), sizes) == \
        pytest.approx(1.0 + (cols + rows) / W)
    # out-choppers are c-TTv2 state only; TTv1 holds nothing whatever the options
    assert dpw("tiki-taka", config.with_changes(t, {"tt_algorithm": "ttv1", "tt_out_chop_prob": 0.1,
                                                    "tt_with_reset_prob": 0.5}), sizes) == 0.0
    for s in schemes.REGISTRY:
        for k in s.params:
            assert hasattr(config.Train(), k) and f"train.{k}" in sweep_spec.FLOAT_IGNORES, (s.name, k)
    for k in ("train.lr", "train.epochs", "train.seeds"):
        assert k not in sweep_spec.FLOAT_IGNORES


@pytest.mark.parametrize("key,value", [("tt_out_chop_prob", "1.5"), ("tt_with_reset_prob", "-0.1"),
                                       ("tt_transfer_columns", "2"), ("tt_random_selection", "maybe"),
                                       ("tt_in_chop_random", "0.5"), ("tt_auto_momentum", "1.0"),
                                       ("tt_auto_granularity", "-1.0"), ("tt_auto_scale", "0.5"),
                                       ("tt_scale_fast_lr", "maybe"), ("tt_correct_gradient_magnitudes", "2")])
def test_bad_values_are_refused_in_one_line(tmp_path, key, value):
    from conftest import ROOT, run_cli  # (not at the top: the threads test imports this module in a subprocess)
    (tmp_path / "params.yaml").write_text(f"train:\n  {key}: {value}\n")
    code, text = run_cli(["train", "-a", "progressive", "--params", str(tmp_path / "params.yaml"), "--out",
                          str(tmp_path / "run")], cwd=ROOT)
    lines = [ln for ln in text.strip().splitlines() if ln]
    assert code == 2 and len(lines) == 1 and f"train.{key}" in lines[0] and "Traceback" not in text
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------- resume, threads (iris)


_TT_OPTS = ("train.scheme=tiki-taka", "train.tt_algorithm=c-ttv2", "train.tt_zero_shift=true",
            "train.zero_shift_cycles=50", "train.tt_transfer_every=2", "train.tt_in_chop_prob=0.3",
            "train.tt_in_chop_random=false", "train.tt_out_chop_prob=0.3", "train.tt_random_selection=true",
            "train.tt_transfer_columns=false")


def test_resume_with_out_choppers_is_bit_identical():
    whole, led_whole = _iris_run([3], extra=_TT_OPTS)
    cut, led_cut = _iris_run([1, 3], extra=_TT_OPTS)
    nc = int(whole.chop.shape[0]) - 8 - 3  # iris 4-8-3: rows 8 + 3 after the column signs
    assert (whole.chop[nc:] == -1).any() and (whole.chop[:nc] == -1).any() and np.abs(whole.chi).max() > 0
    assert digest(whole, led_whole) == digest(cut, led_cut)
    np.testing.assert_array_equal(whole.chop, cut.chop)
    np.testing.assert_array_equal(whole.chi, cut.chi)
    assert led_whole[:, loop.L_PULSES_UP].sum() == whole.cnt_up.sum()


def test_new_options_one_and_two_threads_bit_identical():
    same_with_one_and_two_threads(
        "import hashlib; from tests.training.test_schemes import _iris_run, digest; "
        "from tests.training.test_tiki_taka_options import _TT_OPTS; s, l = _iris_run([2], extra=_TT_OPTS)",
        "digest(s, l), hashlib.sha256(s.chop.tobytes()).hexdigest()")


def test_run_store_holds_the_out_chopper_signs(tmp_path):
    """The train stage with c-TTv2 reading rows with out-choppers writes both sign vectors of every
    layer (``chop_rows_<l>``: the in-choppers, ``chop_<l>``: the out-choppers) and the storage
    figure that counts them."""
    from conftest import ROOT, iris_yaml, run_cli
    from pipeline import store

    (tmp_path / "params.yaml").write_text(iris_yaml("""
network: {hidden: [6]}
dataset: {name: iris}
train: {epochs: 1, lr: [0.3], scheme: tiki-taka, tt_algorithm: c-ttv2, tt_transfer_columns: false,
        tt_out_chop_prob: 0.5, tt_in_chop_prob: 0.5, tt_zero_shift: false}
record: {every: 50, probes: 0}
"""))
    dev = ROOT / "data" / "devices" / "ecram-softbounds.yaml"
    code, out = run_cli(["array", "init", "--device", str(dev), "--params", str(tmp_path / "params.yaml"),
                         "--out", str(tmp_path / "arrays.zarr")])
    assert code == 0, out
    code, out = run_cli(["train", "-a", "progressive", "--seed", "0", "--arrays", str(tmp_path / "arrays.zarr"),
                         "--params", str(tmp_path / "params.yaml"), "--out", str(tmp_path / "run")])
    assert code == 0, out
    ds = store.open_dataset(tmp_path / "run" / "run.zarr")
    rows, cols = (6, 3), (5, 7)  # iris 4-6-3
    for l in range(2):
        assert ds[f"chop_rows_{l}"].shape == (rows[l],) and ds[f"chop_{l}"].shape == (cols[l],)
        assert set(np.unique(ds[f"chop_rows_{l}"].values)) <= {-1.0, 1.0}
    assert (np.concatenate([ds[f"chop_rows_{l}"].values for l in range(2)]) == -1).any()
    assert (np.concatenate([ds[f"chop_{l}"].values for l in range(2)]) == -1).any()
    W = 5 * 6 + 7 * 3
    assert ds.attrs["scheme_digital_per_weight"] == pytest.approx(1.0 + (9 + 12) / W + 2 * 2 / W)  # + m_x, m_d
