"""Compute kernels: ``reference`` (pure torch, the oracle), ``cpu`` (numba), ``triton`` (GPU).

Reach them through :mod:`mamba_bio_audio.ops`; this package imports nothing heavy at import time.
"""
