"""The selective scan: ``reference.py`` (the oracle), ``cpu.py`` (numba, kernels in ``cpu_numba.py``), ``triton.py``
(kernels in ``triton_kernels.py``), and ``common.py``, the autograd wiring and gradient order of both native
backends. Importing this package imports no backend."""
