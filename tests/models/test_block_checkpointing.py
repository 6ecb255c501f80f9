"""checkpoint_blocks: per-block activation checkpointing changes no value and no gradient."""
import pytest
import torch

from mamba_bio_audio.models import MambaForSequenceClassification, MambaLMHeadModel
from mamba_bio_audio.models.transformer import TransformerLMHeadModel


def _loss_and_grads(model, ids, grads_of):
    loss = model(ids[:, :-1], targets=ids[:, 1:]).loss
    loss.backward()
    return loss.detach(), grads_of(model)


@pytest.mark.parametrize("kind, overrides", [
    ("mamba", {}),
    ("mamba", {"chunk_size": 64}),  # nested in chunk checkpointing
    ("mamba", {"d_intermediate": 24}),  # blocks with an MLP
    ("transformer", {}),
])
def test_checkpointing_changes_no_gradient(kind, overrides, make_mamba_config, make_transformer_config, make_dna,
                                           grads_of):
    make_config, model_cls = ((make_mamba_config, MambaLMHeadModel) if kind == "mamba"
                              else (make_transformer_config, TransformerLMHeadModel))
    ids = make_dna(2, 200, seed=2)
    torch.manual_seed(0)
    plain = model_cls(make_config(**overrides))
    checkpointed = model_cls(make_config(**overrides, checkpoint_blocks=True))
    checkpointed.load_state_dict(plain.state_dict())
    loss, grads = _loss_and_grads(plain, ids, grads_of)
    loss_ckpt, grads_ckpt = _loss_and_grads(checkpointed, ids, grads_of)
    torch.testing.assert_close(loss_ckpt, loss, rtol=0, atol=0)
    for name, grad in grads.items():
        torch.testing.assert_close(grads_ckpt[name], grad, rtol=1e-6, atol=1e-9)


def test_checkpointing_keeps_fewer_tensors(make_mamba_config, make_dna):
    """Only block inputs stay saved for backward: far fewer bytes than without checkpointing."""
    ids = make_dna(1, 256)

    def saved_bytes(model):
        total = []
        with torch.autograd.graph.saved_tensors_hooks(lambda t: total.append(t.numel() * t.element_size()) or t,
                                                      lambda t: t):
            model(ids[:, :-1], targets=ids[:, 1:])
        return sum(total)

    torch.manual_seed(0)
    plain = saved_bytes(MambaLMHeadModel(make_mamba_config(n_layer=4)))
    torch.manual_seed(0)
    checkpointed = saved_bytes(MambaLMHeadModel(make_mamba_config(n_layer=4, checkpoint_blocks=True)))
    assert checkpointed < plain / 3


def test_checkpointing_in_the_classifier_and_in_eval(make_mamba_config, make_dna):
    ids = make_dna(2, 64)
    grads = []
    for checkpoint_blocks in (True, False):  # recomputing the blocks in backward gives the same gradients
        torch.manual_seed(0)
        model = MambaForSequenceClassification(make_mamba_config(num_labels=3, checkpoint_blocks=checkpoint_blocks))
        model(ids, labels=torch.tensor([0, 1])).loss.backward()
        grads.append({name: p.grad for name, p in model.named_parameters()})
    assert all(g is not None for g in grads[0].values())
    torch.testing.assert_close(grads[0], grads[1])
    with torch.no_grad():
        assert model.eval()(ids).logits.shape == (2, 3)
