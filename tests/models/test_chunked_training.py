"""Exact chunked training: loss, every gradient and the final states equal one pass over the whole sequence."""
import pytest
import torch

from mamba_bio_audio.generation import InferenceParams
from mamba_bio_audio.models import MambaForSequenceClassification, MambaLMHeadModel
from mamba_bio_audio.models.chunked import causal_lm_chunked, chunk_lengths
from mamba_bio_audio.modules import Mamba

LENGTH = 4096
UNEVEN = [700, 300, 1000, 64, 1, 1031, 1000]  # 7 chunks; 1 token is shorter than the conv's state


@pytest.fixture(scope="module")
def sequence():
    """(2, L + 1) DNA ids with a few PAD (4) targets, seeded."""
    ids = torch.randint(7, 11, (2, LENGTH + 1), generator=torch.Generator().manual_seed(3))
    ids[1, -100:] = 4
    return ids


@pytest.fixture(scope="module")
def whole_pass(sequence, make_mamba_config, grads_of):
    """(model, loss, gradients, final states) of the unchunked pass of a seeded tiny LM."""
    torch.manual_seed(0)
    model = MambaLMHeadModel(make_mamba_config())
    loss = model(sequence[:, :-1], targets=sequence[:, 1:]).loss
    loss.backward()
    grads = grads_of(model)
    with torch.no_grad():
        _, states = model.backbone.forward_with_state(sequence[:, :-1])
    return model, loss.detach(), grads, states


def test_four_chunks_through_the_config_equal_the_whole_pass(sequence, whole_pass, grads_of, close):
    model, loss, grads, _ = whole_pass
    model.config.chunk_size = 1024
    out = model(sequence[:, :-1], targets=sequence[:, 1:])
    assert out.logits is None
    out.loss.backward()
    model.config.chunk_size = None
    close(out.loss.detach(), loss)
    chunked = grads_of(model)
    assert chunked.keys() == grads.keys()
    for name, grad in grads.items():
        close(chunked[name], grad)


def test_seven_uneven_chunks_equal_the_whole_pass(sequence, whole_pass, grads_of, close):
    model, loss, grads, states = whole_pass
    out = causal_lm_chunked(model, sequence[:, :-1], sequence[:, 1:], UNEVEN, pad_token_id=4)
    out.loss.backward()
    close(out.loss.detach(), loss)
    chunked = grads_of(model)
    for name, grad in grads.items():
        close(chunked[name], grad)
    for (conv, ssm), (conv_ref, ssm_ref) in zip(out.states, states, strict=True):
        close(conv.detach(), conv_ref)
        close(ssm.detach(), ssm_ref)


def test_chunk_lengths():
    assert chunk_lengths(4096, 1024) == [1024] * 4
    assert chunk_lengths(4096, 640) == [640] * 6 + [256]
    assert chunk_lengths(100, 1024) == [100]
    assert chunk_lengths(4096, UNEVEN) == UNEVEN


def test_every_chunk_but_the_last_is_run_again_in_backward(make_mamba_config, make_dna):
    """Activation checkpointing recomputes each chunk's forward in backward, except the last chunk's: its backward
    comes first, so it keeps its activations. A training step over 4 chunks runs a layer 4 + 3 times."""
    torch.manual_seed(0)
    model = MambaLMHeadModel(make_mamba_config())
    runs, run_chunk = [], model.backbone.forward_with_state

    def counted(*args, **kwargs):
        runs.append(1)
        return run_chunk(*args, **kwargs)

    model.backbone.forward_with_state = counted  # what each chunk, and each recompute of one, calls
    ids = make_dna(2, 257)
    causal_lm_chunked(model, ids[:, :-1], ids[:, 1:], 64).loss.backward()
    assert len(runs) == 4 + 3
    with torch.no_grad():  # nothing to recompute without autograd
        runs.clear()
        causal_lm_chunked(model, ids[:, :-1], ids[:, 1:], 64)
    assert len(runs) == 4


def test_chunked_logits_without_labels(make_mamba_config, make_dna, close):
    torch.manual_seed(0)
    model = MambaLMHeadModel(make_mamba_config()).eval()
    ids = make_dna(2, 300)
    expected = model(ids).logits
    model.config.chunk_size = 64
    close(model(ids).logits, expected)
    close(model(ids, num_last_tokens=5).logits, expected[:, -5:])


def test_functional_state_matches_the_decoding_cache(make_dna, close):
    """forward_with_state in pieces = one forward; its states = the in-place inference cache after a prefill."""
    torch.manual_seed(0)
    mixer = Mamba(16, d_state=4, layer_idx=0)
    u = torch.randn(2, 50, 16)
    whole = mixer(u)
    out1, state = mixer.forward_with_state(u[:, :2])
    out2, state = mixer.forward_with_state(u[:, 2:31], state)
    out3, state = mixer.forward_with_state(u[:, 31:], state)
    close(torch.cat([out1, out2, out3], dim=1), whole)
    params = InferenceParams(max_seqlen=50, max_batch_size=2)
    mixer(u, inference_params=params)
    conv_cache, ssm_cache = params.key_value_memory_dict[0]
    close(state[0].detach(), conv_cache[..., 1:])
    close(state[1].detach(), ssm_cache)


def test_gradient_reaches_the_initial_state(make_mamba_config, make_dna):
    torch.manual_seed(0)
    model = MambaLMHeadModel(make_mamba_config())
    ids = make_dna(1, 65)
    _, prefix = model.backbone.forward_with_state(ids[:, :32])
    grads = []
    for chunks in (16, [32]):  # two chunks, and the 32 tokens in one piece: the same gradient into the state
        states = [(conv.detach().requires_grad_(), ssm.detach().requires_grad_()) for conv, ssm in prefix]
        causal_lm_chunked(model, ids[:, 32:-1], ids[:, 33:], chunks, states=states).loss.backward()
        grads.append([(conv.grad, ssm.grad) for conv, ssm in states])
    for conv, ssm in grads[0]:
        assert conv.abs().sum() > 0 and ssm.abs().sum() > 0  # the loss does depend on the carried state
    torch.testing.assert_close(grads[0], grads[1])


@pytest.mark.parametrize("pooling", ["mean", "last", "first"])
def test_chunked_classifier_equals_the_whole_pass(pooling, make_mamba_config, make_dna, grads_of, close):
    """Pooling summaries merge exactly across chunks, so every pooling trains chunked (right padding too)."""
    torch.manual_seed(0)
    model = MambaForSequenceClassification(make_mamba_config(num_labels=3, pooling=pooling))
    ids = make_dna(2, 320)
    ids[0, 250:] = 4
    labels = torch.tensor([0, 2])
    out = model(ids, labels=labels)
    out.loss.backward()
    grads = grads_of(model)
    model.config.chunk_size = 64
    chunked = model(ids, labels=labels)
    chunked.loss.backward()
    close(chunked.logits.detach(), out.logits.detach())
    for name, grad in grads_of(model).items():
        close(grad, grads[name])
