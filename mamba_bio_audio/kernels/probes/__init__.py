"""Kernels that measure the device rather than compute an op (reached through ``mamba_bio_audio.ops.probe``):
``exp2_rate.py``, the exponential rate behind the selective scan's exponential floor. Importing this package
imports no kernel."""
