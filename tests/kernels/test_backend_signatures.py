"""Every backend function in the ops dispatch table has exactly the signature of its reference twin, and every op has
an explicit entry for every backend."""
import inspect

import pytest

from mamba_bio_audio import ops

ENTRIES = [(op, backend) for op, backends in ops.DISPATCH.items() for backend in backends]


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
def test_op_signature_is_the_reference_plus_backend(op):
    params = list(inspect.signature(getattr(ops, op)).parameters.values())
    assert params[-1].name == "backend" and params[-1].kind is inspect.Parameter.KEYWORD_ONLY
    assert params[:-1] == list(inspect.signature(ops.kernel(op, "reference")).parameters.values())
