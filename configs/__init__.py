"""Configuration tree shipped as package data (model presets now; the Hydra tree grows here)."""
