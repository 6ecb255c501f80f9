"""Outputs people read: PNG plots, WAV clips, Markdown reports and benchmark result files."""
