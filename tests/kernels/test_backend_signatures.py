"""Every backend function in the ops dispatch table has exactly the signature of its reference twin, every op has
an explicit entry for every backend, and every public op (and reference twin) takes upstream's positional
arguments, by name, in order, with upstream's defaults; what we add is keyword-only, what we do not support is
refused by name."""
import inspect

import pytest
import torch

from mamba_bio_audio import ops

ENTRIES = [(op, backend) for op, backends in ops.DISPATCH.items() for backend in backends]
REQUIRED = inspect.Parameter.empty

# The oracle: upstream's positional lists, copied from the upstream files named beside each (mamba_ssm from
# state-spaces/mamba, causal_conv1d from Dao-AILab/causal-conv1d), as (name, default).
UPSTREAM_OPS = {
    # mamba_ssm/ops/selective_scan_interface.py: selective_scan_fn
    "selective_scan_fn": [("u", REQUIRED), ("delta", REQUIRED), ("A", REQUIRED), ("B", REQUIRED), ("C", REQUIRED),
                          ("D", None), ("z", None), ("delta_bias", None), ("delta_softplus", False),
                          ("return_last_state", False)],
    # causal_conv1d/causal_conv1d_interface.py: causal_conv1d_fn
    "causal_conv1d_fn": [("x", REQUIRED), ("weight", REQUIRED), ("bias", None), ("seq_idx", None),
                         ("initial_states", None), ("return_final_states", False), ("final_states_out", None),
                         ("activation", None)],
    # causal_conv1d/causal_conv1d_interface.py: causal_conv1d_update
    "causal_conv1d_update": [("x", REQUIRED), ("conv_state", REQUIRED), ("weight", REQUIRED), ("bias", None),
                             ("activation", None), ("cache_seqlens", None), ("conv_state_indices", None)],
    # mamba_ssm/ops/triton/layer_norm.py: rms_norm_fn
    "rms_norm_fn": [("x", REQUIRED), ("weight", REQUIRED), ("bias", REQUIRED), ("residual", None), ("x1", None),
                    ("weight1", None), ("bias1", None), ("eps", 1e-6), ("dropout_p", 0.0), ("rowscale", None),
                    ("prenorm", False), ("residual_in_fp32", False), ("return_dropout_mask", False)],
    # mamba_ssm/ops/triton/selective_state_update.py: selective_state_update
    "selective_state_update": [("state", REQUIRED), ("x", REQUIRED), ("dt", REQUIRED), ("A", REQUIRED),
                               ("B", REQUIRED), ("C", REQUIRED), ("D", None), ("z", None), ("dt_bias", None),
                               ("dt_softplus", False), ("state_batch_indices", None)],
}

# Upstream's reference twins (same files: selective_scan_ref, causal_conv1d_ref, causal_conv1d_update_ref,
# rms_norm_ref, selective_state_update_ref). Ours take a prefix of each positionally, the rest keyword-only.
UPSTREAM_REFS = {
    "selective_scan_fn": UPSTREAM_OPS["selective_scan_fn"],
    "causal_conv1d_fn": [("x", REQUIRED), ("weight", REQUIRED), ("bias", None), ("initial_states", None),
                         ("return_final_states", False), ("final_states_out", None), ("activation", None)],
    "causal_conv1d_update": [("x", REQUIRED), ("conv_state", REQUIRED), ("weight", REQUIRED), ("bias", None),
                             ("activation", None), ("cache_seqlens", None)],
    "rms_norm_fn": [("x", REQUIRED), ("weight", REQUIRED), ("bias", REQUIRED), ("residual", None), ("x1", None),
                    ("weight1", None), ("bias1", None), ("eps", 1e-6)],
    "selective_state_update": [("state", REQUIRED), ("x", REQUIRED), ("dt", REQUIRED), ("A", REQUIRED),
                               ("B", REQUIRED), ("C", REQUIRED), ("D", None), ("z", None), ("dt_bias", None),
                               ("dt_softplus", False)],
}

POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)

# Upstream arguments we accept by name only to refuse them: (op, argument, a value other than the default).
UNSUPPORTED = [
    ("causal_conv1d_fn", "seq_idx", torch.zeros(2, 9, dtype=torch.int32)),
    ("causal_conv1d_fn", "final_states_out", torch.zeros(2, 4, 3)),
    ("causal_conv1d_update", "cache_seqlens", torch.zeros(2, dtype=torch.int32)),
    ("causal_conv1d_update", "conv_state_indices", torch.zeros(2, dtype=torch.int32)),
    ("rms_norm_fn", "x1", torch.zeros(2, 8)),
    ("rms_norm_fn", "weight1", torch.ones(8)),
    ("rms_norm_fn", "bias1", torch.ones(8)),
    ("rms_norm_fn", "dropout_p", 0.1),
    ("rms_norm_fn", "rowscale", torch.ones(2)),
    ("rms_norm_fn", "return_dropout_mask", True),
    ("selective_state_update", "state_batch_indices", torch.zeros(2, dtype=torch.int32)),
]


def _minimal_call(op):
    """Valid tiny arguments of ``op`` (batch 2), as keywords."""
    if op == "causal_conv1d_fn":
        return dict(x=torch.randn(2, 4, 9), weight=torch.randn(4, 4))
    if op == "causal_conv1d_update":
        return dict(x=torch.randn(2, 4), conv_state=torch.zeros(2, 4, 3), weight=torch.randn(4, 4))
    if op == "rms_norm_fn":
        return dict(x=torch.randn(2, 8), weight=torch.ones(8), bias=None)
    return dict(state=torch.zeros(2, 4, 3), x=torch.randn(2, 4), dt=torch.randn(2, 4), A=-torch.ones(4, 3),
                B=torch.randn(2, 3), C=torch.randn(2, 3))


def test_every_op_names_every_backend():
    for op, backends in ops.DISPATCH.items():
        assert set(backends) == set(ops.BACKENDS), op
        assert backends["reference"].partition(":")[2].endswith("_ref"), op


@pytest.mark.parametrize("op, backend", ENTRIES, ids=[f"{op}-{backend}" for op, backend in ENTRIES])
def test_backend_signature_equals_reference(op, backend):
    if backend == "triton":
        pytest.importorskip("triton")
    assert inspect.signature(ops.kernel(op, backend)) == inspect.signature(ops.kernel(op, "reference"))


@pytest.mark.parametrize("op", list(ops.DISPATCH))
def test_op_takes_upstreams_positional_list_then_keyword_only_additions(op):
    params = list(inspect.signature(getattr(ops, op)).parameters.values())
    positional = [(p.name, p.default) for p in params if p.kind in POSITIONAL]
    assert positional == UPSTREAM_OPS[op]
    added = params[len(positional):]
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in added)
    assert added[-1].name == "backend"


@pytest.mark.parametrize("op", list(ops.DISPATCH))
def test_reference_takes_a_prefix_of_upstreams_reference_list(op):
    params = list(inspect.signature(ops.kernel(op, "reference")).parameters.values())
    positional = [(p.name, p.default) for p in params if p.kind in POSITIONAL]
    assert len(positional) >= 4 and positional == UPSTREAM_REFS[op][:len(positional)]
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params[len(positional):])


@pytest.mark.parametrize("op", list(ops.DISPATCH))
def test_op_accepts_every_argument_of_its_reference(op):
    public = inspect.signature(getattr(ops, op)).parameters
    assert set(inspect.signature(ops.kernel(op, "reference")).parameters) <= set(public)


@pytest.mark.parametrize("op, name, value", UNSUPPORTED, ids=[f"{op}-{name}" for op, name, _ in UNSUPPORTED])
def test_unsupported_upstream_argument_is_refused_by_name(op, name, value):
    with pytest.raises(ValueError, match=rf"{op}: {name} is not supported"):
        getattr(ops, op)(**_minimal_call(op), **{name: value}, backend="reference")
    getattr(ops, op)(**_minimal_call(op), backend="reference")  # and the same call without it runs
