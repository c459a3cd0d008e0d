"""Datasets: the bundled ones (iris, optdigits, an XOR-like task) and user files (CSV, NPZ, IDX).

Every loader returns float64 C-ordered features and int64 labels 0..K-1. Splits are stratified
and seeded; scaling is fitted on the training part only.
"""

from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError

DATA_DIR = Path(__file__).resolve().parent.parent / "data"


@dataclass(frozen=True)
class Split:
    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int

    @property
    def n_features(self) -> int:
        return self.x_train.shape[1]


def _read_csv_matrix(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt") as fh:
            rows = [line.strip() for line in fh if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(str(path), f"cannot read ({exc.__class__.__name__})") from None
    if not rows:
        raise InputError(str(path), "empty file, expected rows of features then a label")
    start = 0
    try:
        [float(v) for v in rows[0].split(",")]
    except ValueError:
        start = 1  # a header line
    out = []
    width = None
    for n, line in enumerate(rows[start:], start=start + 1):
        parts = line.split(",")
        if width is None:
            width = len(parts)
        if len(parts) != width:
            raise InputError(f"{path} row {n}", f"has {len(parts)} fields, expected {width}")
        try:
            vals = [float(v) for v in parts]
        except ValueError:
            raise InputError(f"{path} row {n}", "non-numeric field, expected numbers") from None
        out.append(vals)
    m = np.asarray(out, dtype=np.float64)
    if m.shape[1] < 2:
        raise InputError(str(path), "expected at least one feature column and a label column")
    if not np.all(np.isfinite(m)):
        r = int(np.nonzero(~np.all(np.isfinite(m), axis=1))[0][0]) + start + 1
        raise InputError(f"{path} row {r}", "NaN or Inf, expected finite numbers")
    return m


def _labels(y: np.ndarray, where: str) -> np.ndarray:
    if not np.all(y == np.round(y)) or y.min() < 0:
        raise InputError(where, "labels must be integers >= 0 (last column)")
    return y.astype(np.int64)


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        data = fh.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise InputError(str(path), "not an IDX file (bad magic number)")
    dtype = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}.get(data[2])
    if dtype is None:
        raise InputError(str(path), f"unknown IDX data type 0x{data[2]:02x}")
    nd = data[3]
    shape = struct.unpack(">" + "I" * nd, data[4:4 + 4 * nd])
    arr = np.frombuffer(data, dtype=dtype, offset=4 + 4 * nd)
    if arr.size != int(np.prod(shape)):
        raise InputError(str(path), f"IDX payload has {arr.size} values, header says {shape}")
    return arr.reshape(shape).astype(np.float64)


def load_raw(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(x, y, x_test, y_test); the test part is None when the source has no fixed split."""
    if name == "iris":
        m = _read_csv_matrix(DATA_DIR / "iris" / "bezdekIris.data.csv")
        return m[:, :-1], _labels(m[:, -1], "iris"), None, None
    if name == "optdigits":
        tr = _read_csv_matrix(DATA_DIR / "optdigits" / "optdigits.train.csv.gz")
        te = _read_csv_matrix(DATA_DIR / "optdigits" / "optdigits.test.csv.gz")
        return tr[:, :-1], _labels(tr[:, -1], "optdigits"), te[:, :-1], _labels(te[:, -1], "optdigits")
    if name == "xor":
        rng = np.random.default_rng(12345)
        x = rng.uniform(-1.0, 1.0, size=(400, 2))
        y = ((x[:, 0] > 0) ^ (x[:, 1] > 0)).astype(np.int64)
        return x, y, None, None
    path = Path(name)
    if not path.exists():
        raise InputError(f"dataset.name {name}", "not a bundled dataset (iris, optdigits, xor) and no such file")
    if path.suffix == ".npz":
        try:
            z = np.load(path)
        except (OSError, ValueError) as exc:
            raise InputError(str(path), f"cannot read NPZ ({exc.__class__.__name__})") from None
        for k in ("x", "y"):
            if k not in z:
                raise InputError(str(path), f"missing array '{k}', expected x (samples, features) and y (labels)")
        x = np.asarray(z["x"], np.float64).reshape(len(z["x"]), -1)
        y = _labels(np.asarray(z["y"], np.float64), str(path))
        if "x_test" in z and "y_test" in z:
            return x, y, np.asarray(z["x_test"], np.float64).reshape(len(z["x_test"]), -1), _labels(np.asarray(z["y_test"], np.float64), str(path))
        return x, y, None, None
    if path.is_dir():  # IDX pair: images + labels
        imgs = sorted(path.glob("*images*"))
        labs = sorted(path.glob("*labels*"))
        if not imgs or not labs:
            raise InputError(str(path), "folder without *images* and *labels* IDX files")
        x = _read_idx(imgs[0])
        return x.reshape(len(x), -1), _labels(_read_idx(labs[0]), str(labs[0])), None, None
    m = _read_csv_matrix(path)
    return m[:, :-1], _labels(m[:, -1], str(path)), None, None


def stratified_split(y: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7]))
    train, test = [], []
    for c in np.unique(y):
        idx = np.nonzero(y == c)[0]
        idx = idx[rng.permutation(len(idx))]
        n_test = int(round(test_fraction * len(idx)))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def load(ds_params) -> Split:
    """The dataset of the ``dataset`` params section, split and scaled."""
    x, y, xt, yt = load_raw(ds_params.name)
    if xt is None:
        tr, te = stratified_split(y, ds_params.test_fraction, ds_params.split_seed)
        x, y, xt, yt = x[tr], y[tr], x[te], y[te]
    if ds_params.max_train and len(y) > ds_params.max_train:
        tr, _ = stratified_split(y, 1.0 - ds_params.max_train / len(y), ds_params.split_seed + 1)
        x, y = x[tr], y[tr]
    if ds_params.max_test and len(yt) > ds_params.max_test:
        te, _ = stratified_split(yt, 1.0 - ds_params.max_test / len(yt), ds_params.split_seed + 2)
        xt, yt = xt[te], yt[te]
    if ds_params.scale == "minmax":
        lo, hi = x.min(axis=0), x.max(axis=0)
        span = np.where(hi > lo, hi - lo, 1.0)
        x, xt = (x - lo) / span, (xt - lo) / span
    elif ds_params.scale == "standard":
        mu, sd = x.mean(axis=0), x.std(axis=0)
        sd = np.where(sd > 0, sd, 1.0)
        x, xt = (x - mu) / sd, (xt - mu) / sd
    k = int(max(y.max(), yt.max()) + 1)
    if k < 2:
        raise InputError(f"dataset {ds_params.name}", "needs at least two classes")
    c = np.ascontiguousarray
    return Split(ds_params.name, c(x, np.float64), c(y, np.int64), c(xt, np.float64), c(yt, np.int64), k)
