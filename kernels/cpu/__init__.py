"""CPU backend: the selective scan as numba kernels (forward and backward), and the conv's decode step."""
from mamba_bio_audio.kernels.cpu.conv1d_update import causal_conv1d_update_cpu
from mamba_bio_audio.kernels.cpu.selective_scan import selective_scan_cpu

__all__ = ["causal_conv1d_update_cpu", "selective_scan_cpu"]
