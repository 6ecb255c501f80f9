"""Batched audio sampling: prefixes, exact log-likelihoods, ranking, PCM decoding and argument checks."""
import numpy as np
import pytest
import torch

from mamba_bio_audio.audio_generation import rank_by_likelihood, sample_audio, to_pcm16


def _forward_log_probs(model, tokens: torch.Tensor) -> torch.Tensor:
    """log p(tokens[:, t] | tokens[:, :t]) from one parallel forward on the start token + tokens[:, :-1]."""
    inputs = torch.cat([torch.full((tokens.shape[0], 1), 128), tokens[:, :-1]], dim=1)
    with torch.no_grad():
        logits = model(inputs).logits
    return torch.log_softmax(logits, dim=-1).gather(-1, tokens[..., None])[..., 0]


def test_prefix_is_kept_and_log_probs_match_the_forward(tiny_model):
    prefix = torch.randint(0, 256, (7,), generator=torch.Generator().manual_seed(3))
    samples = sample_audio(tiny_model, n_samples=5, length=17, prefix=prefix, batch_size=2, top_p=0.9, seed=1)
    assert samples.tokens.shape == samples.log_probs.shape == (5, 24) and samples.prefix_length == 7
    assert torch.equal(samples.tokens[:, :7], prefix.expand(5, -1))
    torch.testing.assert_close(samples.log_probs, _forward_log_probs(tiny_model, samples.tokens),
                               rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(samples.log_likelihood, samples.log_probs[:, 7:].sum(dim=1))


def test_per_stream_prefixes_and_no_prefix(tiny_model):
    prefix = torch.tensor([[1, 2, 3], [250, 251, 252]])
    samples = sample_audio(tiny_model, 2, 4, prefix=prefix, seed=0)
    assert torch.equal(samples.tokens[:, :3], prefix)
    unprompted = sample_audio(tiny_model, 3, 6, seed=0, temperature=0.7, top_k=20)
    assert unprompted.prefix_length == 0 and unprompted.tokens.shape == (3, 6)
    torch.testing.assert_close(unprompted.log_probs, _forward_log_probs(tiny_model, unprompted.tokens),
                               rtol=1e-4, atol=1e-4)


def test_sampling_is_seeded_and_greedy_is_the_argmax(tiny_model):
    first, again = (sample_audio(tiny_model, 3, 10, seed=4) for _ in range(2))
    assert torch.equal(first.tokens, again.tokens)
    assert not torch.equal(first.tokens, sample_audio(tiny_model, 3, 10, seed=5).tokens)
    greedy = sample_audio(tiny_model, 2, 10, top_k=1)
    inputs = torch.cat([torch.full((2, 1), 128), greedy.tokens[:, :-1]], dim=1)
    with torch.no_grad():
        assert torch.equal(greedy.tokens, tiny_model(inputs).logits.argmax(dim=-1))


def test_ranking_is_by_log_likelihood(tiny_model):
    samples = sample_audio(tiny_model, 6, 8, seed=2)
    order = rank_by_likelihood(samples.log_likelihood)
    assert sorted(order.tolist()) == list(range(6))
    assert torch.all(samples.log_likelihood[order][:-1] >= samples.log_likelihood[order][1:])
    log_likelihood = torch.tensor([-5.0, -1.0, -3.0, -4.0, -2.0, -9.0, -7.0, -6.0, -8.0, -0.5])
    # SaShiMi's heuristic: drop the least likely 40 % and the most likely 10 % here
    assert rank_by_likelihood(log_likelihood, lower=0.4, upper=0.9).tolist() == [1, 4, 2, 3, 0]


def test_waveforms_are_16_bit_pcm(tiny_model):
    pcm = to_pcm16(torch.tensor([[0, 128, 255]]))
    assert pcm.dtype == np.int16 and pcm[0, 1] == 0 and pcm[0, 0] == -32767 and pcm[0, 2] > 30000
    waveforms = sample_audio(tiny_model, 2, 5).waveforms()
    assert waveforms.shape == (2, 5) and waveforms.dtype == np.int16


@pytest.mark.parametrize("kwargs, message", [
    (dict(n_samples=0), "n_samples must be a positive integer"),
    (dict(length=-1), "length must be a positive integer"),
    (dict(batch_size=0), "batch_size must be a positive integer"),
    (dict(temperature=0.0), "temperature must be a finite number > 0"),
    (dict(top_k=-1), "top_k must be an integer >= 0"),
    (dict(top_p=1.5), r"top_p must be in \[0, 1\]"),
    (dict(min_p=1.0), r"min_p must be in \[0, 1\)"),
    (dict(start_token=256), r"start_token must be a class in \[0, 256\)"),
    (dict(prefix=torch.tensor([0.5])), "prefix must hold integer mu-law classes"),
    (dict(prefix=torch.tensor([1, 256])), r"prefix values must be classes in \[0, 256\)"),
    (dict(prefix=torch.zeros(3, 2, dtype=torch.long)), r"prefix must be \(P,\) or \(n_samples=2, P\)"),
    (dict(prefix=torch.zeros(0, dtype=torch.long)), r"prefix must be \(P,\) or \(n_samples=2, P\) with P > 0"),
])
def test_bad_arguments_are_refused(tiny_model, kwargs, message):
    arguments = {"n_samples": 2, "length": 3, **kwargs}
    with pytest.raises(ValueError, match=message):
        sample_audio(tiny_model, **arguments)


@pytest.mark.parametrize("lower, upper", [(0.5, 0.5), (-0.1, 1.0), (0.0, 1.2)])
def test_bad_ranking_band_is_refused(lower, upper):
    with pytest.raises(ValueError, match="need 0 <= lower < upper <= 1"):
        rank_by_likelihood(torch.zeros(3), lower=lower, upper=upper)
    with pytest.raises(ValueError, match="1-D float tensor"):
        rank_by_likelihood(torch.zeros(3, dtype=torch.long))
