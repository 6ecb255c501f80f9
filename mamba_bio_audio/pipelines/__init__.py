"""Console entry point, training and sampling workflows, benchmarks, reports."""
