"""MNIST and IDX folders: the fixed 60k/10k split, train-*/t10k-* pairing, unit scaling,
deterministic subsets, one-line refusals."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from conftest import ROOT, run_cli
from pipeline import config, datasets
from pipeline.errors import InputError

# label counts of the standard MNIST files (data/mnist/README.md)
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def _write_idx(path, arr: np.ndarray, code: int = 0x08) -> None:
    head = bytes([0, 0, code, arr.ndim]) + struct.pack(">" + "I" * arr.ndim, *arr.shape)
    body = arr.astype({0x08: ">u1", 0x0B: ">i2"}[code]).tobytes()
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as fh:
        fh.write(head + body)


def _idx_folder(folder, n_train=30, n_test=12, code=0x08, hi=255):
    rng = np.random.default_rng(3)
    folder.mkdir()
    parts = {}
    for role, n in (("train", n_train), ("t10k", n_test)):
        x = rng.integers(0, hi + 1, size=(n, 3, 2))
        y = np.arange(n) % 3
        _write_idx(folder / f"{role}-images-idx3-ubyte.gz", x, code)
        _write_idx(folder / f"{role}-labels-idx1-ubyte", y)
        parts[role] = (x.reshape(n, -1), y)
    return parts


def test_mnist_is_the_fixed_60k_10k_split_scaled_to_unit():
    d = datasets.load(config.Dataset(name="mnist", scale="unit"))
    assert d.x_train.shape == (60000, 784) and d.x_test.shape == (10000, 784) and d.n_classes == 10
    assert np.bincount(d.y_train).tolist() == TRAIN_COUNTS and np.bincount(d.y_test).tolist() == TEST_COUNTS
    assert d.x_train.dtype == np.float64 and d.x_train.flags.c_contiguous and d.x_test.flags.c_contiguous
    # ÷255 of 8-bit pixels: every value is k/255 exactly, both ends reached, test pixels stay in [0, 1]
    assert d.x_train.min() == 0.0 and d.x_train.max() == 1.0 and d.x_test.max() == 1.0
    k = np.round(d.x_test * 255.0)
    assert np.array_equal(k / 255.0, d.x_test)
    # per-pixel min-max (fitted on train) sends rarely-lit test pixels far beyond 1; unit does not
    mm = datasets.load(config.Dataset(name="mnist", scale="minmax", max_train=2000, max_test=2000))
    assert mm.x_test.max() > 1.5


def test_mnist_subsets_are_deterministic_stratified_and_of_the_fixed_split():
    ds = config.Dataset(name="mnist", scale="unit", max_train=1000, max_test=300)
    a, b = datasets.load(ds), datasets.load(ds)
    assert np.array_equal(a.x_train, b.x_train) and np.array_equal(a.y_test, b.y_test)
    assert abs(len(a.y_train) - 1000) <= 10 and abs(len(a.y_test) - 300) <= 10
    frac = np.bincount(a.y_train, minlength=10) / len(a.y_train)
    assert np.allclose(frac, np.array(TRAIN_COUNTS) / 60000, atol=0.01)
    full = datasets.load(config.Dataset(name="mnist", scale="unit", max_test=300))
    assert np.array_equal(full.x_test, a.x_test)  # test subset taken from t10k only, same draw


def test_idx_folder_pairs_train_with_t10k_and_unit_uses_the_type_full_scale(tmp_path):
    parts = _idx_folder(tmp_path / "idx")
    d = datasets.load(config.Dataset(name=str(tmp_path / "idx"), scale="unit"))
    assert np.array_equal(d.x_train * 255.0, parts["train"][0]) and np.array_equal(d.y_train, parts["train"][1])
    assert np.array_equal(d.x_test * 255.0, parts["t10k"][0]) and np.array_equal(d.y_test, parts["t10k"][1])
    # a 16-bit IDX declares 32767; dataset.full_scale overrides the declared one
    parts16 = _idx_folder(tmp_path / "idx16", code=0x0B, hi=1000)
    d16 = datasets.load(config.Dataset(name=str(tmp_path / "idx16"), scale="unit"))
    assert np.allclose(d16.x_train * 32767.0, parts16["train"][0])
    d16 = datasets.load(config.Dataset(name=str(tmp_path / "idx16"), scale="unit", full_scale=1000.0))
    assert d16.x_train.max() <= 1.0 and np.allclose(d16.x_train * 1000.0, parts16["train"][0])
    # minmax on 8-bit data is done in float64 (no unsigned wrap-around on test pixels below the train minimum)
    mm = datasets.load(config.Dataset(name=str(tmp_path / "idx"), scale="minmax"))
    lo, hi = parts["train"][0].min(0), parts["train"][0].max(0)
    assert np.allclose(mm.x_test, (parts["t10k"][0] - lo) / np.where(hi > lo, hi - lo, 1.0))


def test_idx_folder_with_one_pair_is_split_by_test_fraction(tmp_path):
    parts = _idx_folder(tmp_path / "idx", n_train=30)
    for f in (tmp_path / "idx").glob("t10k-*"):
        f.unlink()
    d = datasets.load(config.Dataset(name=str(tmp_path / "idx"), scale="unit", test_fraction=0.2))
    assert len(d.y_train) + len(d.y_test) == 30 and len(d.y_test) == 6
    assert np.array_equal(np.sort(np.concatenate([d.y_train, d.y_test])), np.sort(parts["train"][1]))


def test_unpairable_idx_folder_is_refused_with_one_line(tmp_path):
    _idx_folder(tmp_path / "idx")
    (tmp_path / "idx" / "t10k-labels-idx1-ubyte").rename(tmp_path / "idx" / "extra-labels-idx1-ubyte")
    with pytest.raises(InputError, match="cannot pair the IDX files"):
        datasets.load(config.Dataset(name=str(tmp_path / "idx")))
    out = tmp_path / "arrays.zarr"
    code, text = run_cli(["array", "init", "--device", str(ROOT / "data/devices/ecram-softbounds.yaml"),
                          "--set", f"dataset.name={tmp_path / 'idx'}", "--out", str(out)])
    lines = [ln for ln in text.strip().splitlines() if ln]
    assert code == 2 and len(lines) == 1 and "cannot pair the IDX files" in lines[0] and not out.exists()


def test_unit_scale_needs_a_declared_full_scale(tmp_path):
    with pytest.raises(InputError) as exc:
        datasets.load(config.Dataset(name="iris", scale="unit"))
    assert "dataset.scale" in str(exc.value) and "full_scale" in str(exc.value)
    d = datasets.load(config.Dataset(name="iris", scale="unit", full_scale=10.0))
    raw = datasets.load(config.Dataset(name="iris", scale="none"))
    assert np.array_equal(d.x_train, raw.x_train / 10.0)
    od = datasets.load(config.Dataset(name="optdigits", scale="unit", max_train=200, max_test=50))
    assert od.x_train.max() == 1.0 and np.array_equal(np.round(od.x_train * 16.0) / 16.0, od.x_train)
    with pytest.raises(InputError, match="dataset.full_scale"):
        config.build(config.Dataset, {"full_scale": -1.0}, "dataset")


def test_mnist_sweep_profile_is_the_scaling_study_and_default_is_unchanged():
    from pipeline import sweep

    p = config.load(ROOT / "params.yaml")
    dev = ROOT / "data" / "devices" / "ecram-softbounds.yaml"
    m = config.with_changes(p, {"base.profile": "mnist"})
    depth, width = sweep.resolve(m, "depth", device=dev), sweep.resolve(m, "width", device=dev)
    for sw in (depth, width):
        assert sw.profile == "mnist" and sw.dataset == "mnist" and len(sw.seeds) >= 3
        assert set(sw.algorithms) == {"progressive", "backprop", "progressive-float", "backprop-float"}
        t = sw.tasks[0].params
        assert t.train.lr_rule == "fan-in" and t.dataset.scale == "unit"
        assert (t.network.output, t.network.loss) == ("softmax", "ce")
        assert t.dataset.max_train == 0 and t.dataset.max_test == 0  # full 60k / 10k
    assert sorted({len(t.params.network.hidden) for t in depth.tasks}) == [1, 2, 3, 4]
    assert {w for t in depth.tasks for w in t.params.network.hidden} == {256}
    assert sorted({tuple(t.params.network.hidden) for t in width.tasks}) == [(64,), (128,), (256,), (512,), (1024,)]
    d = sweep.resolve(config.with_changes(p, {"base.profile": "default"}), "depth", device=dev)
    assert d.dataset != "mnist" and all(t.params.train.lr_rule == "none" for t in d.tasks)
