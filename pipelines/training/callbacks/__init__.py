"""Lightning callbacks: checkpoints (best and always-current last), sequence-length warmup, throughput and
memory, audio samples, Ctrl-C checkpoints."""
