"""The causal depthwise conv1d and its decode step: ``reference.py`` (the oracle), ``cpu.py`` (the decode step),
``triton.py`` (both, kernels in ``triton_kernels.py``). Importing this package imports no backend."""
