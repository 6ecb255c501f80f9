"""Evaluation beside the models: count-based baselines, quickstart metrics, length extrapolation."""
