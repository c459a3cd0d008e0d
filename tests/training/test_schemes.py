"""Update schemes (DESIGN §1.6, issue 11): the registry and its params, the mixed-precision
kernel's algebra on any device family (readback: devices + χ hold exactly the requested sum),
its float limit on an ideal device, bounds, zero requests, the ledger against the kernel
counters, the checkpoint (resume identity) and thread-count identity."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline import config, datasets
from pipeline.crossbar import kernels as K
from pipeline.crossbar import reference as R
from pipeline.crossbar import schemes as KS
from pipeline.devices import law
from pipeline.errors import InputError
from pipeline.stages import train as train_stage
from pipeline.training import loop, run, schemes
from tests.training.test_training_algebra import IDEAL, make_net

ROOT = Path(__file__).resolve().parents[2]


def _weights(g, dev, ph):
    return np.array([K.weight(g, dev, ph, i) for i in range(g.shape[1])])


def _requests(rng, dev, layer, scale):
    d = rng.normal(size=int(dev.rows[layer]))
    a = rng.uniform(-1.0, 1.0, size=int(dev.cols[layer])) * scale
    return d, a


# ------------------------------------------------------------------------------ registry, params


def test_registry_and_params():
    assert schemes.CODES["direct"] == 0 and schemes.get("direct").digital_per_weight == 0.0
    mp = schemes.get("mixed-precision")
    assert mp.digital_per_weight == 1.0 and mp.planes == 2 and "mp_subtract" in mp.params
    for s in schemes.REGISTRY:
        for key in s.params:
            assert hasattr(config.Train(), key), f"{s.name} reads train.{key}, which params do not have"
    with pytest.raises(InputError, match="train.scheme"):
        config.with_changes(config.Params(), {"train.scheme": "bogus"})
    with pytest.raises(InputError, match="train.mp_subtract"):
        config.with_changes(config.Params(), {"train.mp_subtract": "half"})
    p = config.with_changes(config.Params(), {"train.scheme": "mixed-precision"})
    with pytest.raises(InputError, match="train.scheme"):  # manhattan imposes its own (sign) encoding
        run.make_config(p, "manhattan", 0)
    assert run.make_config(p, "progressive", 0).scheme == schemes.MIXED_PRECISION


# ------------------------------------------------------------------------- the kernel's algebra


@pytest.mark.parametrize("family", [law.SOFT_BOUNDS, law.TABLE, law.LINEAR])
def test_readback_keeps_devices_plus_accumulator_equal_to_requested_sum(family):
    """Readback subtraction: w_devices + χ = w_0 + Σ ΔW_requested to round-off, whatever the
    device does with a pulse (nonlinear step, c2c noise, measured tables, bounds)."""
    rng = np.random.default_rng(family)
    g, dev, ph = R.random_array(rng, (4, 6, 3), family=family, c2c=0.3, policy=K.POL_ALTERNATE)
    N = g.shape[1]
    w0 = _weights(g, dev, ph)
    chi = np.zeros(N)
    total = np.zeros(N)
    cu, cd = np.zeros(g.shape, np.int64), np.zeros(g.shape, np.int64)
    pulses = 0
    for step in range(40):
        for layer in (1, 0):
            d, a = _requests(rng, dev, layer, 0.05)
            o, r, c = int(dev.off[layer]), int(dev.rows[layer]), int(dev.cols[layer])
            total[o:o + r * c] += (-0.5 * np.outer(d, a)).ravel()
            before = (cu + cd).sum(axis=0)
            up, dn, nv = KS.mp_write_layer(g, dev, ph, layer, d, a, 0.5, chi, KS.MP_READBACK, 7, step, cu, cd)
            written = ((cu + cd).sum(axis=0) != before).sum()
            assert nv == 2 * written  # two verify reads per cross-point written (no stuck device here)
            pulses += up + dn
    assert pulses == cu.sum() + cd.sum() > 0
    assert np.all((g >= dev.g_min) & (g <= dev.g_max))
    np.testing.assert_allclose(_weights(g, dev, ph) + chi, w0 + total, rtol=0, atol=1e-12)


def test_nominal_on_ideal_device_is_exact_and_chi_stays_below_one_step():
    """Nominal subtraction on an ideal device (constant step = the nominal ε, no c2c, far from the
    bounds): the devices hold exactly the pulses subtracted, and |χ| < ε after every write."""
    net = make_net([3, 4, 2], spec=IDEAL)
    g, dev, ph = net.g0.copy(), net.dev, net.ph._replace(encoding=K.ENC_NEAREST)
    rng = np.random.default_rng(1)
    N = g.shape[1]
    w0 = _weights(g, dev, ph)
    chi = np.zeros(N)
    total = np.zeros(N)
    cu, cd = np.zeros(g.shape, np.int64), np.zeros(g.shape, np.int64)
    for step in range(20):
        for layer in (1, 0):
            d, a = _requests(rng, dev, layer, 1e-3)
            o, r, c = int(dev.off[layer]), int(dev.rows[layer]), int(dev.cols[layer])
            total[o:o + r * c] += (-0.3 * np.outer(d, a)).ravel()
            KS.mp_write_layer(g, dev, ph, layer, d, a, 0.3, chi, KS.MP_NOMINAL, 7, step, cu, cd)
            assert np.abs(chi).max() < max(ph.dw_pot, ph.dw_dep)
    assert cu.sum() + cd.sum() > 0
    np.testing.assert_allclose(_weights(g, dev, ph) + chi, w0 + total, rtol=0, atol=1e-9)


def test_zero_request_changes_nothing_and_bounds_hold():
    rng = np.random.default_rng(3)
    g, dev, ph = R.random_array(rng, (4, 3), c2c=0.3)
    N = g.shape[1]
    chi = rng.uniform(-0.5, 0.5, N) * ph.dw_pot  # below one step everywhere
    g1, chi1 = g.copy(), chi.copy()
    cu, cd = np.zeros(g.shape, np.int64), np.zeros(g.shape, np.int64)
    assert KS.mp_write_layer(g1, dev, ph, 0, np.zeros(3), np.ones(5), 0.3, chi1, KS.MP_READBACK, 1, 0, cu, cd) == (0, 0, 0)
    assert np.array_equal(g1, g) and np.array_equal(chi1, chi) and cu.sum() + cd.sum() == 0
    # a pair pinned at its bounds: the request is not realised and stays in χ (readback)
    g2 = g.copy()
    g2[0], g2[1] = dev.g_max[0], dev.g_min[1]
    chi2 = np.zeros(N)
    w_before = _weights(g2, dev, ph)
    ph_pot = ph._replace(policy=K.POL_POTENTIATE)  # a positive change potentiates G⁺, already at its maximum
    KS.mp_write_layer(g2, dev, ph_pot, 0, -np.ones(3), np.ones(5), 0.5, chi2, KS.MP_READBACK, 1, 0, cu, cd)
    assert cu.sum() > 0
    np.testing.assert_array_equal(_weights(g2, dev, ph), w_before)
    np.testing.assert_allclose(chi2, 0.5, rtol=0, atol=1e-15)


# ---------------------------------------------------------------------------- training, float limit


def _train(net, alg, scheme, W, X, T, steps, lrs, subtract=KS.MP_READBACK):
    cfg = loop.Config(loop.ALGORITHM_CODES[alg], loop.SIGMOID, loop.SIGMOID, loop.LOSS_MSE, loop.DERIV_EXACT, 5,
                      scheme, subtract)
    ph = net.ph._replace(encoding=K.ENC_NEAREST) if scheme == schemes.MIXED_PRECISION else net.ph
    g = net.g0.copy()
    W = W.copy()
    chi = np.zeros(g.shape[1])
    cu, cd = np.zeros(g.shape, np.int64), np.zeros(g.shape, np.int64)
    led = np.zeros(loop.N_LEDGER, np.int64)
    order = np.arange(steps, dtype=np.int64) % X.shape[0]
    loop.run_epoch(g, W, net.dev, ph, cfg, np.asarray(lrs, float), X, T, order, 0, 10**9, cu, cd, led,
                   np.zeros((1, 1, 1)), np.zeros(1, np.int64), 0.0, chi)
    return g, W, chi, cu, cd, led, ph


def float_reference(net, order):
    """12 random iris-sized samples, 36 steps: (X, T, the tile's initial weights W0, the weights the
    float algorithm of ``order`` reaches from W0) — the limit a scheme on an ideal device must follow."""
    rng = np.random.default_rng(4)
    X = rng.random((12, 4))
    T = np.eye(3)[rng.integers(0, 3, 12)]
    W0 = _weights(net.g0, net.dev, net.ph)
    flt = order + "-float" if order != "backprop" else "backprop-float"
    _, Wf, *_ = _train(net, flt, schemes.DIRECT, W0, X, T, 36, [0.5, 0.5])
    return X, T, W0, Wf


@pytest.mark.parametrize("alg", ["progressive", "backprop", "progressive-held"])
def test_mixed_precision_on_ideal_device_trains_like_float(alg):
    """Ideal device (constant step, c2c 0, d2d 0; ε = 2e-5 weight units): mixed precision with
    readback follows the float algorithm of the same order; devices + χ = float weights to O(ε),
    while the direct scheme (rounding each update) strays further."""
    net = make_net([4, 5, 3], spec=IDEAL, seed=2)
    X, T, W0, Wf = float_reference(net, alg)
    g, _, chi, cu, cd, led, ph = _train(net, alg, schemes.MIXED_PRECISION, W0, X, T, 36, [0.5, 0.5])
    wd = _weights(g, net.dev, ph)
    moved = np.abs(Wf - W0).max()
    assert moved > 0.05
    err_mp = np.abs(wd + chi - Wf).max()
    eps = max(ph.dw_pot, ph.dw_dep)
    assert err_mp < 3 * eps, (err_mp, eps)  # measured 1.0–1.7 ε after 36 samples
    assert np.abs(chi).max() < eps * (1 + 1e-9)
    # ledger = kernel counters
    assert led[loop.L_PULSES_UP] == cu.sum() and led[loop.L_PULSES_DOWN] == cd.sum()
    assert led[loop.L_VERIFY_READS] > 0 and led[loop.L_VERIFY_READS] % 2 == 0
    gd, *_ = _train(net, alg, schemes.DIRECT, W0, X, T, 36, [0.5, 0.5])
    err_direct = np.abs(_weights(gd, net.dev, net.ph) - Wf).max()
    assert err_mp < err_direct


# ------------------------------------------------------------------------- resume, thread count

# the iris experiment (sigmoid/MSE, lr 0.3; tests/conftest.py IRIS), smaller
_PARAMS = ["dataset.name=iris", "network.hidden=[4]", "network.output=sigmoid", "network.loss=mse", "train.lr=[0.3]",
           "train.epochs=3", "train.scheme=mixed-precision", "record.probes=0"]


def _iris_run(epochs_split, subtract="readback", drop_chi=False, extra=(), algorithm="progressive"):
    """Train ``algorithm`` (progressive) + mixed precision (``extra`` overrides: another scheme) on
    iris (the bundled soft-bounds device) in pieces, through a checkpoint file between pieces
    (``drop_chi``: forget χ there); returns the final state and the per-epoch ledgers."""
    from pipeline.crossbar import arrays as arr
    from pipeline.devices import spec as dspec
    import tempfile
    p = config.load(ROOT / "params.yaml", overrides=_PARAMS + [f"train.mp_subtract={subtract}", *extra])
    data = datasets.load(p.dataset)
    spec = dspec.read(ROOT / "data" / "devices" / "ecram-softbounds.yaml")
    net = arr.build(p, spec, arr.network_sizes(data.n_features, p.network.hidden, data.n_classes))
    su = run.setup(p, algorithm, 1, net, data)
    state = run.State.initial(su.net)
    first = 1
    leds = []
    with tempfile.TemporaryDirectory() as tmp:
        ck = Path(tmp) / train_stage.CHECKPOINT
        for last in epochs_split:
            for res in run.run_epochs(p, su, state, first, last):
                leds.append(res.ledger.copy())
            train_stage._save_checkpoint(ck, state, last)
            state, first = train_stage._load_checkpoint(ck)
            if drop_chi:
                state.chi[:] = 0.0
            first += 1
    return state, np.array(leds)


def digest(state, leds):
    h = hashlib.sha256()
    for a in (state.g, state.chi, state.cnt_up, state.cnt_dn, leds):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def test_resume_through_checkpoint_is_bit_identical_and_counts_match():
    whole, led_whole = _iris_run([3])
    cut, led_cut = _iris_run([1, 3])
    assert np.abs(whole.chi).max() > 0
    assert digest(whole, led_whole) == digest(cut, led_cut)
    assert led_whole[:, loop.L_PULSES_UP].sum() == whole.cnt_up.sum()
    assert led_whole[:, loop.L_PULSES_DOWN].sum() == whole.cnt_dn.sum()
    # χ is state, not scratch: a continuation that forgets it differs
    lost, led_lost = _iris_run([1, 3], drop_chi=True)
    assert digest(whole, led_whole) != digest(lost, led_lost)


def printed_with_threads(script: str, threads=(1, 2)) -> list[list[str]]:
    """Run ``script`` (python -c, repo on sys.path) once per numba thread count; the words each printed."""
    out = []
    for n in threads:
        env = dict(os.environ, NUMBA_NUM_THREADS=str(n), PYTHONPATH=str(ROOT))
        res = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True,
                             timeout=600)
        assert res.returncode == 0, res.stderr
        out.append(res.stdout.split())
    return out


def same_with_one_and_two_threads(imports: str, printed: str) -> list[str]:
    """Run ``imports`` then ``print(<printed>)`` with 1 and with 2 numba threads (subprocesses);
    assert that each ran with its thread count and that both printed the same words; return them."""
    one, two = printed_with_threads(f"import sys, numba; sys.path.insert(0, {str(ROOT)!r}); {imports}; "
                                    f"print(numba.get_num_threads(), {printed})")
    assert one[0] == "1" and two[0] == "2"
    assert one[1:] == two[1:]
    return one[1:]


def test_one_and_two_threads_bit_identical():
    same_with_one_and_two_threads("from tests.training.test_schemes import _iris_run, digest", "digest(*_iris_run([2]))")


# ------------------------------------------------------------------------------------------ carry


def _carry_net(gamma, spec=IDEAL, sizes=(3, 4, 2)):
    from pipeline.crossbar import arrays as arr
    net = make_net(list(sizes), spec=spec)
    return arr.with_carry_pair(net, gamma, 0)


@pytest.mark.parametrize("gamma", [1.0, 0.25])
def test_carry_transfer_keeps_the_weight_and_empties_the_lsb(gamma):
    """Ideal devices: a transfer moves the LSB's contribution into the MSB and leaves the weight
    unchanged to half an LSB step; the LSB keeps less than one MSB step."""
    net = _carry_net(gamma)
    g, dev, ph = net.g0.copy(), net.dev, net.ph
    w_init = _weights(g, dev, ph)
    np.testing.assert_allclose(w_init, _weights(net.g0[2:], dev._replace(coef=dev.coef[2:], ref=dev.ref[2:]), ph),
                               atol=1e-12)  # the LSB starts at zero: the initial weights are the MSB's
    cu, cd = np.zeros(g.shape, np.int64), np.zeros(g.shape, np.int64)
    assert KS.carry_transfer(g.copy(), dev, ph, 3, 1, 0, cu, cd)[:2] == (0, 0)  # nothing to carry
    rng = np.random.default_rng(2)
    d, a = _requests(rng, dev, 0, 0.2)
    K.update_layer_serial(g, dev, ph, 0, d, a, 1.0, 1, 1, cu, cd)
    K.update_layer_serial(g, dev, ph, 1, *_requests(rng, dev, 1, 0.2), 1.0, 1, 2, cu, cd)
    lsb = gamma * (g[0] - g[1]) / ph.g_scale
    assert np.abs(lsb).max() > 20 * ph.dw_pot  # the LSB holds many steps
    w_before = _weights(g, dev, ph)
    n0 = cu.sum() + cd.sum()
    up, dn, nv = KS.carry_transfer(g, dev, ph, 3, 1, 5, cu, cd)
    assert up + dn == cu.sum() + cd.sum() - n0 > 0 and nv > 0
    eps = max(ph.dw_pot, ph.dw_dep)  # an LSB step in weight units
    assert np.abs(_weights(g, dev, ph) - w_before).max() <= 0.5 * eps * (1 + 1e-9)
    assert np.abs(gamma * (g[0] - g[1]) / ph.g_scale).max() <= (0.5 / gamma + 0.5) * eps * (1 + 1e-9)
    assert np.all((g >= dev.g_min) & (g <= dev.g_max))


@pytest.mark.parametrize("alg", ["progressive", "backprop", "progressive-held"])
def test_carry_on_ideal_device_trains_like_float(alg):
    net = _carry_net(0.5, sizes=(4, 5, 3))
    X, T, W0, Wf = float_reference(net, alg)
    cfg = loop.Config(loop.ALGORITHM_CODES[alg], loop.SIGMOID, loop.SIGMOID, loop.LOSS_MSE,
                      loop.DERIV_EXACT, 5, schemes.CARRY, 0, 4, 3)
    g = net.g0.copy()
    cu, cd = np.zeros(g.shape, np.int64), np.zeros(g.shape, np.int64)
    led = np.zeros(loop.N_LEDGER, np.int64)
    loop.run_epoch(g, W0.copy(), net.dev, net.ph, cfg, np.array([0.5, 0.5]), X, T, np.arange(36) % 12, 0, 10**9,
                   cu, cd, led, np.zeros((1, 1, 1)), np.zeros(1, np.int64))
    assert led[loop.L_TRANSFERS] == 9
    assert led[loop.L_PULSES_UP] == cu.sum() and led[loop.L_PULSES_DOWN] == cd.sum()
    assert cu[2:].sum() + cd[2:].sum() > 0  # the MSB was written (by the transfers only)
    eps = max(net.ph.dw_pot, net.ph.dw_dep)
    moved = np.abs(Wf - W0).max()
    err = np.abs(_weights(g, net.dev, net.ph) - Wf).max()
    assert moved > 0.05 and err < 20 * eps, (err, eps)


def test_carry_resume_is_bit_identical():
    extra = ("train.scheme=carry", "train.carry_every=7")
    whole, led_whole = _iris_run([3], extra=extra)
    cut, led_cut = _iris_run([1, 3], extra=extra)
    assert whole.g.shape[0] == 4 and led_whole[:, loop.L_TRANSFERS].sum() == 3 * 105 // 7
    assert digest(whole, led_whole) == digest(cut, led_cut)
    assert led_whole[:, loop.L_PULSES_UP].sum() == whole.cnt_up.sum()


_CARRY = ("train.scheme=carry", "train.carry_every=3", "dataset.max_train=24")


def test_carry_one_and_two_threads_bit_identical():
    """Carry on 24 iris samples, backprop and progressive order: the full conductances of all four
    planes, counters and ledgers hash the same under 1 and 2 numba threads."""
    words = same_with_one_and_two_threads(
        "from tests.training.test_schemes import _iris_run, digest, _CARRY; from pipeline.training import loop; "
        "runs = [_iris_run([1], extra=_CARRY, algorithm=a) for a in ('backprop', 'progressive')]",
        "*(digest(s, l) for s, l in runs), *(int(l[:, loop.L_TRANSFERS].sum()) for s, l in runs), "
        "*(s.g.shape[0] for s, l in runs)")
    assert words[2:] == ["8", "8", "4", "4"]  # 24 samples, a transfer every 3; two pairs per weight
    assert words[0] != words[1]  # the two orders write differently: the hash sees the conductances


# ---------------------------------------------------------------------------------------- refresh


@pytest.mark.parametrize("policy", [K.POL_POTENTIATE, K.POL_DEPRESS, K.POL_ALTERNATE])
def test_refresh_resets_pairs_near_a_bound_by_counted_pulses_and_keeps_their_weight(policy):
    """Ideal (constant-step, noise-free) devices, no pulse cap: a pair with a device within the
    margin of a bound is reset by pulses to the policy's target (one device of the pair ends
    within a nominal step of it, the other where the weight is programmed back; alternate: the
    pair centred on the middle of its common range), every pulse
    counted; its weight is kept to the write-verify tolerance; other pairs are untouched."""
    net = make_net([3, 4, 2], spec=IDEAL)
    dev, ph = net.dev, net.ph._replace(policy=policy)
    g = net.g0.copy()
    rng_ = dev.g_max - dev.g_min
    near = np.arange(0, g.shape[1], 3)
    top = policy != K.POL_DEPRESS  # potentiate / alternate: pairs near the top; depress: near the bottom
    g[0, near] = (dev.g_max - 0.01 * rng_)[0, near] if top else (dev.g_min + 0.01 * rng_)[0, near]
    g0, w_before = g.copy(), _weights(g, dev, ph)
    cu, cd = np.zeros(g.shape, np.int64), np.zeros(g.shape, np.int64)
    x = (g - dev.g_min) / rng_
    # the bound(s) the policy writes towards; potentiate's reset target G_min never triggers a refresh
    expect = (((x > 0.95) & (policy != K.POL_DEPRESS)) | ((x < 0.05) & (policy != K.POL_POTENTIATE))).any(axis=0)
    assert expect[near].all() and not expect.all()
    assert KS.refresh(g, dev, ph, 0.0, 3, 1, 0, cu, cd) == (0, 0, 0, 0) and g.tobytes() == g0.tobytes()
    up, dn, nv, nr = KS.refresh(g, dev, ph, 0.05, 3, 1, 0, cu, cd)
    assert nr == expect.sum() and up == cu.sum() and dn == cd.sum() and up + dn > 0
    assert nv >= 4 * nr  # a read of the pair, a read of each device, a verify read
    assert (cu + cd)[:, ~expect].sum() == 0 and g[:, ~expect].tobytes() == g0[:, ~expect].tobytes()
    assert np.abs(_weights(g, dev, ph) - w_before).max() <= 0.5 * ph.dw_pot * (1 + 1e-9)
    assert ((g >= dev.g_min) & (g <= dev.g_max)).all()
    eps = ph.dw_pot * ph.g_scale  # one nominal step in S
    if policy == K.POL_POTENTIATE:
        assert cd[:, expect].min() > 0  # both devices reset by depress pulses
        off = (g - dev.g_min)[:, expect].min(axis=0)
        assert ((g - dev.g_min) / rng_)[:, expect].max() < 0.95  # the device near the top has left it
    elif policy == K.POL_DEPRESS:
        assert cu[:, expect].min() > 0
        off = (dev.g_max - g)[:, expect].min(axis=0)
        assert ((g - dev.g_min) / rng_)[:, expect].min() > 0.05
    else:
        mid = 0.5 * (dev.g_min.max(axis=0) + dev.g_max.min(axis=0))  # the pair centred there, its difference kept
        off = np.abs(g[0] + g[1] - 2 * mid)[expect] / 4  # each device within a step, then one programmed
        assert ((g - dev.g_min) / rng_)[:, expect].max() < 0.95
    assert off.max() <= eps * (1 + 1e-9)  # the policy's reset target, within a nominal step
    if policy != K.POL_ALTERNATE:  # a pair at its reset target is not refreshed again
        assert KS.refresh(g, dev, ph, 0.05, 3, 1, 1, cu, cd)[3] == 0


def test_refresh_on_nonlinear_noisy_devices_caps_pulses_and_never_moves_stuck_devices():
    """Soft-bounds devices with c2c noise, 20 % stuck, pulse cap n_max = 5: the reset stops after
    ``rounds`` bursts of at most n_max pulses per device (so a device gets at most 2·rounds·n_max,
    reset plus programming back), conductances stay within their bounds, stuck devices (and
    their pairs) never move, and the returned pulses equal the counter increments."""
    rng = np.random.default_rng(3)
    g, dev, ph = R.random_array(rng, (4, 6, 3), c2c=0.3, stuck_fraction=0.2, n_max=5, policy=K.POL_POTENTIATE)
    rng_ = dev.g_max - dev.g_min
    hot = rng.random(g.shape[1]) < 0.5
    g[0, hot] = (dev.g_max - 0.01 * rng_)[0, hot]
    g0 = g.copy()
    cu, cd = np.zeros(g.shape, np.int64), np.zeros(g.shape, np.int64)
    rounds = 3
    up, dn, nv, nr = KS.refresh(g, dev, ph, 0.05, rounds, 7, 11, cu, cd)
    assert nr > 0 and up == cu.sum() and dn == cd.sum() and dn > 0
    assert (cu + cd).max() <= 2 * rounds * ph.n_max
    assert ((g >= dev.g_min) & (g <= dev.g_max)).all()
    stuck_pair = (dev.stuck != 0).any(axis=0)
    assert stuck_pair.any() and (cu + cd)[:, stuck_pair].sum() == 0
    assert g[:, stuck_pair].tobytes() == g0[:, stuck_pair].tobytes()
    # the same call again from the same state draws the same pulses (counter-based keys)
    g2, cu2, cd2 = g0.copy(), np.zeros(g.shape, np.int64), np.zeros(g.shape, np.int64)
    assert KS.refresh(g2, dev, ph, 0.05, rounds, 7, 11, cu2, cd2) == (up, dn, nv, nr)
    assert g2.tobytes() == g.tobytes()
    # ... and another step draws other c2c noise
    g3 = g0.copy()
    KS.refresh(g3, dev, ph, 0.05, rounds, 7, 12, cu2, cd2)
    assert g3.tobytes() != g.tobytes()


def test_potentiate_policy_with_refresh_counts_and_keeps_devices_off_the_bound():
    rng = np.random.default_rng(5)
    g, dev, ph = R.random_array(rng, (4, 6, 3), c2c=0.1, policy=K.POL_POTENTIATE)
    X = rng.random((10, 4))
    T = np.eye(3)[rng.integers(0, 3, 10)]
    out = {}
    for margin in (0.0, 0.05):
        cfg = loop.Config(loop.ALGORITHM_CODES["progressive"], loop.SIGMOID, loop.SIGMOID, loop.LOSS_MSE,
                          loop.DERIV_EXACT, 5, schemes.DIRECT, 0, 1, 3, margin)
        gg = g.copy()
        cu, cd = np.zeros(g.shape, np.int64), np.zeros(g.shape, np.int64)
        led = np.zeros(loop.N_LEDGER, np.int64)
        loop.run_epoch(gg, np.zeros(g.shape[1]), dev, ph, cfg, np.array([2.0, 2.0]), X, T, np.arange(200) % 10, 0,
                       10**9, cu, cd, led, np.zeros((1, 1, 1)), np.zeros(1, np.int64))
        assert led[loop.L_PULSES_UP] == cu.sum() and led[loop.L_PULSES_DOWN] == cd.sum()
        out[margin] = (gg - dev.g_min) / (dev.g_max - dev.g_min), led
    x0, led0 = out[0.0]
    x1, led1 = out[0.05]
    assert led0[loop.L_REFRESHES] == 0 and led1[loop.L_REFRESHES] > 0
    assert (x0 > 0.95).mean() > 0.2  # without refresh the potentiate policy drives pairs to the top
    assert (x1 > 0.95).mean() < (x0 > 0.95).mean() / 2


_REFRESH = ("train.scheme=direct", "array.policy=potentiate", "train.refresh_margin=0.1", "dataset.max_train=40")


def test_refresh_one_and_two_threads_bit_identical():
    """Direct writes under the potentiate policy with pulse refresh on 40 iris samples: conductances,
    counters and ledgers hash the same under 1 and 2 numba threads, and refreshes happened."""
    words = same_with_one_and_two_threads(
        "from tests.training.test_schemes import _iris_run, digest, _REFRESH; from pipeline.training import loop; "
        "s, l = _iris_run([1], extra=_REFRESH)",
        "digest(s, l), int(l[:, loop.L_REFRESHES].sum()), int(l[:, loop.L_PULSES_DOWN].sum() == s.cnt_dn.sum())")
    assert int(words[1]) > 0 and words[2] == "1"
