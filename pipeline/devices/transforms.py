"""Device-population transforms: a fitted :class:`~pipeline.devices.spec.DeviceSpec` changed along
one device non-ideality, for the sweeps of fig5 (no file I/O; DESIGN §2.5).

* ``device.states``    number of states (G_max − G_min) / dG_up; dG_up and dG_down are rescaled
  together (their ratio and relative device-to-device spreads kept);
* ``device.asymmetry`` dG_down / dG_up (dG_up kept);
* ``device.c2c``       cycle-to-cycle noise (relative std of one step);
* ``device.d2d_scale`` multiplies every device-to-device std of the population.

Transforms apply in the order d2d_scale, states, asymmetry, c2c.
"""

from __future__ import annotations

import dataclasses

from .spec import Stat

KEYS = {  # key -> (lower bound, open?, doc)
    "device.states": (1.0, True, "number of states (G_max - G_min) / dG_up"),
    "device.asymmetry": (0.0, True, "dG_down / dG_up"),
    "device.c2c": (0.0, False, "cycle-to-cycle noise, relative std of one step"),
    "device.d2d_scale": (0.0, False, "factor on every device-to-device std"),
}


def transform_spec(spec, changes: dict):
    """A copy of a device population with the ``device.*`` sweep transforms applied."""
    if not changes:
        return spec
    pop = dict(spec.population)
    if "device.d2d_scale" in changes:
        f = float(changes["device.d2d_scale"])
        pop = {k: Stat(v.mean, v.std * f) for k, v in pop.items()}
    up, dn = pop["dg_up_S"], pop["dg_down_S"]

    def scaled(stat, mean):
        return Stat(mean, stat.std * mean / stat.mean if stat.mean > 0 else stat.std)

    if "device.states" in changes:
        rng = pop["g_max_S"].mean - pop["g_min_S"].mean
        new_up = rng / float(changes["device.states"])
        ratio = dn.mean / up.mean
        up, dn = scaled(up, new_up), scaled(dn, new_up * ratio)
    if "device.asymmetry" in changes:
        dn = scaled(dn, up.mean * float(changes["device.asymmetry"]))
    pop["dg_up_S"], pop["dg_down_S"] = up, dn
    c2c = float(changes["device.c2c"]) if "device.c2c" in changes else spec.c2c_std
    return dataclasses.replace(spec, population=pop, c2c_std=c2c)
