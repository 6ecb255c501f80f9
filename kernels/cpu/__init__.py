"""CPU backend: the selective scan as numba kernels (forward and backward)."""
from mamba_bio_audio.kernels.cpu.selective_scan import selective_scan_cpu

__all__ = ["selective_scan_cpu"]
