"""Neurons of the jitted loop: activation functions, their derivatives (exact, or the
piecewise-constant slope of a simple analog circuit) and the output error of each loss.

Codes: activations ``SIGMOID … SOFTMAX`` (``ACTIVATION_CODES`` by name), losses ``LOSS_MSE`` /
``LOSS_CE``, derivative modes ``DERIV_EXACT`` / ``DERIV_HARDWARE``. ``cfg`` is
:class:`pipeline.training.loop.Config`.
"""

from __future__ import annotations

import numpy as np
from numba import njit

SIGMOID, TANH, RELU, HARD_SIGMOID, IDENTITY, SOFTMAX = range(6)
ACTIVATION_CODES = {"sigmoid": SIGMOID, "tanh": TANH, "relu": RELU, "hard-sigmoid": HARD_SIGMOID,
                    "identity": IDENTITY, "softmax": SOFTMAX}
LOSS_MSE, LOSS_CE = 0, 1
DERIV_EXACT, DERIV_HARDWARE = 0, 1


@njit(cache=True, inline="always")
def _act(code, z):
    if code == SIGMOID:
        return 1.0 / (1.0 + np.exp(-z))
    if code == TANH:
        return np.tanh(z)
    if code == RELU:
        return z if z > 0.0 else 0.0
    if code == HARD_SIGMOID:
        return min(max(0.2 * z + 0.5, 0.0), 1.0)
    return z  # IDENTITY (softmax handled per vector)


@njit(cache=True, inline="always")
def _deriv(code, z, a, mode):
    """f'(z) given a = f(z); ``mode`` DERIV_HARDWARE gives a piecewise-constant approximation
    (what a simple analog derivative circuit provides: the slope inside the linear region)."""
    if mode == DERIV_HARDWARE:
        if code == SIGMOID:
            return 0.25 if abs(z) < 2.0 else 0.025
        if code == TANH:
            return 1.0 if abs(z) < 1.0 else 0.1
    if code == SIGMOID:
        return a * (1.0 - a)
    if code == TANH:
        return 1.0 - a * a
    if code == RELU:
        return 1.0 if z > 0.0 else 0.0
    if code == HARD_SIGMOID:
        return 0.2 if -2.5 < z < 2.5 else 0.0
    return 1.0


@njit(cache=True)
def _activate(code, z, out):
    n = z.shape[0]
    if code == SOFTMAX:
        m = z[0]
        for i in range(1, n):
            m = max(m, z[i])
        s = 0.0
        for i in range(n):
            out[i] = np.exp(z[i] - m)
            s += out[i]
        for i in range(n):
            out[i] /= s
    else:
        for i in range(n):
            out[i] = _act(code, z[i])


@njit(cache=True)
def output_error(cfg, a, z, t, d, mode):
    """δ of the output layer into ``d``; returns (loss, correct)."""
    n = a.shape[0]
    loss = 0.0
    if cfg.loss == LOSS_MSE:
        for i in range(n):
            e = a[i] - t[i]
            loss += 0.5 * e * e
        if cfg.output == SOFTMAX:
            s = 0.0
            for k in range(n):
                s += a[k] * (a[k] - t[k])
            for i in range(n):
                d[i] = a[i] * ((a[i] - t[i]) - s)
        else:
            for i in range(n):
                d[i] = (a[i] - t[i]) * _deriv(cfg.output, z[i], a[i], mode)
    else:
        for i in range(n):
            ai = min(max(a[i], 1e-12), 1.0 - 1e-12)
            if cfg.output == SOFTMAX:
                loss -= t[i] * np.log(ai)
            else:
                loss -= t[i] * np.log(ai) + (1.0 - t[i]) * np.log(1.0 - ai)
            d[i] = a[i] - t[i]
    best = 0
    tbest = 0
    for i in range(1, n):
        if a[i] > a[best]:
            best = i
        if t[i] > t[tbest]:
            tbest = i
    return loss, 1 if best == tbest else 0
