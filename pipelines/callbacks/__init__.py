"""Lightning callbacks: sequence-length warmup, throughput and memory, audio samples, Ctrl-C checkpoints."""
