"""Reverse-complement equivariance: f(RC(x)) = RC(f(x)) for the RCPS pieces and models, RC invariance of their
classifiers, and post-hoc conjoining of a non-equivariant model; fp32, random weights, reference and cpu ops.

The oracle is the round trip itself: the model is run on x and on its reverse complement, and one output is
carried onto the other's strand with the RC maps (flip the sequence, complement the ids / the vocabulary,
flip the channels of an RCPS stream), which are checked against known answers first.
"""
import pytest
import torch
from torch import nn

from mamba_bio_audio.models import CaduceusConfig, CaduceusForMaskedLM, CaduceusForSequenceClassification
from mamba_bio_audio.modules.rcps import (RCPSEmbedding, RCPSLMHead, RCPSWrapper, rc_hidden, rc_ids,
                                          rc_invariant_pool, rc_logits)
from mamba_bio_audio.tokenizers import NucleotideTokenizer

TOKENIZER = NucleotideTokenizer()
COMPLEMENT = TOKENIZER.complement_tensor(16)
TOL = 1e-5


def tiny(**overrides) -> CaduceusConfig:
    values = dict(d_model=8, n_layer=2, ssm_cfg={"d_state": 4}, complement_map="dna", rcps=True, num_labels=3)
    return CaduceusConfig(**{**values, **overrides})


@pytest.fixture(params=["reference", "cpu"])
def backend(request, configure_kernels):
    configure_kernels(backend=request.param)
    return request.param


@pytest.fixture
def ids() -> torch.Tensor:
    """(3, 24) int64 DNA ids, N included, the last row padded on the right."""
    generator = torch.Generator().manual_seed(3)
    x = torch.randint(7, 12, (3, 24), generator=generator)
    x[2, 18:] = NucleotideTokenizer.pad_token_id
    return x


def test_rc_maps_known_answers():
    x = torch.tensor(TOKENIZER.encode("AACGTN"))[None]
    assert TOKENIZER.decode(rc_ids(x, COMPLEMENT)[0]) == "NACGTT"
    assert torch.equal(rc_ids(rc_ids(x, COMPLEMENT), COMPLEMENT), x)
    h = torch.arange(12.0).reshape(1, 3, 4)
    assert rc_hidden(h)[0, 0].tolist() == [11.0, 10.0, 9.0, 8.0]
    logits = torch.randn(2, 5, 16)
    back = rc_logits(logits, COMPLEMENT)
    assert torch.equal(back[:, 0, 7], logits[:, 4, 10])  # A at the first position = T at the last, read back
    assert torch.equal(rc_logits(back, COMPLEMENT), logits)


def test_embedding_and_head_are_equivariant(ids):
    torch.manual_seed(0)
    embedding = RCPSEmbedding(16, 6, COMPLEMENT.tolist())
    assert torch.equal(embedding(rc_ids(ids, COMPLEMENT)), rc_hidden(embedding(ids)))
    head = RCPSLMHead(6, 16, COMPLEMENT.tolist())
    hidden = torch.randn(3, 24, 12)
    assert (head(rc_hidden(hidden)) - rc_logits(head(hidden), COMPLEMENT)).abs().max() < TOL


def test_wrapper_makes_a_directional_module_equivariant():
    torch.manual_seed(0)
    conv = nn.Conv1d(5, 5, 3, padding=2)  # causal after trimming: strongly direction-dependent

    class Causal(nn.Module):
        def forward(self, x):
            return conv(x.transpose(1, 2))[..., :-2].transpose(1, 2)

    wrapped = RCPSWrapper(Causal())
    x = torch.randn(2, 9, 10)
    assert (wrapped(rc_hidden(x)) - rc_hidden(wrapped(x))).abs().max() < TOL
    assert (Causal()(x[..., :5].flip(1)).flip(1) - Causal()(x[..., :5])).abs().max() > 1e-2


@pytest.mark.parametrize("fused_add_norm", [True, False])
@pytest.mark.parametrize("rms_norm", [True, False])
def test_rcps_masked_lm_is_equivariant(backend, ids, fused_add_norm, rms_norm):
    torch.manual_seed(0)
    config = tiny(fused_add_norm=fused_add_norm, rms_norm=rms_norm, tie_embeddings=rms_norm)
    model = CaduceusForMaskedLM(config).eval()
    with torch.no_grad():
        hidden, hidden_rc = model.caduceus(ids), model.caduceus(rc_ids(ids, COMPLEMENT))
        logits, logits_rc = model(ids).logits, model(rc_ids(ids, COMPLEMENT)).logits
    assert hidden.shape == (3, 24, 16) and logits.dtype == torch.float32
    assert (hidden_rc - rc_hidden(hidden)).abs().max() < TOL
    assert (logits_rc - rc_logits(logits, COMPLEMENT)).abs().max() < TOL


@pytest.mark.parametrize("pooling", ["mean", "first", "last"])
def test_rcps_classifier_is_rc_invariant(backend, ids, pooling):
    torch.manual_seed(0)
    model = CaduceusForSequenceClassification(tiny(pooling=pooling)).eval()
    with torch.no_grad():
        logits = model(ids).logits
        logits_rc = model(rc_ids(ids, COMPLEMENT)).logits  # the padding moves to the left, and stays ignored
    assert (logits - logits_rc).abs().max() < TOL
    assert logits.std(0).max() > 1e-4  # the sequences are told apart


def test_rc_invariant_pool_swaps_under_rc():
    hidden = torch.randn(2, 7, 8)
    mask = torch.ones(2, 7, dtype=torch.bool)
    mask[1, 5:] = False
    forward, reverse = rc_invariant_pool(hidden, "last", mask)
    forward_rc, reverse_rc = rc_invariant_pool(rc_hidden(hidden), "last", mask.flip(-1))
    assert torch.allclose(forward, reverse_rc) and torch.allclose(reverse, forward_rc)
    assert torch.equal(forward[1], hidden[1, 4, :4])


def test_conjoining_makes_a_bimamba_model_equivariant(backend, ids):
    torch.manual_seed(0)
    plain = tiny(rcps=False)
    conjoined = tiny(rcps=False, conjoin_eval=True)
    lm = CaduceusForMaskedLM(plain).eval()
    lm_conjoined = CaduceusForMaskedLM(conjoined).eval()
    lm_conjoined.load_state_dict(lm.state_dict())
    x_rc = rc_ids(ids, COMPLEMENT)
    with torch.no_grad():
        gap = (lm(x_rc).logits - rc_logits(lm(ids).logits, COMPLEMENT)).abs().max()
        logits, logits_rc = lm_conjoined(ids).logits, lm_conjoined(x_rc).logits
        expected = (lm(ids).logits + rc_logits(lm(x_rc).logits, COMPLEMENT)) / 2
    assert gap > 1e-3  # the bidirectional model alone is not equivariant
    assert (logits_rc - rc_logits(logits, COMPLEMENT)).abs().max() < TOL
    assert (logits - expected).abs().max() < TOL
    classifier = CaduceusForSequenceClassification(conjoined).eval()
    with torch.no_grad():
        assert (classifier(ids).logits - classifier(x_rc).logits).abs().max() < TOL
    classifier.train()  # conjoin_eval only: training sees the strand given
    assert (classifier(ids).logits - classifier(x_rc).logits).abs().max() > 1e-4
