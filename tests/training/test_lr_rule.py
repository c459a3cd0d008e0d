"""Per-layer learning-rate rules: ``train.lr`` as given (default, unchanged), or ``fan-in``
(lr_base / (inputs + 1) per layer, any depth), and why progressive needs it."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline import config
from pipeline.errors import InputError


def test_default_rule_keeps_train_lr():
    t = config.Train()
    assert t.lr_rule == "none"
    assert config.layer_lrs(t, [4, 8, 3]) == [t.lr[0]] * 2  # one rate: every layer gets it
    t2 = config.with_changes(t, {"lr": [0.1, 0.2, 0.3]})
    assert config.layer_lrs(t2, [64, 32, 16, 10]) == [0.1, 0.2, 0.3]
    with pytest.raises(InputError, match="train.lr"):
        config.layer_lrs(t2, [64, 32, 10])


@pytest.mark.parametrize("sizes", [[784, 10], [784, 256, 10], [784, 256, 128, 10], [784, 256, 256, 256, 256, 10]])
def test_fan_in_rule_gives_every_depth_its_rates(sizes):
    t = config.with_changes(config.Train(), {"lr_rule": "fan-in", "lr_base": 2.0, "lr": [0.5]})
    lrs = config.layer_lrs(t, sizes)
    assert len(lrs) == len(sizes) - 1
    assert lrs == [2.0 / (n + 1) for n in sizes[:-1]]  # train.lr is not used
    # the output-layer write moves its pre-activations by -eta * |a~|^2 * delta (a~: inputs + bias 1);
    # with fan-in rates eta*|a~|^2 = lr_base * mean(a~^2) <= lr_base whatever the width
    rng = np.random.default_rng(0)
    a = np.append(1.0 / (1.0 + np.exp(-rng.normal(size=sizes[-2]))), 1.0)
    assert lrs[-1] * a @ a <= 2.0 + 1e-12
    assert 0.1 * a @ a > 2.0 or sizes[-2] < 100  # a fixed 0.1 overshoots at width >= 256


@pytest.mark.parametrize("sizes", [[784, 10], [784, 256, 128, 10], [64, 16, 16, 16, 10]])
def test_output_base_replaces_the_base_of_the_output_layer_only(sizes):
    t = config.with_changes(config.Train(), {"lr_rule": "fan-in", "lr_base": 16.0, "lr_base_out": 1.0})
    lrs = config.layer_lrs(t, sizes)
    assert lrs[:-1] == [16.0 / (n + 1) for n in sizes[:-2]]
    assert lrs[-1] == 1.0 / (sizes[-2] + 1)
    # 0 (the default) keeps lr_base for every layer
    t0 = config.with_changes(t, {"lr_base_out": 0.0})
    assert config.layer_lrs(t0, sizes) == [16.0 / (n + 1) for n in sizes[:-1]]


def test_rule_params_are_validated_in_one_line():
    with pytest.raises(InputError, match="train.lr_rule.*one of none, fan-in"):
        config.build(config.Train, {"lr_rule": "sqrt"}, "train")
    with pytest.raises(InputError, match="train.lr_base.*> 0"):
        config.build(config.Train, {"lr_base": 0.0}, "train")
    with pytest.raises(InputError, match="train.lr_base_out"):
        config.build(config.Train, {"lr_base_out": -1.0}, "train")


def test_setup_uses_the_rule():
    from conftest import ROOT, iris_params
    from pipeline.crossbar import arrays as arr
    from pipeline.devices import spec as dspec
    from pipeline.training import run

    p = iris_params({"network.hidden": [6, 5], "train.lr_rule": "fan-in", "train.lr_base": 3.0})
    net = arr.build(p, dspec.read(ROOT / "data" / "devices" / "ecram-softbounds.yaml"), [4, 6, 5, 3])
    su = run.setup(p, "progressive", 0, net)
    assert su.lrs.tolist() == [3.0 / 5, 3.0 / 7, 3.0 / 6]
