"""Fit a device population to characterization data (DESIGN §1.5).

Per device and per family (``constant``, ``linear``, ``soft-bounds``, ``power``):

* **traces: maximum likelihood of the conductance trajectory** (state-space model). The true
  conductance G_k is hidden; a pulse maps it to ``clip(G + μ(G)(1 + c2c·ξ), G_min, G_max)`` (the
  one pulse law, :func:`pipeline.devices.law.mean_step`), every read adds N(0, σ_read²). Regressing
  the measured step on the measured G before it is biased twice over: the read error of G_k sits in
  the regressor and (with the opposite sign) in the step, and near a bound the expected step is
  E[clip(·)], not clip(E[·]). The fit instead runs a Gaussian assumed-density (Kalman) filter per
  cycle — the predicted state is moment-matched through the censored normal of the clip, its
  variance grows by ``c2c²·μ²`` per pulse (write noise ∝ step) and the read noise enters only the
  observation — and maximises the prediction-error likelihood over the family's parameters, c2c
  and σ_read together (SLSQP, starting from the least squares of the steps below). This separates
  write from read noise by the likelihood itself (read noise: negatively correlated successive
  steps; write noise: a random walk of G). AIC/BIC come from this likelihood (k = family
  parameters + 2 noise parameters). Standard errors: sandwich covariance ``H⁻¹(Σ s_k s_kᵀ)H⁻¹``
  of the per-read scores, or a bootstrap over whole cycles when ``device.bootstrap > 0``; computed
  for the chosen family only (NaN in ``fit.zarr`` for the others).
* **look-up tables** (and the starting point for traces) — scipy least squares of the measured
  step against ``clip(G + μ(G), G_min, G_max) - G``; covariance ``(JᵀJ)⁻¹`` sandwich or bootstrap
  over points; R² of the mean step per bin; ``σ_c2c`` = spread of ΔG per bin relative to its mean,
  read noise 0 (not separable).
* **goodness of fit** — R² of the conductance trace (the mean law integrated open-loop from each
  cycle's first read), RMSE of the steps; the lag-1 correlation of step residuals (-0.5 for read
  noise alone) as a diagnostic.
* **population** — mean over devices, and a device-to-device std with the estimation noise
  removed (``sqrt(max(0, var(estimates) - mean(se²)))``, random-effects), plus correlations;
  c2c and read noise pooled as root-mean-square over devices.
* **family choice** — ``auto`` takes the lowest BIC summed over devices.

Modules: :mod:`.steps` (points, mean-step least squares, noise split), :mod:`.trace` (state-space
likelihood), :mod:`.select` (goodness, population, family choice, :func:`fit_data`). The files
(``device.yaml``, ``fit.zarr``, ``metrics.json``) are written by :mod:`pipeline.stages.fit`.
"""

from .select import FitResult, fit_data, fit_family, population, r2_steps, r2_trace, trace_model
from .steps import (FIT_FAMILIES, GAMMA_BOUNDS, N_FREE, PARAMS, DeviceData, FamilyFit, c2c_of, device_data, step_law,
                    predict, read_noise_of)
from .trace import SS_FREE, ss_uncertainty

__all__ = ["FIT_FAMILIES", "GAMMA_BOUNDS", "N_FREE", "PARAMS", "SS_FREE", "DeviceData", "FamilyFit", "FitResult",
           "c2c_of", "device_data", "fit_data", "fit_family", "step_law", "population", "predict", "r2_steps", "r2_trace",
           "read_noise_of", "ss_uncertainty", "trace_model"]
