"""Seeded generators of synthetic recall tasks: the Mamba paper's selective copying and induction heads (Gu & Dao
2023, §4.1) and Zoology's multi-query associative recall (``mqar``). Nothing is read or written: every batch is
drawn from a ``numpy.random.Generator``."""
