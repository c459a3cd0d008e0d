"""The cost ledger's one convention (README "Cost ledger"): per weight, the analog devices and
digital values stored; per sample, the values held between phases (progressive: with the f'(z) of
the layers above the written one), array reads, device reads and pulses — formulas equal the
kernels' counters."""

import numpy as np
import pytest

from conftest import iris_params
from pipeline import datasets
from pipeline.crossbar import arrays
from pipeline.devices import spec as dspec
from pipeline.training import algorithms, ledger
from pipeline.training import run as R
from pipeline.training.metrics import LEDGER_NAMES

POP = {"g_min_S": {"mean": 3.0e-4, "std": 3.0e-5}, "g_max_S": {"mean": 1.0e-3, "std": 1.0e-4},
       "dg_up_S": {"mean": 1.4e-5, "std": 2.8e-6}, "dg_down_S": {"mean": 1.0e-5, "std": 2.0e-6}}


def test_values_held_by_hand():
    # 4-8-3: rows (8, 3), cols (5, 9). progressive writes layer 2 holding δ2, ã1 (3 + 9); layer 1
    # holding δ1, ã0 and f'(z2) (8 + 5 + 3)
    assert ledger.values_held("progressive", [4, 8, 3]) == 16
    assert ledger.values_held("progressive", [4, 8, 8, 8, 3]) == 32
    assert ledger.values_held("backprop", [4, 8, 3]) == (8 + 3) + (5 + 9)
    assert ledger.values_held("progressive-held", [4, 8, 3]) == (5 + 9) + 8
    for sizes in ([4, 8, 3], [64, 32, 32, 10], [784, 256, 256, 256, 10]):
        assert ledger.values_held("progressive", sizes) <= ledger.values_held("progressive-held", sizes) \
            <= ledger.values_held("backprop", sizes)


def test_convention_per_weight_fields_come_from_the_scheme():
    c = ledger.convention("progressive", [4, 8, 3], planes=4, digital_per_weight=1)
    assert c["weights"] == 8 * 5 + 3 * 9
    assert c["analog_devices_per_weight"] == 4 and c["digital_values_per_weight"] == 1
    assert c["device_reads_per_sample"] == 4 * ((40 + 27) + (40 + 27 + 27))
    with pytest.raises(ValueError):
        ledger.convention("progressive", [4, 8, 3], planes=2, digital_per_weight=0, counts={"reads": 1})


@pytest.mark.parametrize("hidden", [[3], [3, 3]])
def test_formulas_equal_the_kernel_counters(hidden):
    p = iris_params({"network.hidden": hidden, "dataset.max_train": 12, "dataset.max_test": 6, "train.epochs": 1})
    data = datasets.load(p.dataset)
    spec = dspec.from_dict({"model": "soft-bounds", "population": POP, "c2c_std": 0.1})
    sizes = arrays.network_sizes(data.n_features, hidden, data.n_classes)
    net = arrays.build(p, spec, sizes)
    n = len(data.y_train)
    for alg in algorithms.NAMES:
        su = R.setup(p, alg, 0, net, data)
        st = R.State.initial(net)
        res = next(R.run_epochs(p, su, st, 1, 1))
        counts = dict(zip(LEDGER_NAMES, (int(v) for v in res.ledger)))
        c = ledger.convention(alg, sizes, planes=net.g0.shape[0], digital_per_weight=0, n_samples=n, counts=counts)
        assert c["counted_reads_per_sample"] == c["reads_per_sample"], alg
        assert c["counted_device_reads_per_sample"] == c["device_reads_per_sample"], alg
        assert counts["forward_passes"] == n * c["forward_passes_per_sample"], alg
        pulses = int(st.cnt_up.sum() + st.cnt_dn.sum())
        assert c["counted_pulses_per_sample"] * n == pulses, alg
        assert c["counted_pulses_per_sample_per_weight"] == pytest.approx(pulses / (n * c["weights"]))
        if algorithms.get(alg).is_float:
            assert pulses == 0
