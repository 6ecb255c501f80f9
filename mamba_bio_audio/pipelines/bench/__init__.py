"""``mamba-bio-audio bench ...``: benchmarks users run on their own hardware; JSON under benchmarks/results/."""
