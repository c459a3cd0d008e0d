"""Datasets: the bundled ones (iris, optdigits, MNIST, an XOR-like task) and user files (CSV, NPZ,
IDX folders).

Every loader returns float64 C-ordered features and int64 labels 0..K-1. Splits are stratified
and seeded; scaling is fitted on the training part only (``unit`` divides by the source's full
scale: 255 for 8-bit IDX images, 16 for optdigits, or ``dataset.full_scale``).

Sources with a fixed split (optdigits, MNIST's 60k/10k, an IDX folder with ``train-*`` and
``t10k-*`` files, an NPZ with ``x_test``/``y_test``) keep it; the others are split with
``dataset.test_fraction``. ``max_train``/``max_test`` take a stratified, seeded subset.
IDX images stay 8-bit until after the subset is taken (60k MNIST: about 1 s to load).
"""

from __future__ import annotations

import gzip
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

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


class Raw(NamedTuple):
    """A source before splitting and scaling: features as stored (any numeric dtype), labels,
    the fixed test part if the source has one, and its full scale (None: none declared)."""

    x: np.ndarray
    y: np.ndarray
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    full_scale: float | None


# the full scale of the IDX integer types (unit scaling); float IDX declare none
_IDX_FULL_SCALE = {0x08: 255.0, 0x09: 127.0, 0x0B: 32767.0, 0x0C: 2147483647.0}


def _read_idx(path: Path) -> tuple[np.ndarray, float | None]:
    """An IDX file in its stored dtype (native byte order) and the full scale of its type."""
    try:
        data = path.read_bytes()
        if path.suffix == ".gz":
            data = zlib.decompress(data, 47)  # gzip or zlib header; faster than gzip.open().read()
    except (OSError, zlib.error) as exc:
        raise InputError(str(path), f"cannot read ({exc.__class__.__name__})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise InputError(str(path), "not an IDX file (bad magic number)")
    dtype = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}.get(data[2])
    if dtype is None:
        raise InputError(str(path), f"unknown IDX data type 0x{data[2]:02x}")
    nd = data[3]
    shape = struct.unpack(">" + "I" * nd, data[4:4 + 4 * nd])
    if (len(data) - 4 - 4 * nd) % np.dtype(dtype).itemsize:
        raise InputError(str(path), f"IDX payload is not a whole number of values, header says {shape}")
    arr = np.frombuffer(data, dtype=dtype, offset=4 + 4 * nd)
    if arr.size != int(np.prod(shape)):
        raise InputError(str(path), f"IDX payload has {arr.size} values, header says {shape}")
    arr = arr.reshape(shape)
    if arr.dtype.itemsize > 1:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return arr, _IDX_FULL_SCALE.get(data[2])


def _idx_pair(images: Path, labels: Path) -> tuple[np.ndarray, np.ndarray, float | None]:
    x, full = _read_idx(images)
    y, _ = _read_idx(labels)
    if y.ndim != 1 or len(y) != len(x):
        raise InputError(str(labels), f"{y.shape[0] if y.ndim else 0} labels for {len(x)} images in {images.name}")
    return x.reshape(len(x), -1), _labels(y, str(labels)), full


def _idx_role(name: str) -> str | None:
    """train / test from an IDX file name (MNIST's train-* / t10k-*, or *train* / *test*)."""
    low = name.lower()
    is_test = "t10k" in low or "test" in low
    is_train = "train" in low
    if is_test == is_train:
        return None
    return "test" if is_test else "train"


def _read_idx_folder(path: Path) -> Raw:
    """An IDX folder: ``train-*images*`` + ``train-*labels*`` with ``t10k-*images*`` +
    ``t10k-*labels*`` (the fixed split), or a single images + labels pair (split later)."""
    imgs = sorted(p for p in path.iterdir() if "images" in p.name.lower() and p.is_file())
    labs = sorted(p for p in path.iterdir() if "labels" in p.name.lower() and p.is_file())
    if not imgs or not labs:
        raise InputError(str(path), "folder without *images* and *labels* IDX files")
    if len(imgs) == 1 and len(labs) == 1:
        x, y, full = _idx_pair(imgs[0], labs[0])
        return Raw(x, y, None, None, full)
    found = {}
    for p in imgs + labs:
        key = (_idx_role(p.name), "images" if p in imgs else "labels")
        found.setdefault(key, []).append(p.name)
    want = [(r, k) for r in ("train", "test") for k in ("images", "labels")]
    if any(len(found.get(key, [])) != 1 for key in want) or set(found) != set(want):
        listing = ", ".join(sorted(p.name for p in imgs + labs))
        raise InputError(str(path), f"cannot pair the IDX files ({listing}): expected one train-*images* "
                         "and train-*labels* with one t10k-*images* and t10k-*labels* (or one images/labels pair)")
    x, y, full = _idx_pair(path / found["train", "images"][0], path / found["train", "labels"][0])
    xt, yt, _ = _idx_pair(path / found["test", "images"][0], path / found["test", "labels"][0])
    if xt.shape[1] != x.shape[1]:
        raise InputError(str(path), f"train images have {x.shape[1]} values each, test images {xt.shape[1]}")
    return Raw(x, y, xt, yt, full)


BUNDLED = ("iris", "optdigits", "mnist", "xor")


def load_raw(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(x, y, x_test, y_test) as float64; the test part is None when the source has no fixed split."""
    r = load_source(name)
    f = (lambda a: None if a is None else np.asarray(a, np.float64))
    return f(r.x), r.y, f(r.x_test), r.y_test


def load_source(name: str) -> Raw:
    """The source ``dataset.name`` names, features in their stored dtype (see :class:`Raw`)."""
    if name == "iris":
        m = _read_csv_matrix(DATA_DIR / "iris" / "bezdekIris.data.csv")
        return Raw(m[:, :-1], _labels(m[:, -1], "iris"), None, None, None)
    if name == "optdigits":
        tr = _read_csv_matrix(DATA_DIR / "optdigits" / "optdigits.train.csv.gz")
        te = _read_csv_matrix(DATA_DIR / "optdigits" / "optdigits.test.csv.gz")
        return Raw(tr[:, :-1], _labels(tr[:, -1], "optdigits"), te[:, :-1], _labels(te[:, -1], "optdigits"), 16.0)
    if name == "mnist":
        return _read_idx_folder(DATA_DIR / "mnist")
    if name == "xor":
        rng = np.random.default_rng(12345)
        x = rng.uniform(-1.0, 1.0, size=(400, 2))
        y = ((x[:, 0] > 0) ^ (x[:, 1] > 0)).astype(np.int64)
        return Raw(x, y, None, None, None)
    path = Path(name)
    if not path.exists():
        raise InputError(f"dataset.name {name}", f"not a bundled dataset ({', '.join(BUNDLED)}) and no such file")
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
            return Raw(x, y, np.asarray(z["x_test"], np.float64).reshape(len(z["x_test"]), -1),
                       _labels(np.asarray(z["y_test"], np.float64), str(path)), None)
        return Raw(x, y, None, None, None)
    if path.is_dir():  # IDX folder
        return _read_idx_folder(path)
    m = _read_csv_matrix(path)
    return Raw(m[:, :-1], _labels(m[:, -1], str(path)), None, None, None)


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
    x, y, xt, yt, full = load_source(ds_params.name)
    if ds_params.scale == "unit":
        full = ds_params.full_scale or full
        if not full:
            raise InputError("dataset.scale", f"unit needs the full scale of {ds_params.name}, which declares none: "
                             "set dataset.full_scale")
    if xt is None:
        tr, te = stratified_split(y, ds_params.test_fraction, ds_params.split_seed)
        x, y, xt, yt = x[tr], y[tr], x[te], y[te]
    if ds_params.max_train and len(y) > ds_params.max_train:
        tr, _ = stratified_split(y, 1.0 - ds_params.max_train / len(y), ds_params.split_seed + 1)
        x, y = x[tr], y[tr]
    if ds_params.max_test and len(yt) > ds_params.max_test:
        te, _ = stratified_split(yt, 1.0 - ds_params.max_test / len(yt), ds_params.split_seed + 2)
        xt, yt = xt[te], yt[te]
    if ds_params.scale == "unit":  # straight from the stored dtype: one pass, no float64 copy before
        x, xt = np.divide(x, full, dtype=np.float64), np.divide(xt, full, dtype=np.float64)
    else:
        x, xt = np.asarray(x, np.float64), np.asarray(xt, np.float64)
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
