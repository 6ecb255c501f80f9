"""LightningModules: causal LM pretraining and sequence classification."""
