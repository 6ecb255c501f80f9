"""Example data made from Debian and PyPI packages: DNA (hg_small, apes4) and audio (piano, digits)."""
