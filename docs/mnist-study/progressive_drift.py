"""Why progressive-float fails at four hidden layers of 256 on MNIST: a NumPy ablation.

Progressive GD writes the output layer first and reads the error for the layer below through the
*written* array. With W′ = W − η δ ãᵀ the transposed read is

    W′ᵀ δ′ = Wᵀ δ′ − η (δ·δ′) ã,

so the hidden error gets the extra term −η_out (δ·δ′) a ⊙ f′(z). For sigmoid layers a > 0 and
f′ > 0, and δ·δ′ > 0: the term has the same sign for every unit and every sample. The write that
follows moves the layer's pre-activations by −η_l‖ã‖²δ, so the term is a drift that pushes every
unit of the last hidden layer up, sample after sample. While the true gradient is strong the drift
is noise; in the plateau of a deep sigmoid network (the gradient reaching the lower layers is small
for the first thousands of samples) it accumulates until the layer saturates at 1, and then nothing
below it learns. Lowering the hidden base rate does not help (drift and learning scale together);
lowering the output layer's rate does (the drift is ∝ η_out).

This script trains 784-256-256-256-256-10 (sigmoid, softmax / cross-entropy, fan-in rule) for one
epoch of full MNIST, online, in float64, from the programmed initial weights of a pipeline run,
with four update rules:

* ``backprop``: every δ before any write;
* ``progressive``: the pipeline's progressive-float (fresh forward pass over the written layers
  before each write, δ through the written arrays);
* ``progressive, pre-write reads``: the same, but the transposed reads use the weights as they were
  before this sample's writes — the drift term removed, nothing else changed;
* ``progressive, lr_base_out 0.1``: the pipeline's progressive with a 10× smaller output rate.

It prints test accuracy, the mean activation of the last hidden layer while training, and the
measured drift: the mean over the first 2,000 samples of (progressive δ − pre-write δ) of the last
hidden layer against −η_out (δ·δ′) a ⊙ f′, predicted from the same sample's signals.

Usage (docs/mnist-study/README.md, *Why progressive-float fails at depth 4*)::

    S="--set dataset.name=mnist --set dataset.max_train=0 --set dataset.max_test=0 \
       --set dataset.scale=unit --set network.hidden=[256,256,256,256] --set train.lr_rule=fan-in \
       --set train.lr_base=16.0 --set train.lr_base_out=1.0 --set array.encoding=stochastic-sparse \
       --set train.epochs=1"
    python -m pipeline array init $S --out study/arr4.zarr
    python -m pipeline train -a backprop-float --seed 0 --arrays study/arr4.zarr --out study/bpf4 $S
    python docs/mnist-study/progressive_drift.py study/bpf4/run.zarr
"""

from __future__ import annotations

import sys
import time

import numpy as np
import xarray as xr

from pipeline.datasets import load_raw


def initial_weights(run_zarr: str) -> list[np.ndarray]:
    """The programmed initial weights (snapshot 0, first pair) of every layer of a pipeline run."""
    d = xr.open_zarr(run_zarr, consolidated=False)
    n = sum(1 for k in d.data_vars if k.startswith("W_"))
    return [np.ascontiguousarray(d[f"W_{l}"].values[0, 0], dtype=np.float64) for l in range(n)]


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


class Net:
    def __init__(self, weights, lr_base, lr_base_out):
        self.W = [w.copy() for w in weights]
        self.L = len(self.W)
        self.lrs = [(lr_base if l < self.L - 1 else lr_base_out) / w.shape[1] for l, w in enumerate(self.W)]

    def forward(self, x, A=None, start=0):
        """Activations with the bias 1 appended (A[L]: softmax output); layers below ``start`` kept."""
        if A is None:
            A = [None] * (self.L + 1)
            A[0] = np.append(x, 1.0)
        for l in range(start, self.L):
            z = self.W[l] @ A[l]
            if l < self.L - 1:
                A[l + 1] = np.append(sigmoid(z), 1.0)
            else:
                e = np.exp(z - z.max())
                A[l + 1] = e / e.sum()
        return A

    def deltas(self, A, t, lo, weights=None):
        """δ of layers L-1 … lo through ``weights`` (default: the present ones)."""
        W = self.W if weights is None else weights
        D = [None] * self.L
        D[-1] = A[-1] - t
        for k in range(self.L - 2, lo - 1, -1):
            a = A[k + 1][:-1]
            D[k] = (W[k + 1].T @ D[k + 1])[:-1] * a * (1.0 - a)
        return D

    def write(self, l, d, a):
        self.W[l] -= self.lrs[l] * np.outer(d, a)

    def accuracy(self, X, y):
        H = np.c_[X, np.ones(len(X))]
        for l, w in enumerate(self.W):
            Z = H @ w.T
            H = np.c_[sigmoid(Z), np.ones(len(Z))] if l < self.L - 1 else Z
        return float(np.mean(H.argmax(1) == y))


def train(rule, weights, X, y, Xte, yte, order, lr_base=16.0, lr_base_out=1.0, every=10000, drift_n=2000):
    net = Net(weights, lr_base, lr_base_out)
    L = net.L
    trace, drift_meas, drift_pred = [], [], []
    T = np.eye(10)[y]  # one-hot targets
    for n, i in enumerate(order):
        x, t = X[i], T[i]
        A = net.forward(x)
        if rule == "backprop":
            D = net.deltas(A, t, 0)
            for l in range(L):
                net.write(l, D[l], A[l])
        else:
            before = [w.copy() for w in net.W] if rule == "pre-write" or n < drift_n else None
            d_out = None
            for l in range(L - 1, -1, -1):
                if l < L - 1:
                    A = net.forward(x, A, l + 1)
                D = net.deltas(A, t, l, before if rule == "pre-write" else None)
                if l == L - 1:
                    d_out = D[-1]
                if l == L - 2 and n < drift_n and rule != "pre-write":
                    # the drift term, measured (this δ minus the one read through the pre-write
                    # weights, same forward signals) and predicted: −η_out (δ·δ′) a ⊙ f′
                    D0 = net.deltas(A, t, l, before)
                    a = A[L - 1][:-1]
                    drift_meas.append(D[l] - D0[l])
                    drift_pred.append(-net.lrs[-1] * float(d_out @ D[-1]) * a * (1.0 - a) * a)
                net.write(l, D[l], A[l])
        if (n + 1) % every == 0:
            trace.append((n + 1, float(net.forward(x)[L - 1][:-1].mean())))
    meas = np.mean(drift_meas, axis=0) if drift_meas else None
    pred = np.mean(drift_pred, axis=0) if drift_pred else None
    return net.accuracy(Xte, yte), trace, meas, pred


def main(run_zarr: str, seed: int = 0) -> None:
    Xtr, ytr, Xte, yte = load_raw("mnist")
    Xtr, Xte = Xtr.astype(np.float64) / 255.0, Xte.astype(np.float64) / 255.0
    w0 = initial_weights(run_zarr)
    order = np.random.default_rng(seed).permutation(len(Xtr))
    print(f"network {' -> '.join(str(w.shape[1] - 1) for w in w0)} -> {w0[-1].shape[0]}, "
          f"{len(order)} samples, seed {seed}")
    for label, rule, out in [("backprop", "backprop", 1.0), ("progressive", "progressive", 1.0),
                             ("progressive, pre-write reads", "pre-write", 1.0),
                             ("progressive, lr_base_out 0.1", "progressive", 0.1)]:
        t0 = time.perf_counter()
        acc, trace, meas, pred = train(rule, w0, Xtr, ytr, Xte, yte, order, lr_base_out=out)
        act = " ".join(f"{a:.2f}" for _, a in trace)
        print(f"{label:32s} test acc {acc:.4f}  mean a (last hidden, every 10k) {act}  "
              f"({time.perf_counter() - t0:.0f} s)")
        if meas is not None:  # (none for the pre-write rule: it has no drift term)
            rel = np.max(np.abs(meas - pred)) / np.max(np.abs(pred))
            print(f"{'':32s} drift over the first 2,000 samples: mean {meas.mean():+.2e} "
                  f"(negative for {np.mean(meas < 0):.0%} of units), predicted {pred.mean():+.2e}, "
                  f"max |measured - predicted| / max |predicted| = {rel:.1e}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 0)
