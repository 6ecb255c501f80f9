"""Numbers the kernels and the library must agree on (the library reads them through :mod:`mamba_bio_audio.ops`)."""

SCAN_TILE_STEPS = 64
"""The Triton selective scan's longest tile along L, ``BLOCK_L``, in steps (``selective_scan/triton_kernels.py``,
``scan_config``). A training chunk (``MambaConfig.chunk_size``) is a multiple of it, so every tile of every chunk
is full."""
