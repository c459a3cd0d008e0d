"""Why `direct` writes on the fitted ENODe devices fall short of float (issue 11, mechanism kept as
a test): every pulse carries a small pull toward its device's symmetry point, so direct writes act
on the weights as float SGD plus a decay ΔW −= k·|ΔW_req|·(W − w_sp) toward each pair's symmetry
point w_sp, with k from the law's up/down asymmetry. Float SGD with exactly that decay, derived
here from the fitted law and the drawn devices (no fitting to the training result), reproduces the
device result; float SGD without it does not."""

import numpy as np

from conftest import iris_overrides
from pipeline import config, datasets
from pipeline.crossbar import arrays
from pipeline.devices import spec as dspec
from pipeline.training import run as R

# the population fitted to data/enode/multi (results/device/device.yaml of the default params)
FITTED = {"model": "power", "source": "data/enode/multi", "c2c_std": 0.0379254,
          "population": {"g_min_S": {"mean": 0.0215529, "std": 0.00090832}, "g_max_S": {"mean": 0.0290514, "std": 0.00279215},
                         "dg_up_S": {"mean": 2.30467e-05, "std": 2.33241e-06},
                         "dg_down_S": {"mean": 1.58349e-05, "std": 1.38755e-06},
                         "gamma_up": {"mean": 0.9412, "std": 0.0852596}, "gamma_down": {"mean": 0.0963288, "std": 0.0209797}}}
SEEDS = range(5)


def symmetry_decay(net):
    """Per weight (flat): the pair's symmetry point w_sp and the decay rate k of the power law.

    A device at x gets up and down pulses alike on average; its mean step per pulse is
    ½(s_up(x)·dg_up − s_down(x)·dg_down) ≈ −½·S·(x − x*), zero at the symmetry point x*
    (dg_up(1−x*)^γu = dg_down·x*^γd), S = γu·dg_up(1−x*)^(γu−1) + γd·dg_down·x*^(γd−1). A request
    |ΔW| is n = |ΔW|/dw_nominal pulses, half on each device of the pair, so
    Δ(W − w_sp) = −k·|ΔW|·(W − w_sp) with k = S / (4·range·dw_nominal), averaged over the pair."""
    d, ph = net.dev, net.ph
    lo, hi = np.zeros_like(d.g_min), np.ones_like(d.g_min)
    f = lambda x: d.dg_up * (1 - x) ** d.gamma_up - d.dg_down * x ** d.gamma_down  # noqa: E731  decreasing in x
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        up = f(mid) > 0
        lo, hi = np.where(up, mid, lo), np.where(up, hi, mid)
    xs = 0.5 * (lo + hi)
    rng_ = d.g_max - d.g_min
    S = d.gamma_up * d.dg_up * (1 - xs) ** (d.gamma_up - 1) + d.gamma_down * d.dg_down * xs ** (d.gamma_down - 1)
    dw_nom = 0.5 * (ph.dw_pot + ph.dw_dep)
    k_dev = S / (4 * rng_ * dw_nom)
    g_sp = d.g_min + xs * rng_
    return (g_sp[0] - g_sp[1]) / ph.g_scale, 0.5 * (k_dev[0] + k_dev[1])


def _sig(z):
    return 1.0 / (1.0 + np.exp(-z))


def float_progressive(net, W0, data, T, seed, epochs, lr, w_sp=None, k=None):
    """The progressive order in float64 (sigmoid, MSE, online), optionally with the decay."""
    Ws = [arrays.layer_block(W0, net.dev, l).copy() for l in range(net.n_layers)]
    sp = [arrays.layer_block(w_sp, net.dev, l) for l in range(net.n_layers)] if w_sp is not None else None
    kk = [arrays.layer_block(k, net.dev, l) for l in range(net.n_layers)] if k is not None else None
    L = len(Ws)
    X = data.x_train
    loss = 0.0
    for epoch in range(1, epochs + 1):
        loss = 0.0
        for i in R.epoch_order(seed, epoch, len(X)):
            for l in range(L - 1, -1, -1):
                a = [np.append(X[i], 1.0)]
                for m in range(L):
                    h = _sig(Ws[m] @ a[-1])
                    a.append(np.append(h, 1.0) if m < L - 1 else h)
                out = a[-1]
                if l == L - 1:
                    loss += 0.5 * np.sum((out - T[i]) ** 2)
                d = (out - T[i]) * out * (1 - out)
                for m in range(L - 1, l, -1):
                    h = a[m][:-1]
                    d = (Ws[m].T @ d)[:-1] * h * (1 - h)
                dW = -lr * np.outer(d, a[l])
                if sp is not None:
                    dW -= kk[l] * np.abs(dW) * (Ws[l] + dW - sp[l])
                Ws[l] += dW
    Xt = np.hstack([data.x_test, np.ones((len(data.x_test), 1))])
    h = Xt
    for m in range(L):
        h = _sig(h @ Ws[m].T)
        if m < L - 1:
            h = np.hstack([h, np.ones((len(h), 1))])
    return float(np.mean(h.argmax(1) == data.y_test)), loss / len(X), np.concatenate([w.ravel() for w in Ws])


def test_float_sgd_with_the_symmetry_point_decay_reproduces_direct_device_training():
    spec = dspec.from_dict(FITTED)
    base = config.read_yaml("params.yaml")
    dev_r, dec_r, flt_r, ks = [], [], [], []
    for s in SEEDS:
        p = config._build_top(config.apply_overrides(base, iris_overrides(f"base.seed={s}")), "params.yaml")  # iris 4-8-3
        data = datasets.load(p.dataset)
        net = arrays.build(p, spec, arrays.network_sizes(data.n_features, p.network.hidden, data.n_classes))
        su = R.setup(p, "progressive", s, net, data)
        st = R.State.initial(net)
        for res in R.run_epochs(p, su, st, 1, p.train.epochs):
            pass
        dev_r.append((res.metrics["test_acc"], res.metrics["train_loss"]))
        w_sp, k = symmetry_decay(net)
        ks.append(np.mean(k))
        W0 = net.weights0()
        lr = p.train.lr[0]
        dec_r.append(float_progressive(net, W0, data, su.T_train, s, p.train.epochs, lr, w_sp, k)[:2])
        sf = R.setup(p, "progressive-float", s, net, data)  # the same float SGD without the decay
        st = R.State.initial(net)
        for res in R.run_epochs(p, sf, st, 1, p.train.epochs):
            pass
        flt_r.append((res.metrics["test_acc"], res.metrics["train_loss"]))
        if s == 0:  # the NumPy loop above is the kernels' progressive-float order, to round-off
            W1 = float_progressive(net, W0, data, su.T_train, s, 1, lr)[2]
            st1 = R.State.initial(net)
            next(R.run_epochs(p, sf, st1, 1, 1))
            np.testing.assert_allclose(W1, st1.W, rtol=0, atol=1e-9)
    dev_r, dec_r, flt_r = np.array(dev_r), np.array(dec_r), np.array(flt_r)
    # measured (5 seeds): k 0.18; device 0.907 ± 0.067 (loss 0.143), float + decay 0.916 ± 0.062
    # (loss 0.147), float 0.960 ± 0.026 (loss 0.102)
    assert 0.05 < np.mean(ks) < 0.3  # k ≈ 2.07 / (4·w_max) ≈ 0.13 on the fitted population
    spread = max(dev_r[:, 0].std(), dec_r[:, 0].std())
    assert abs(dec_r[:, 0].mean() - dev_r[:, 0].mean()) <= spread  # accuracy within the seed spread
    # the training loss: the decay accounts for most of the gap between float and the devices
    gap = flt_r[:, 1].mean() - dev_r[:, 1].mean()
    assert abs(dec_r[:, 1].mean() - dev_r[:, 1].mean()) < 0.3 * abs(gap)
