"""Crossbar arrays: counter-based RNG, numba kernels (reads, pulse updates), array instantiation."""
