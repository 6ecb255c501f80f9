"""Numbers the kernels and the library must agree on (the library reads them through :mod:`mamba_bio_audio.ops`)."""

SCAN_TILE_STEPS = 64
"""The longest tile along L, ``BLOCK_L``, in steps, that the Triton selective scan is meant to run with
(``selective_scan/triton_kernels.py``, ``scan_config``: 16 by default, 32 or 64 as overrides). A training chunk
(``MambaConfig.chunk_size``) is a multiple of it, so every tile of every chunk is full whichever of them runs."""
