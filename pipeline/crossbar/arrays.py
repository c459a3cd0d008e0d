"""Array instantiation (DESIGN §1.3–1.4, §2.3): the crossbars of a network, drawn once and stored.

Per-device parameters are drawn from the fitted population of ``device.yaml`` with NumPy
generators spawned from ``SeedSequence(base.seed)`` (truncated normal or log-normal per
parameter, correlations kept where the fit gives them); stuck devices; initial conductances
(mid-range with spread, or random initial weights programmed by counted pulses through the device
law). The draw is stored data (``arrays.zarr``, written by :mod:`pipeline.stages.instantiate`),
never recomputed.

``Crossbars`` bundles what the kernels need: :class:`~pipeline.crossbar.kernels.Devices`,
:class:`~pipeline.crossbar.kernels.Physics` and the initial conductances.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..devices import law, population, spec as dspec
from ..errors import InputError
from . import kernels as K
from . import schemes as KS

PARAM_NAMES = population.PARAM_NAMES


@dataclass
class Crossbars:
    """Everything the kernels need about the hardware of one network."""

    dev: K.Devices
    ph: K.Physics
    g0: np.ndarray  # (P, N) initial conductances
    sizes: list[int]  # layer widths, input first
    attrs: dict  # mapping, scales, family, source: stored with the arrays

    @property
    def n_layers(self) -> int:
        return len(self.sizes) - 1

    def weights0(self) -> np.ndarray:
        """Initial weights read back from the devices, flat (N,)."""
        return initial_weights(self.g0, self.ph, self.dev)


def initial_weights(g: np.ndarray, ph: K.Physics, dev: K.Devices | None = None) -> np.ndarray:
    """Weights read back from conductances ``g`` (P, N), flat (N,) (a general tile needs ``dev``)."""
    if ph.mapping == K.MAP_DIFFERENTIAL:
        return np.ascontiguousarray((g[0] - g[1]) / ph.g_scale)
    if ph.mapping == K.MAP_PLANES:
        t = sum(dev.coef[p] * (g[p] - dev.ref[p]) for p in range(g.shape[0]))
        if dev.zero.shape[0]:  # the written pair's zero-shift offset
            t = t - dev.coef[dev.write[0]] * dev.zero
        return np.ascontiguousarray(t / ph.g_scale)
    return np.ascontiguousarray((g[0] - ph.g_ref) / ph.g_scale)


def layer_block(flat: np.ndarray, dev: K.Devices, layer: int) -> np.ndarray:
    """Layer ``layer`` of an array in the flat layout (last axis N) as ``(..., rows, cols)``."""
    r, c, o = int(dev.rows[layer]), int(dev.cols[layer]), int(dev.off[layer])
    return flat[..., o:o + r * c].reshape(flat.shape[:-1] + (r, c))


def geometry(sizes: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows = np.asarray(sizes[1:], np.int64)
    cols = np.asarray([s + 1 for s in sizes[:-1]], np.int64)
    off = np.zeros(len(rows) + 1, np.int64)
    off[1:] = np.cumsum(rows * cols)
    return off, rows, cols


def nominal_steps(spec: dspec.DeviceSpec, tables) -> tuple[float, float]:
    """Mean |ΔG| of one potentiation and one depression pulse at mid-range (population means)."""
    if spec.model == "table":
        tab_g, tab_nb, tab_p, tab_np, tab_up, tab_down = tables
        ups, dns = [], []
        for t in range(len(tab_nb)):
            nb, m = tab_nb[t], tab_np[t]
            k = int(nb // 2)
            p = tab_p[t, :m]
            ups.append(np.trapezoid(tab_up[t, :m, k], p))
            dns.append(-np.trapezoid(tab_down[t, :m, k], p))
        return float(np.mean(ups)), float(np.mean(dns))
    code = law.FAMILY_CODES[spec.model]
    gmin, gmax = spec.mean("g_min_S"), spec.mean("g_max_S")
    mid = 0.5 * (gmin + gmax)
    args = (gmin, gmax, spec.mean("dg_up_S"), spec.mean("dg_down_S"), spec.mean("gamma_up"), spec.mean("gamma_down"))
    up = float(law.mean_step_np(code, 1, mid, *args))
    dn = float(-law.mean_step_np(code, -1, mid, *args))
    if up <= 0 or dn <= 0:
        raise InputError("device.yaml", f"the {spec.model} law gives no mean step at mid-range (up {up:.3g} S, down {dn:.3g} S)")
    return up, dn


def build(p, spec: dspec.DeviceSpec, sizes: list[int]) -> Crossbars:
    """Draw a network's arrays from the device population and the ``array``/``base`` params."""
    a = p.array
    off, rows, cols = geometry(sizes)
    N = int(off[-1])
    P = 2 if a.mapping == "differential" else 1
    ss = np.random.SeedSequence([p.base.seed, 0xA55A])
    rng_par, rng_stuck, rng_init = (np.random.default_rng(s) for s in ss.spawn(3))
    use_table = spec.model == "table" or (p.device.use == "table" and spec.table is not None)
    if use_table:
        tables = population.load_tables(spec)
        if p.device.table_window == "aligned":
            tables = align_windows(tables)
        T = len(tables[1])
        table_idx = rng_par.integers(0, T, size=(P, N)).astype(np.int64)
        nb = tables[1]
        gmin = np.array([tables[0][t, 0] for t in range(T)])[table_idx]
        gmax = np.array([tables[0][t, nb[t] - 1] for t in range(T)])[table_idx]
        pars = {"g_min": gmin, "g_max": gmax}
        for nm in ("dg_up", "dg_down", "gamma_up", "gamma_down"):
            pars[nm] = np.zeros((P, N))
        family = law.TABLE
        table_spec = dspec.DeviceSpec(model="table", population=spec.population, table=spec.table)
        up, dn = nominal_steps(table_spec, tables)
    else:
        tables = law.empty_tables()
        table_idx = np.zeros((P, N), np.int64)
        drawn = population.draw(spec, P * N, rng_par, a.d2d_dist, a.d2d)
        pars = {nm: drawn[nm].reshape(P, N) for nm in PARAM_NAMES}
        family = law.FAMILY_CODES[spec.model]
        up, dn = nominal_steps(spec, tables)
    mean_range = float(np.mean(pars["g_max"] - pars["g_min"]))
    g_scale = mean_range / a.w_max
    g_ref = float(np.mean(pars["g_min"])) + a.g_ref * mean_range
    lo, hi = float(pars["g_min"].max()), float(pars["g_max"].min())
    if a.mapping == "reference" and not lo <= g_ref <= hi:
        raise InputError("array.g_ref", f"got {a.g_ref} (G_ref = {g_ref:.4g} S), which lies outside the range every device "
                                        f"covers ({lo:.4g}..{hi:.4g} S); expected a fraction that keeps G_ref inside it")
    stuck = np.zeros((P, N), np.uint8)
    x0 = np.clip(rng_init.normal(a.init_center, a.init_spread, size=(P, N)), 0.0, 1.0)
    g0 = pars["g_min"] + x0 * (pars["g_max"] - pars["g_min"])
    if a.stuck_fraction > 0:
        m = rng_stuck.random((P, N)) < a.stuck_fraction
        high = rng_stuck.random((P, N)) < a.stuck_high
        stuck[m] = 1
        g0 = np.where(m & high, pars["g_max"], np.where(m, pars["g_min"], g0))
    c = np.ascontiguousarray
    dev = K.Devices(*(c(pars[nm], np.float64) for nm in PARAM_NAMES), c(stuck), c(table_idx),
                    *(c(t) for t in tables), off, rows, cols, *K.tile(K.MAPPINGS[a.mapping], P, g_ref))
    ph = physics(p, family=family, mapping=a.mapping, g_scale=g_scale, g_ref=g_ref,
                 c2c=0.0 if use_table else spec.c2c_std, dw_pot=up / g_scale, dw_dep=dn / g_scale)
    g0 = c(g0, np.float64)
    attrs = {"model": "table" if use_table else spec.model, "source": spec.source, "mapping": a.mapping,
             "g_scale_S": g_scale, "g_ref_S": g_ref, "dg_nominal_up_S": up, "dg_nominal_down_S": dn,
             "c2c_std": ph.c2c, "sizes": list(map(int, sizes)), "seed": int(p.base.seed), "init": a.init}
    if a.init == "programmed":
        attrs["init_pulses"] = program_weights(g0, dev, ph, target_weights(sizes, a, rng_init), seed=p.base.seed)
    return Crossbars(dev, ph, g0, list(sizes), attrs)


def align_windows(tables):
    """Look-up tables with every measured window moved (ΔG(G) shape and width kept) so that its
    centre is the mean centre of the tables.

    The measured devices' windows lie at different G, offset by more than their width (enode:
    G_min 20.5–24.6 mS, width 2.5–3.2 mS); kept where measured, a differential pair of two such
    devices often cannot reach w = 0 (e.g. w ∈ [−9.9, −2.3] at w_max 4), every pair carries an
    offset of rms ~2.9 weight units and a sigmoid network collapses to the class prior."""
    tab_g, tab_nb, tab_p, tab_np, tab_up, tab_down = tables
    nb = np.asarray(tab_nb)
    centres = np.array([0.5 * (tab_g[t, 0] + tab_g[t, nb[t] - 1]) for t in range(len(nb))])
    shifted = np.ascontiguousarray(tab_g + (centres.mean() - centres)[:, None])
    return shifted, tab_nb, tab_p, tab_np, tab_up, tab_down


PROGRAM_PASSES = 3
STREAM_PROGRAM_STEP = 1 << 50  # steps of the initial programming, apart from any training step


def target_weights(sizes: list[int], a, rng: np.random.Generator) -> np.ndarray:
    """Initial weights to program, flat (N,): U(-b, b) per layer, b = init_weight/√fan-in (≤ w_max)."""
    out = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        b = min(a.init_weight / np.sqrt(fan_in + 1), a.w_max)
        out.append(rng.uniform(-b, b, fan_out * (fan_in + 1)))
    return np.concatenate(out)


def program_weights(g: np.ndarray, dev: K.Devices, ph: K.Physics, target: np.ndarray, *, seed: int) -> dict:
    """Program ``target`` weights by counted pulses (write, read back, write the rest; a few
    passes), through the same encoding and device law as training, without a pulse cap.
    Changes ``g`` in place; returns the pulses used and the remaining weight error."""
    prog = ph._replace(n_max=1 << 30, encoding=K.ENC_NEAREST)
    cu, cd = np.zeros(g.shape, np.int64), np.zeros(g.shape, np.int64)
    for k in range(PROGRAM_PASSES):
        dw = np.ascontiguousarray(target - initial_weights(g, ph, dev))
        K.program(g, dev, prog, dw, seed, STREAM_PROGRAM_STEP + k, cu, cd)
    err = target - initial_weights(g, ph, dev)
    return {"pulses_up": int(cu.sum()), "pulses_down": int(cd.sum()), "passes": PROGRAM_PASSES,
            "rms_weight_error": float(np.sqrt(np.mean(err ** 2)))}


def physics(p, *, family, mapping, g_scale, g_ref, c2c, dw_pot, dw_dep) -> K.Physics:
    a = p.array
    return K.Physics(
        family=int(family), mapping=K.MAPPINGS[mapping] if isinstance(mapping, str) else int(mapping),
        g_scale=float(g_scale), g_ref=float(g_ref), c2c=float(c2c), read_noise=float(a.read_noise),
        w_max=float(a.w_max), adc_bits=int(a.adc_bits) if a.adc else 0, adc_range=float(a.adc_range),
        out_clip=float(a.out_clip), drift=float(np.exp(-1.0 / a.drift_tau)) if a.drift_tau > 0 else 1.0,
        drift_rest=float(a.drift_rest), encoding=K.ENCODINGS[a.encoding], n_max=int(a.n_max),
        threshold=float(a.threshold), policy=K.POLICIES[a.policy], dw_pot=float(dw_pot), dw_dep=float(dw_dep),
        parallel_min=int(p.train.parallel_min))


def network_sizes(n_features: int, hidden: list[int], n_classes: int) -> list[int]:
    sizes = [int(n_features)] + [int(h) for h in hidden] + [int(n_classes)]
    for k, s in enumerate(sizes):
        if s < 1:
            raise InputError(f"network.hidden[{k - 1}]", f"got {s}, expected a layer width >= 1")
    return sizes


def _pair_of_pairs(net: Crossbars, gamma: float, seed: int, scheme: str, dw_scale: float) -> tuple:
    """The four-plane tile of ``carry`` and ``tiki-taka``: W = γ·(G0 − G1)/g_scale + (G2 − G3)/g_scale.
    Planes 2, 3 (the slow pair) are the stored array's devices and initial conductances, so the
    initial weights are the array's; planes 0, 1 (the fast pair that training pulses) are further
    devices of the same population: the array's own per-device parameters dealt to other
    cross-points by a seeded permutation (the same empirical device-to-device spread, no re-fit),
    both devices of a pair started at the middle of their common range (fast weight 0; where the
    two ranges do not overlap, the nearest bound). The nominal step of a training pulse is
    ``dw_scale`` × the array's (in the units the training requests are made in)."""
    dev, ph = net.dev, net.ph
    if ph.mapping != K.MAP_DIFFERENTIAL:
        raise InputError("train.scheme", f"{scheme} needs the differential mapping (array.mapping: differential)")
    N = net.g0.shape[1]
    perm = np.random.default_rng(np.random.SeedSequence([int(seed), 0xCA55])).permutation(N)

    def planes(a):
        return np.ascontiguousarray(np.concatenate([a[:, perm], a]))

    g_min, g_max = planes(dev.g_min), planes(dev.g_max)
    lo = np.maximum(g_min[0], g_min[1])
    hi = np.minimum(g_max[0], g_max[1])
    mid = 0.5 * (lo + hi)
    g0 = np.concatenate([np.clip(mid, g_min[0], g_max[0])[None], np.clip(mid, g_min[1], g_max[1])[None], net.g0])
    coef, ref, write = K.tile(K.MAP_PLANES, 4, coef=(gamma, -gamma, 1.0, -1.0), ref=(0.0,) * 4, write=(0, 1))
    dev4 = dev._replace(g_min=g_min, g_max=g_max, dg_up=planes(dev.dg_up), dg_down=planes(dev.dg_down),
                        gamma_up=planes(dev.gamma_up), gamma_down=planes(dev.gamma_down), stuck=planes(dev.stuck),
                        table=planes(dev.table), coef=coef, ref=ref, write=write)
    ph4 = ph._replace(mapping=K.MAP_PLANES, dw_pot=ph.dw_pot * dw_scale, dw_dep=ph.dw_dep * dw_scale)
    return dev4, ph4, np.ascontiguousarray(g0)


def with_carry_pair(net: Crossbars, gamma: float, seed: int) -> Crossbars:
    """The ``carry`` scheme's tile (DESIGN §1.6): four planes per cross-point,
    W = γ·(G0 − G1)/g_scale + (G2 − G3)/g_scale (:func:`_pair_of_pairs`); training requests are
    weight changes, so the nominal weight step of a training pulse is γ × the array's."""
    dev4, ph4, g0 = _pair_of_pairs(net, gamma, seed, "carry", gamma)
    attrs = dict(net.attrs, carry_gamma=float(gamma), planes=4)
    return Crossbars(dev4, ph4, g0, list(net.sizes), attrs)


def with_transfer_pair(net: Crossbars, gamma: float, seed: int) -> Crossbars:
    """The ``tiki-taka`` tile: the four planes of :func:`_pair_of_pairs`, A = (G0 − G1)/g_scale
    the fast pair, C = (G2 − G3)/g_scale the slow pair, forward weight γ·A + C (γ = 0: C alone,
    aihwkit's default). Training requests are changes of A (A's own units), so a training pulse
    has the array's nominal step; so has a transfer pulse into C."""
    dev4, ph4, g0 = _pair_of_pairs(net, gamma, seed, "tiki-taka", 1.0)
    attrs = dict(net.attrs, tt_gamma=float(gamma), planes=4)
    return Crossbars(dev4, ph4, g0, list(net.sizes), attrs)


def as_planes(net: Crossbars) -> Crossbars:
    """A standard tile (differential pair, or one device against ``g_ref``) as a general tile of
    the same planes (coef (1, −1) / (1,), ref 0 / g_ref): the same weights, the same reads to the
    bit; what a per-cross-point zero offset needs."""
    ph = net.ph
    if ph.mapping == K.MAP_PLANES:
        return net
    if ph.mapping == K.MAP_DIFFERENTIAL:
        tile = K.tile(K.MAP_PLANES, 2, coef=(1.0, -1.0), ref=(0.0, 0.0), write=(0, 1))
    else:
        tile = K.tile(K.MAP_PLANES, 1, coef=(1.0,), ref=(ph.g_ref,), write=(0, 0))
    dev = net.dev._replace(coef=tile[0], ref=tile[1], write=tile[2])
    return Crossbars(dev, ph._replace(mapping=K.MAP_PLANES), net.g0, list(net.sizes), dict(net.attrs))


def zero_shift(net: Crossbars, cycles: int, seed: int) -> Crossbars:
    """Zero-shift calibration (``train.zero_shift``): every device of the written pair is pulsed
    ``cycles`` times up then down (counted) to its symmetry point, the pair is read there
    (counted, with read noise) and that read becomes the pair's zero (``Devices.zero``, a digital
    value per weight). Where the written pair held the initial weights (a two-plane or one-plane
    tile: the ``direct`` and ``mixed-precision`` schemes), they are programmed back relative to
    the new zero by counted pulses (:func:`program_weights`); a scheme's fast pair (carry,
    tiki-taka) starts at zero. Pulses and reads go to ``attrs["zero_shift"]``."""
    target = net.weights0()
    net = as_planes(net)
    g = net.g0.copy()
    cu, cd = np.zeros(g.shape, np.int64), np.zeros(g.shape, np.int64)
    zero = np.zeros(g.shape[1])
    up, dn, nr = KS.zero_shift_calibrate(g, net.dev, net.ph, int(cycles), int(seed), cu, cd, zero)
    dev = net.dev._replace(zero=np.ascontiguousarray(zero))
    info = {"cycles": int(cycles), "pulses_up": int(up), "pulses_down": int(dn), "reads": int(nr),
            "digital_per_weight": 1.0}
    if g.shape[0] <= 2:
        info["reprogram"] = program_weights(g, dev, net.ph, target, seed=int(seed) ^ 0x2E60)
    return Crossbars(dev, net.ph, np.ascontiguousarray(g), list(net.sizes), dict(net.attrs, zero_shift=info))
