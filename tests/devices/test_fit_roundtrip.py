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
            out[fam, seed] = (fit.fit_data(tr, family=fam, compare=False), truth)
    return out


def _rel(a, b):
    return abs(a / b - 1.0)


@pytest.mark.parametrize("fam", FAMILIES)
@pytest.mark.parametrize("seed", SEEDS)
def test_population_means_and_noise(roundtrips, fam, seed):
    res, truth = roundtrips[fam, seed]
    for name, drawn in truth["drawn"].items():
        assert _rel(res.spec.population[name].mean, drawn["mean"]) < 0.10, name
    assert _rel(res.spec.c2c_std, 0.3) < 0.20
    assert _rel(res.spec.read_noise_S, READ) < 0.30


@pytest.mark.parametrize("fam", FAMILIES)
@pytest.mark.parametrize("seed", SEEDS)
def test_d2d_std(roundtrips, fam, seed):
    res, truth = roundtrips[fam, seed]
    for name, drawn in truth["drawn"].items():
        assert _rel(res.spec.population[name].std, drawn["std"]) < 0.30, name


@pytest.mark.parametrize("fam", FAMILIES)
def test_stderr_is_calibrated(roundtrips, fam):
    """The per-device standard errors (which the d2d std subtracts) match the actual errors:
    mean of ((estimate - truth) / se)² over devices and seeds near 1 for every free parameter."""
    for j, name in enumerate(fit.PARAMS):
        z = []
        for seed in SEEDS:
            res, truth = roundtrips[fam, seed]
            if name not in truth["parameters"]:
                continue
            est = np.array([f.theta[j] for f in res.fits[fam]])
            se = np.array([f.se[j] for f in res.fits[fam]])
            z.append((est - np.array(truth["parameters"][name])) / se)
        if z:
            z2 = float(np.mean(np.concatenate(z) ** 2))
            assert 0.4 < z2 < 2.5, (name, z2)


@pytest.mark.parametrize("fam", FAMILIES)
def test_auto_picks_generating_family(fam):
    hits = 0
    for seed in range(10):
        tr, _ = synth.synthesize(make_spec(fam), 4, 5, 100, 100 + seed)
        hits += fit.fit_data(tr, family="auto").chosen == fam
    assert hits >= 9, f"{fam}: {hits}/10"


def test_bootstrap_uncertainty():
    tr, _ = synth.synthesize(make_spec("soft-bounds"), 3, 4, 60, 21)
    cov = fit.fit_data(tr, family="soft-bounds", compare=False)
    boot = fit.fit_data(tr, family="soft-bounds", compare=False, bootstrap=25, seed=4)
    assert boot.spec.extra["fit"]["uncertainty"] == "bootstrap (25 resamples)"
    for j in range(4):  # g_min, g_max, dg_up, dg_down
        sb = np.array([f.se[j] for f in boot.fits["soft-bounds"]])
        sc = np.array([f.se[j] for f in cov.fits["soft-bounds"]])
        assert np.all(np.isfinite(sb) & (sb > 0)), fit.PARAMS[j]
        # resampling 4 cycles is coarse: agree with the sandwich errors within a factor of 3
        assert np.all((sb / sc > 1 / 3) & (sb / sc < 3)), (fit.PARAMS[j], sb / sc)
    again = fit.fit_data(tr, family="soft-bounds", compare=False, bootstrap=25, seed=4)
    assert np.array_equal(again.fits["soft-bounds"][0].se, boot.fits["soft-bounds"][0].se, equal_nan=True)
