"""Prepared datasets: writing them from raw inputs, reading them, and the windows training draws."""
