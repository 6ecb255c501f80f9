"""Fixtures shared by the model and pipeline tests: scaled-down copies of the three SaShiMi presets, tiny Mamba and
Transformer++ models and seeded DNA batches (CPU, fp32).

On a machine without CUDA the Triton kernels are tested under Triton's interpreter, which Triton reads from
``TRITON_INTERPRET`` when it is first imported and a kernel is decorated. A test module anywhere may import triton
while pytest collects it (``pytest.importorskip("triton")``), so the variable is set here, in the first conftest
pytest loads, for the whole session. It only lets the triton backend accept CPU tensors; the tests of the state
without the interpreter set ``ops.triton_interpreter_on`` themselves.
"""
import dataclasses
import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from mamba_bio_audio.config import MambaConfig, TransformerConfig
from mamba_bio_audio.models.sashimi import SashimiLM
from mamba_bio_audio.models.sashimi_config import SashimiConfig

# preset -> overrides: widths 8-16, 1-2 blocks per stage, pools 2-4 (unequal in one, to catch index mix-ups)
SCALED = {
    "youtubemix": dict(d_model=8, n_layers=1, pool=[4, 4]),
    "sc09_small": dict(d_model=16, n_layers=2, pool=[2, 2]),
    "sc09_large": dict(d_model=12, n_layers=2, pool=[2, 3]),
}


def scaled_model(name: str, seed: int = 0) -> SashimiLM:
    """The preset ``name`` scaled down (see SCALED), seeded, in eval mode."""
    torch.manual_seed(seed)
    return SashimiLM(SashimiConfig.from_preset(name, **SCALED[name])).eval()


@pytest.fixture
def make_model():
    """Factory: ``make_model(preset_name, seed=0)`` → a scaled-down SashimiLM."""
    return scaled_model


@pytest.fixture
def tiny_model() -> SashimiLM:
    """sc09_large scaled down: d_model 12, 2 blocks per stage, pools [2, 3]."""
    return scaled_model("sc09_large")


def tiny_mamba_config(**overrides) -> MambaConfig:
    """d_model 16, 2 layers, d_state 4, the DNA vocabulary (12 padded to 16) with [PAD] = 4."""
    return MambaConfig(**{"d_model": 16, "n_layer": 2, "vocab_size": 12, "ssm_cfg": {"d_state": 4},
                          "pad_token_id": 4, **overrides})


def tiny_transformer_config(**overrides) -> TransformerConfig:
    """d_model 32, 2 layers of 4 heads, SwiGLU 64, the DNA vocabulary with [PAD] = 4."""
    return TransformerConfig(**{"d_model": 32, "n_layer": 2, "n_head": 4, "d_intermediate": 64, "vocab_size": 12,
                                "pad_token_id": 4, **overrides})


def dna(batch: int, length: int, seed: int = 0) -> torch.Tensor:
    """(batch, length) int64 ids of A, C, G, T (7..10), seeded."""
    return torch.randint(7, 11, (batch, length), generator=torch.Generator().manual_seed(seed))


def gradients(model) -> dict[str, torch.Tensor]:
    """Every parameter's gradient (cloned), by name; zeroes them afterwards."""
    grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    return grads


def assert_close_scaled(actual: torch.Tensor, expected: torch.Tensor) -> None:
    """The fp32 reference tolerance (rtol 6e-4, atol 2e-3), with atol relative to the tensor's largest
    magnitude so that small gradients are still compared."""
    scale = max(expected.abs().max().item(), 1e-12)
    torch.testing.assert_close(actual, expected, rtol=6e-4, atol=2e-3 * scale)


@pytest.fixture(scope="session")
def make_mamba_config():
    """Factory: the tiny Mamba config with keyword overrides."""
    return tiny_mamba_config


@pytest.fixture(scope="session")
def make_transformer_config():
    """Factory: the tiny Transformer++ config with keyword overrides."""
    return tiny_transformer_config


@pytest.fixture(scope="session")
def make_dna():
    """Factory: dna(batch, length, seed=0)."""
    return dna


@pytest.fixture(scope="session")
def grads_of():
    """gradients(model): every parameter's gradient by name, then zeroed."""
    return gradients


@pytest.fixture(scope="session")
def close():
    """assert_close_scaled(actual, expected)."""
    return assert_close_scaled


@pytest.fixture
def configure_kernels():
    """``ops.configure`` for one test: the kernel settings in force before the test are restored after it."""
    from mamba_bio_audio import ops

    previous = ops.settings()
    yield ops.configure
    ops.configure(**dataclasses.asdict(previous))


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module, restored afterwards: tiny models' many short ops run faster so, and much
    faster on a busy machine, where a second OpenMP thread waits for its descheduled partner."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def run_bench():
    """``run_bench(module, argv) -> exit code``: a ``bench`` subcommand module's ``run`` on ``argv`` parsed by its
    own ``add_arguments``, in process; the torch and numba thread counts its ``--threads`` sets are restored
    afterwards."""
    import argparse

    from mamba_bio_audio import ops

    def run(module, argv: list[str]) -> int:
        parser = argparse.ArgumentParser()
        module.add_arguments(parser)
        args = parser.parse_args(argv)
        threads = torch.get_num_threads(), ops.cpu_threads()
        try:
            return module.run(args)
        finally:
            ops.set_cpu_threads(threads[1])
            torch.set_num_threads(threads[0])
    return run
