"""Shared device descriptions for the device tests (families kept apart: gamma away from 0 and 1)."""

from pipeline.devices import spec as S

G_MIN, G_MAX = 3.0e-4, 1.0e-3
READ = 0.005 * (G_MAX - G_MIN)  # 0.5 % of the range

STEPS = {"constant": (1.4e-5, 1.2e-5, None), "soft-bounds": (1.4e-5, 1.0e-5, None),
         "linear": (2.4e-5, 2.2e-5, 0.7), "power": (1.6e-5, 1.4e-5, 0.5)}


def make_spec(family: str, *, c2c: float = 0.3, read: float = READ, d2d: float = 0.1) -> S.DeviceSpec:
    up, down, gamma = STEPS[family]
    pop = {"g_min_S": G_MIN, "g_max_S": G_MAX, "dg_up_S": up, "dg_down_S": down}
    if gamma is not None:
        pop.update(gamma_up=gamma, gamma_down=gamma)
    return S.from_dict({"model": family, "population": {k: {"mean": v, "std": d2d * v} for k, v in pop.items()},
                        "c2c_std": c2c, "read_noise_S": read})
