"""The decode-speed measurements (pipelines/bench/decode_speed.py) and ``bench generate --fast-vs-generic``, which
puts the fused CPU step beside the generic one in one run."""
import argparse
import json
import subprocess
import sys

import pytest
import torch

from mamba_bio_audio.models import MambaLMHeadModel
from mamba_bio_audio.pipelines.bench import generate
from mamba_bio_audio.pipelines.bench import decode_speed
from mamba_bio_audio.pipelines.bench.decode_speed import measure_decode, measure_sashimi_sampling


@pytest.fixture
def tiny_lm(make_mamba_config) -> MambaLMHeadModel:
    torch.manual_seed(0)
    return MambaLMHeadModel(make_mamba_config())


def test_measure_decode_times_the_path_it_names(tiny_lm):
    fast = measure_decode(tiny_lm, batch=2, tokens=8, prompt_len=3, fast=True)
    generic = measure_decode(tiny_lm, batch=2, tokens=8, prompt_len=3, fast=False)
    assert (fast["path"], generic["path"]) == ("fast", "generic")
    for row in (fast, generic):
        assert (row["batch"], row["tokens"]) == (2, 8)
        assert abs(row["tokens_per_s"] * row["us_per_token"] / 1e6 - 1) < 0.01


def test_a_fused_step_that_falls_back_is_labelled_generic(tiny_lm, tiny_model, configure_kernels):
    configure_kernels(backend="reference")  # the fused step steps aside for any backend but cpu
    assert measure_decode(tiny_lm, batch=1, tokens=4, fast=True)["path"] == "generic"
    assert measure_sashimi_sampling(tiny_model, batch=1, samples=tiny_model.config.total_pool, fast=True)["path"] \
        == "generic"


def test_measure_sashimi_sampling_counts_every_stream(tiny_model):
    row = measure_sashimi_sampling(tiny_model, batch=3, samples=12, fast=True)
    assert row["path"] == "fast" and (row["batch"], row["samples"]) == (3, 12)
    assert abs(row["samples_per_s_total"] - 3 * row["samples_per_s_per_stream"]) < 1
    assert measure_sashimi_sampling(tiny_model, batch=1, samples=6, fast=False)["path"] == "generic"


def test_the_compiled_generic_step_decodes_what_the_generic_step_decodes(tiny_lm):
    """The compiled step (``measure_compiled_decode``'s) sees the state through a view whose offset stays 1: its
    logits and the layer states it leaves, step after step, equal the eager generic step's, and it compiles once.
    Compiled by the AOT-autograd backend: dynamo's graph as inductor gets it, without inductor's C++ build (the
    view is what is tested; ``bench cpu`` times inductor)."""
    ids = torch.randint(0, 12, (2, 6), generator=torch.Generator().manual_seed(8))
    make_step, timing = decode_speed._compiled_steps(tiny_lm, "aot_eager")
    runs = []
    with torch.no_grad():
        for compiled in (False, True):
            state = tiny_lm.allocate_inference_cache(2, fast=False)
            tiny_lm.prefill(ids[:, :2], state)
            step = make_step(state) if compiled else tiny_lm.step
            logits = [step(ids[:, t], state)[0] for t in range(2, 6)]
            runs.append((torch.stack(logits), [t.clone() for pair in state.key_value_memory_dict.values()
                                               for t in pair], state.seqlen_offset))
    (expected, expected_states, expected_offset), (got, got_states, got_offset) = runs
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    for a, b in zip(got_states, expected_states):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    assert got_offset == expected_offset == 6 and timing["compile_s"] > 0
    row = decode_speed.measure_compiled_decode(tiny_lm, batch=2, tokens=4, backend="aot_eager")
    assert row["path"] == "compiled generic" and (row["batch"], row["tokens"]) == (2, 4)


@pytest.mark.parametrize("kwargs", [dict(batch=0, tokens=4), dict(batch=1, tokens=4, prompt_len=0),
                                    dict(batch=1, tokens=True)])
def test_bad_sizes_are_refused(tiny_lm, kwargs):
    with pytest.raises(ValueError, match="must be a positive integer"):
        measure_decode(tiny_lm, **kwargs)


def test_bench_generate_compares_fast_and_generic_in_one_run(tmp_path):
    run = subprocess.run([sys.executable, "-m", "mamba_bio_audio.pipelines.cli", "bench", "generate", "--batch-sizes",
                          "1", "--samples", "16", "--devices", "cpu", "--threads", "1", "--fast-vs-generic",
                          "--compare-steps", "16", "--out-dir", str(tmp_path)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    (out,) = tmp_path.glob("generate_*.json")
    compared = json.loads(out.read_text())["fast_vs_generic"]
    rows = [(r["model"], r["batch"], r["fast"]["path"], r["generic"]["path"]) for r in compared["rows"]]
    assert rows == [("sashimi_cpu_twin", 1, "fast", "generic"), ("sashimi_cpu_twin", 16, "fast", "generic"),
                    ("sashimi_cpu_twin", 64, "fast", "generic"), ("mamba_lm_4x256", 1, "fast", "generic")]
    for row in compared["rows"]:
        assert row["speedup"] == pytest.approx(row["fast"][row["rate"]] / row["generic"][row["rate"]], rel=0.01)
    assert compared["models"]["sashimi_cpu_twin"]["params"] == 1_099_264 and compared["sashimi_samples"] == 16
    assert set(compared["meets_targets"]) == set(compared["targets"])
    assert "sashimi_cpu_twin" in run.stdout and "mamba_lm_4x256" in run.stdout



def test_bench_generate_refuses_a_bad_compare_steps(tmp_path):
    parser = argparse.ArgumentParser()
    generate.add_arguments(parser)
    with pytest.raises(ValueError, match="--compare-steps must be >= 1"):
        generate.run(parser.parse_args(["--fast-vs-generic", "--compare-steps", "0", "--out-dir", str(tmp_path)]))
    assert not list(tmp_path.iterdir())
