"""Lightning callbacks: checkpoints (best and always-current last), sequence-length warmup, throughput and
memory, audio samples, preemption (SIGTERM / SIGINT / SIGUSR1) checkpoints, the global RNG state."""
