"""Readers of raw formats (FASTA, audio), writers and readers of prepared datasets, example-data sources."""
