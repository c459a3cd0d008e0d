"""Numba kernels of a crossbar (DESIGN §1.4, §2.3): forward and transposed reads, pulse updates,
retention drift. They know only ndarrays and scalars.

Layout. All layers of a network live in one flat buffer: layer ``l`` occupies
``[off[l], off[l] + rows[l]·cols[l])`` in row-major order (``cols`` includes the bias column).
Conductances ``g`` and every per-device parameter have shape ``(P, N)`` with ``P = 2`` for the
``differential`` mapping (pair 0 = G⁺, pair 1 = G⁻) and ``P = 1`` for ``reference``.
The weight of a cross-point is read back from the devices, never taken from a requested update:
``w = (G⁺ − G⁻) / g_scale`` or ``w = (G − g_ref) / g_scale``.

Per-device arrays travel in :class:`Devices`, scalars in :class:`Physics` (both NamedTuples that
numba accepts as arguments). ``g`` and the pulse counters travel separately so that a probe can
run on a copy.

Reads add Gaussian noise on every output line: ``std = read_noise · w_max · √P · ‖x‖₂`` — the
output-referred sum of an independent conductance read error of ``read_noise`` × (device range)
on every device of the line. Then optional clipping to ``±out_clip`` and ADC quantisation to
``adc_bits`` over ``±adc_range``.

Updates: ``n = round(|ΔW| / Δw_nominal)`` by the chosen encoding (nearest, stochastic rounding,
floor, or sign: one pulse when ``|ΔW| > threshold·Δw_nominal``; stochastic-sparse: stochastic
rounding whose draws of an outer-product write are made row by row, see ``updates._rows``), capped at ``n_max``; each pulse
goes through the device law one at a time (``law.apply_pulses``). ``Δw_nominal`` is the mean step
of the polarity used (potentiation ``dw_pot``, depression ``dw_dep``), so the controller
compensates the mean up/down asymmetry. Differential policy for ΔW > 0: potentiate G⁺ (0),
depress G⁻ (1) or alternate between the two from sample to sample (2); ΔW < 0 mirrors it.
Threads: the ``*_parallel`` kernels (and the ``update_layer`` / ``read_fwd`` / ``read_tr``
dispatchers that reach them) are compiled per process and never cached. A cached library that
contains ``prange`` code carries gufunc symbols named by a per-process counter; loading two such
libraries written by different processes (a test session does this) can bind the wrong code and
crash (numba issues #10128, #4807). The training loop therefore calls the serial kernels and
stays cached; a run asked for threads (``train --threads``, sweep ``--threads``) uses an uncached
twin of the loop, compiled in its own process, that calls the dispatchers instead
(:mod:`pipeline.training.threaded`).
Cached reads: ``terms(g, dev, ph)`` derives once the term every read multiplies (G⁺ − G⁻, G − G_ref
or the planes' sum: the weight matrix × ``g_scale``); the ``*_t`` reads use it, and every write that
receives it updates the entry of each device it pulses, so cached and uncached reads give the same
bits while a read touches one number per cross-point. The training loop builds it at the start of
every ``run_epoch`` call (it is derived state: not checkpointed).
Randomness only from the counter-based generator keyed on (seed, stream, step, device index,
pulse): results are bit-identical for any thread count.

Modules: :mod:`.layout` (constants, :class:`Devices`, :func:`tile`, :class:`Physics`),
:mod:`.reads`, :mod:`.updates` (pulses, ``program``, drift); this module is the one import for
their users (``from pipeline.crossbar import kernels as K``).
"""

from __future__ import annotations

from .layout import (  # noqa: F401
    ENC_FLOOR, ENC_NEAREST, ENC_SIGN, ENC_SPARSE, ENC_STOCHASTIC, ENCODINGS, MAP_DIFFERENTIAL, MAP_PLANES, MAP_REFERENCE, MAPPINGS,
    POL_ALTERNATE, POL_DEPRESS, POL_POTENTIATE, POLICIES, SHAPED, Devices, Physics, tile)
from .reads import (  # noqa: F401
    read_fwd, read_fwd_t, read_forward, read_forward_parallel, read_forward_t, read_forward_t_parallel, read_tr, read_tr_t,
    read_transposed, read_transposed_parallel, read_transposed_t, read_transposed_t_parallel, sync_all, term, terms,
    weight, weights)
from .updates import (  # noqa: F401
    Q_HUGE, ROW_BLOCK, ROWS_TAG, SPARSE_P_MAX, _PHI2, drift, potentiate_route, program, pulse_count, update_layer, update_layer_parallel,
    update_layer_serial)
