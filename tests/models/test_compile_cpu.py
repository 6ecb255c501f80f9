"""A Mamba LM compiles whole (``torch.compile(fullgraph=True)``) on the CPU: the custom scan op's fake kernels (with
the channels-last strides the real op returns) and the CPU conv's autograd trace without a graph break, and the
compiled forward and gradients equal eager ones.

The AOT-autograd backend traces exactly what inductor traces (dynamo's graph, fake tensors, the joint forward and
backward) without inductor's C++ code generation, which takes over a minute on 2 cores; ``bench cpu`` times the
inductor build against eager.
"""
import torch

from mamba_bio_audio.models.factory import model_class

def test_mamba_lm_compiles_fullgraph_and_matches_eager(make_mamba_config, make_dna):
    config = make_mamba_config(n_layer=1)
    torch.manual_seed(0)
    model = model_class(config)(config)
    ids = make_dna(2, 40)
    weights = torch.linspace(-1, 1, 16)

    def loss_and_grads(forward):
        logits = forward(ids).logits
        loss = (logits * weights).mean()
        grads = torch.autograd.grad(loss, list(model.parameters()))
        return logits.detach(), grads

    # eager first: the first call of each op imports its backend and logs the choice, which dynamo cannot trace
    expected_logits, expected_grads = loss_and_grads(model)
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    logits, grads = loss_and_grads(compiled)
    torch.testing.assert_close(logits, expected_logits, rtol=1e-5, atol=1e-6)
    for (name, _), grad, expected in zip(model.named_parameters(), grads, expected_grads):
        torch.testing.assert_close(grad, expected, rtol=1e-4, atol=1e-6, msg=lambda m: f"{name}: {m}")
