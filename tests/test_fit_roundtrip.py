"""Round trips: synthesise populations with known truth, fit them back (issue 3)."""

import numpy as np
import pytest

from pipeline.devices import fit, synth
from _device_cases import READ, make_spec

FAMILIES = ("constant", "linear", "soft-bounds", "power")
SEEDS = (1, 2, 3)


@pytest.fixture(scope="module")
def roundtrips():
    out = {}
    for fam in FAMILIES:
        for seed in SEEDS:
            tr, truth = synth.synthesize(make_spec(fam), 16, 5, 100, seed)
            out[fam, seed] = (fit.fit_data(tr, family=fam), truth)
    return out


def _rel(a, b):
    return abs(a / b - 1.0)


@pytest.mark.parametrize("fam", FAMILIES)
@pytest.mark.parametrize("seed", SEEDS)
def test_population_means_and_noise(roundtrips, fam, seed):
    res, truth = roundtrips[fam, seed]
    for name, drawn in truth["drawn"].items():
        if fam == "power" and name.startswith("gamma"):
            continue  # checked separately below (known bias)
        assert _rel(res.spec.population[name].mean, drawn["mean"]) < 0.10, name
    assert _rel(res.spec.c2c_std, 0.3) < 0.20
    assert _rel(res.spec.read_noise_S, READ) < 0.30


@pytest.mark.parametrize("fam", ("constant", "soft-bounds"))
@pytest.mark.parametrize("seed", SEEDS)
def test_d2d_std(roundtrips, fam, seed):
    res, truth = roundtrips[fam, seed]
    for name, drawn in truth["drawn"].items():
        assert _rel(res.spec.population[name].std, drawn["std"]) < 0.30, name


@pytest.mark.xfail(reason="power/linear with gamma: gamma biased ~-9 % (read noise at saturated bounds, "
                          "errors in variables) and its d2d std is noisy; see the issue note", strict=False)
@pytest.mark.parametrize("fam", ("linear", "power"))
def test_gamma_families_strict(roundtrips, fam):
    for seed in SEEDS:
        res, truth = roundtrips[fam, seed]
        for name, drawn in truth["drawn"].items():
            assert _rel(res.spec.population[name].mean, drawn["mean"]) < 0.10, name
            assert _rel(res.spec.population[name].std, drawn["std"]) < 0.30, name


@pytest.mark.parametrize("fam", FAMILIES)
def test_auto_picks_generating_family(fam):
    hits = 0
    for seed in range(10):
        tr, _ = synth.synthesize(make_spec(fam), 8, 5, 100, 100 + seed)
        hits += fit.fit_data(tr, family="auto").chosen == fam
    assert hits >= 9, f"{fam}: {hits}/10"
