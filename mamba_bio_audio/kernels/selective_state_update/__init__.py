"""One decode step of the selective scan: ``reference.py`` (the oracle), ``triton.py``. Importing this package
imports no backend."""
