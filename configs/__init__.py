"""The Hydra tree and the model presets (`model/`, `sashimi/`), shipped as package data."""
