"""(Residual add +) RMSNorm: ``reference.py`` (the oracle), ``triton.py``. Importing this package imports no
backend."""
