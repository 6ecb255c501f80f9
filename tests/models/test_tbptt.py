"""Truncated BPTT: states detached between chunks and carried from batch to batch of a stream."""
import pytest
import torch

from mamba_bio_audio.models import MambaLMHeadModel
from mamba_bio_audio.models.chunked import causal_lm_chunked


@pytest.fixture
def stream(make_dna):
    """One (2, 1025) DNA stream, seen as two consecutive batches of 512 inputs (+ the next token)."""
    return make_dna(2, 1025, seed=5)


def _lm(make_mamba_config, **overrides):
    torch.manual_seed(0)
    return MambaLMHeadModel(make_mamba_config(**overrides))


def test_states_carry_across_batches(make_mamba_config, stream, close):
    model = _lm(make_mamba_config, chunk_size=128, tbptt=True).train()
    first = model(stream[:, :512], targets=stream[:, 1:513]).loss
    carried = model.stream_states
    assert len(carried) == make_mamba_config().n_layer  # one (conv, ssm) state per layer
    assert all(not conv.requires_grad and not ssm.requires_grad for conv, ssm in carried)
    second = model(stream[:, 512:1024]).logits  # a second batch of the stream, without labels: logits

    whole = _lm(make_mamba_config).eval()
    with torch.no_grad():
        logits = whole(stream[:, :-1]).logits
    token_losses = torch.nn.functional.cross_entropy(logits.transpose(1, 2), stream[:, 1:], reduction="none")
    close(first.detach(), token_losses[:, :512].mean())
    carried_error = (second.detach() - logits[:, 512:]).abs().max()
    close(second.detach(), logits[:, 512:])  # the second batch continued the first one's states

    model.reset_stream()
    fresh = model(stream[:, 512:1024]).logits.detach()
    assert (fresh - logits[:, 512:]).abs().max() > 100 * carried_error


def test_gradients_stop_at_chunk_boundaries(make_mamba_config, make_dna, grads_of, close):
    """tbptt gradients = the sum of each chunk's gradient taken from detached incoming states."""
    ids = make_dna(2, 385, seed=7)
    model = _lm(make_mamba_config, chunk_size=128, tbptt=True).train()
    model(ids[:, :-1], targets=ids[:, 1:]).loss.backward()
    tbptt = grads_of(model)

    count = ids[:, 1:].numel()
    states = None
    for start in range(0, 384, 128):
        window = slice(start, start + 128)
        out = causal_lm_chunked(model, ids[:, :-1][:, window], ids[:, 1:][:, window], 128, states=states)
        (out.loss * ids[:, 1:][:, window].numel() / count).backward()
        states = [(conv.detach(), ssm.detach()) for conv, ssm in out.states]
    manual = grads_of(model)
    for name, grad in manual.items():
        close(tbptt[name], grad)

    exact = _lm(make_mamba_config, chunk_size=128).train()
    exact(ids[:, :-1], targets=ids[:, 1:]).loss.backward()
    in_proj = "backbone.layers.0.mixer.in_proj.weight"
    assert not torch.allclose(grads_of(exact)[in_proj], tbptt[in_proj])  # truncation changed the gradient


def test_optimizer_steps_on_a_stream(make_mamba_config, make_dna):
    model = _lm(make_mamba_config, chunk_size=64, tbptt=True).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    stream = make_dna(2, 4 * 128 + 1, seed=11)
    losses = []
    for start in range(0, 4 * 128, 128):
        loss = model(stream[:, start:start + 128], targets=stream[:, start + 1:start + 129]).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert model.stream_states[0][1].shape == (2, 32, 4)


def test_eval_mode_does_not_carry(make_mamba_config, stream):
    model = _lm(make_mamba_config, chunk_size=128, tbptt=True).eval()
    with torch.no_grad():
        model(stream[:, :512], targets=stream[:, 1:513])
    assert model.stream_states is None


def test_batch_size_change_needs_a_reset(make_mamba_config, stream):
    model = _lm(make_mamba_config, chunk_size=128, tbptt=True).train()
    model(stream[:, :128], targets=stream[:, 1:129])
    with pytest.raises(ValueError, match="reset_stream"):
        model(stream[:1, 128:256], targets=stream[:1, 129:257])
    model.reset_stream()
    assert model(stream[:1, 128:256], targets=stream[:1, 129:257]).loss.isfinite()
