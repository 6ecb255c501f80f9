"""Training: the run of a composed config, nets, DataModules, LightningModules (tasks) and callbacks."""
