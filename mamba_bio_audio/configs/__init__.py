"""The Hydra tree and the model presets (`model/`), shipped as package data."""
