"""Compute kernels, one subpackage per op, each holding its backends side by side:

* ``selective_scan/``: ``reference.py`` (pure torch, the oracle), ``cpu.py`` (numba kernels in ``cpu_numba.py``),
  ``triton.py`` (kernels in ``triton_kernels.py``), ``common.py`` (autograd wiring both native backends share);
* ``causal_conv1d/``: ``causal_conv1d`` and its decode step ``causal_conv1d_update``; ``reference.py``, ``cpu.py``
  (decode step only), ``triton.py`` (kernels in ``triton_kernels.py``);
* ``rms_norm/``: ``reference.py``, ``triton.py``;
* ``selective_state_update/``: ``reference.py``, ``triton.py``;
* ``_triton_common.py``: what every Triton backend shares.

Every backend function has the signature of its ``*_ref`` twin in the op's ``reference.py``. Each op registers its
own ``torch.library`` custom ops (namespace ``mamba_bio_audio``) in its backend modules. Reach the kernels through
:mod:`mamba_bio_audio.ops`, which validates arguments and dispatches; nothing here imports the rest of the project,
and importing this package imports no backend.
"""
