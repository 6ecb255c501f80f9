"""``bench generate --decode-steps``: the decode loop alone, eager on the CPU; CUDA graphs skipped there."""
import torch

from mamba_bio_audio.models.sashimi_config import SashimiConfig
from mamba_bio_audio.pipelines.bench import generate


def test_decode_rows_time_the_eager_loop_and_skip_graphs_on_the_cpu(capsys):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        eager, graphs = generate._bench_decode(SashimiConfig.from_preset("sc09_small"), torch.device("cpu"), [2],
                                               steps=10, seed=0)
    finally:
        torch.set_num_threads(threads)
    assert (eager["mode"], eager["batch"], eager["steps"]) == ("eager", 2, 16)  # rounded up to the pools' 16
    assert abs(eager["samples_per_s_total"] - 2 * eager["samples_per_s_per_stream"]) < 1
    assert abs(eager["latency_ms"] * eager["samples_per_s_per_stream"] / 1e3 - 1) < 0.01
    assert graphs == {"device": "cpu", "backend": "cpu", "batch": 2, "mode": "cuda_graph", "steps": 16,
                      "skipped": "CUDA graphs need a CUDA device"}
    assert generate._meets_targets("sc09_small", [eager, graphs]) is None  # targets are for CUDA
    assert "decode eager" in capsys.readouterr().out
