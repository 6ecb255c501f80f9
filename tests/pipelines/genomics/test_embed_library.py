"""mamba_bio_audio.embedding against independent computations: a chunked run with state passing equals one
pass, RCPS sequence embeddings do not change under reverse complement, head_features is what a classifier's
head reads, and a model that does not read DNA is refused."""
from __future__ import annotations

import pytest
import torch

from mamba_bio_audio.config import MambaConfig
from mamba_bio_audio.embedding import check_dna_model, embed_sequences, embed_tokens, head_features, padded_batch
from mamba_bio_audio.models import model_class
from mamba_bio_audio.models.caduceus_config import CaduceusConfig
from mamba_bio_audio.modules.rcps import rc_ids


def _mamba(head: str = "causal_lm", **overrides):
    torch.manual_seed(0)
    config = MambaConfig(**{"d_model": 16, "n_layer": 2, "vocab_size": 12, "ssm_cfg": {"d_state": 4},
                            "pad_token_id": 4, "num_labels": 3, "pooling": "mean", **overrides})
    return model_class(config, head)(config).eval()


def _caduceus(head: str = "masked_lm", **overrides):
    torch.manual_seed(0)
    config = CaduceusConfig(**{"d_model": 8, "n_layer": 2, "ssm_cfg": {"d_state": 4}, "complement_map": "dna",
                               "num_labels": 3, "rcps": True, **overrides})
    return model_class(config, head)(config).eval()


def _ids(batch: int, length: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(7, 11, (batch, length), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("layer", [None, 0])
def test_chunked_mean_equals_one_pass_mean(layer):
    model = _mamba()
    seqs = [_ids(1, 53, seed=1)[0], _ids(1, 40, seed=2)[0]]  # unequal: the second is right-padded
    ids, mask = padded_batch(seqs, pad_token_id=4, causal=True)
    chunked = embed_sequences(model, ids, mask, layer=layer, chunk_size=8)
    # the oracle: each sequence alone, one pass, mean over its positions
    with torch.no_grad():
        if layer is None:
            expected = torch.stack([model.backbone(s[None])[0].mean(0) for s in seqs])
        else:  # the residual stream after block 0: its output plus its residual
            expected = []
            for s in seqs:
                hidden, residual = model.backbone.layers[0](model.backbone.embedding(s[None]))
                expected.append((hidden + residual)[0].float().mean(0))
            expected = torch.stack(expected)
    torch.testing.assert_close(chunked, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(embed_sequences(model, ids, mask, layer=layer), expected, rtol=1e-5, atol=1e-5)
    per_base = embed_tokens(model, ids[:1], layer=layer, chunk_size=8)
    assert per_base.shape == (1, 53, 16)
    torch.testing.assert_close(per_base.mean(1), expected[:1], rtol=1e-5, atol=1e-5)


def test_rcps_sequence_embedding_is_reverse_complement_invariant():
    model = _caduceus()
    ids = _ids(2, 31)
    rc = rc_ids(ids, model.complement_ids)
    for layer in (None, 1):
        forward, reverse = embed_sequences(model, ids, layer=layer), embed_sequences(model, rc, layer=layer)
        assert forward.shape == (2, 8)
        torch.testing.assert_close(forward, reverse, rtol=1e-5, atol=1e-6)
        assert not torch.allclose(forward[0], forward[1])  # not a constant
    bidirectional = _caduceus(rcps=False)  # the oracle can fail: without RCPS the strands embed differently
    assert not torch.allclose(embed_sequences(bidirectional, ids), embed_sequences(bidirectional, rc), atol=1e-3)


@pytest.mark.parametrize("make", [lambda: _mamba("classification"), lambda: _mamba("classification", chunk_size=64),
                                  lambda: _caduceus("classification"),
                                  lambda: _caduceus("classification", rcps=False, conjoin_eval=True)])
def test_head_features_are_what_the_head_reads(make):
    model = make()
    ids = _ids(3, 150)  # three chunks of the chunked classifier
    torch.testing.assert_close(model.score(head_features(model, ids)), model(ids).logits, rtol=1e-5, atol=1e-6)


def test_models_that_do_not_read_dna_are_refused():
    check_dna_model(_mamba())
    with pytest.raises(ValueError, match="audio-lm is not a DNA model: its vocabulary has 256 tokens"):
        check_dna_model(_mamba(vocab_size=256), "audio-lm")
    with pytest.raises(ValueError, match="batch must hold sequences of one length"):
        padded_batch([_ids(1, 5)[0], _ids(1, 6)[0]], 4, causal=False)
