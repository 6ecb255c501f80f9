"""The fused CPU decode step (models/fast_decode.py) against two independent oracles: one parallel forward over the
whole sequence, and the generic step (``allocate_inference_cache(..., fast=False)``), fp32, over many steps, at
batch 2 (the kernels' edge loops alone) and 5 (a 4-row block and an edge row); and its fallbacks to the generic
step."""
import copy

import pytest
import torch
from torch import nn

from mamba_bio_audio.generation import sample_sequences, uses_fast_step
from mamba_bio_audio.models import MambaLMHeadModel

TOL = dict(rtol=1e-5, atol=2e-5)
PROMPT, STEPS = 3, 9

CONFIGS = {
    # rms_norm, fused_add_norm, residual_in_fp32 and tied embeddings: MambaConfig's defaults
    "rms_fp32_residual_tied": dict(),
    # LayerNorm, the gated MLP (d_intermediate > 0), untied head, biased projections, a conv of width 3 (the
    # update's general loop; width 4 has its own)
    "layernorm_mlp_untied_bias": dict(rms_norm=False, fused_add_norm=False, residual_in_fp32=False, d_intermediate=32,
                                      tie_embeddings=False, ssm_cfg={"d_state": 4, "bias": True, "d_conv": 3}),
    # d_state 16, every preset's: the state update's loop of literal length (cpu_block._state_update_rows(16))
    "d_state_16": dict(ssm_cfg={"d_state": 16}),
}


def _lm(make_config, **overrides) -> MambaLMHeadModel:
    torch.manual_seed(0)
    model = MambaLMHeadModel(make_config(**overrides)).eval()
    with torch.no_grad():  # away from the init, so every parameter matters (D = 1, zero biases at init)
        for param in model.parameters():
            param.add_(0.1 * torch.randn_like(param))
    return model


def _decode(model, ids: torch.Tensor, fast: bool):
    """Prefill PROMPT ids, then step through the rest: (logits (batch, L, V) of every position, the state)."""
    with torch.no_grad():
        state = model.allocate_inference_cache(ids.shape[0], ids.shape[1], fast=fast)
        logits, state = model.prefill(ids[:, :PROMPT], state)
        stepped = [logits]
        for t in range(PROMPT, ids.shape[1]):
            step_logits, state = model.step(ids[:, t], state)
            stepped.append(step_logits[:, None])
    return torch.cat(stepped, dim=1), state


@pytest.mark.parametrize("batch", [2, 5])
@pytest.mark.parametrize("name", CONFIGS)
def test_fast_step_equals_forward_and_the_generic_step(make_config, name, batch):
    model = _lm(make_config, **CONFIGS[name])
    ids = torch.randint(0, 12, (batch, PROMPT + STEPS), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model(ids).logits
    fast, fast_state = _decode(model, ids, fast=True)
    generic, generic_state = _decode(model, ids, fast=False)
    assert uses_fast_step(fast_state) and not uses_fast_step(generic_state)
    torch.testing.assert_close(fast, expected, **TOL)
    torch.testing.assert_close(fast, generic, **TOL)
    for layer, (conv_state, ssm_state) in fast_state.key_value_memory_dict.items():
        torch.testing.assert_close(conv_state, generic_state.key_value_memory_dict[layer][0], **TOL)
        torch.testing.assert_close(ssm_state, generic_state.key_value_memory_dict[layer][1], **TOL)
    assert fast_state.seqlen_offset == generic_state.seqlen_offset == ids.shape[1]


@pytest.mark.parametrize("batch", [2, 5])
def test_sashimi_fast_step_equals_forward_and_the_generic_step(tiny_model, batch):
    """sc09_large scaled down (pools [2, 3], 2 blocks per stage): 2.5 passes through every phase of the U-Net."""
    ids = torch.randint(0, 256, (batch, 15), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = tiny_model(ids).logits
    fast, fast_state = _decode(tiny_model, ids, fast=True)
    generic, generic_state = _decode(tiny_model, ids, fast=False)
    assert uses_fast_step(fast_state) and not uses_fast_step(generic_state)
    torch.testing.assert_close(fast, expected, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(fast, generic, **TOL)
    assert [p.index for p in fast_state.down + fast_state.up] == [p.index for p in generic_state.down + generic_state.up]


def test_fast_step_sees_weight_changes(make_config):
    """A state is allocated, then the weights change: in place (an optimizer step, load_state_dict; read at the
    next step, A = -exp(A_log) included) or by a replaced parameter object (the step goes back to the generic
    path). Either way the steps give what forward gives with the new weights."""
    model = _lm(make_config, tie_embeddings=False)
    ids = torch.randint(0, 12, (2, PROMPT + STEPS), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        in_place = model.allocate_inference_cache(2, fast=True)
        replaced = model.allocate_inference_cache(2, fast=True)
        model.backbone.layers[0].mixer.A_log.mul_(1.5)
        model.backbone.layers[1].mixer.in_proj.weight.mul_(-1.0)
        assert in_place.fast_step.applies(ids[:, 0])
        got_in_place = _steps(model, ids, in_place)
        expected_in_place = model(ids).logits
        model.lm_head.weight = nn.Parameter(torch.randn_like(model.lm_head.weight))
        assert not replaced.fast_step.applies(ids[:, 0])
        got_replaced = _steps(model, ids, replaced)
        expected_replaced = model(ids).logits
    torch.testing.assert_close(got_in_place, expected_in_place, **TOL)
    torch.testing.assert_close(got_replaced, expected_replaced, **TOL)


def test_replaced_parameter_data_takes_the_generic_step(make_config):
    """``param.data = ...`` (weight surgery, pruning) and ``model.to(dtype)`` keep the parameter objects but give
    them new storage, which the fused step's views do not see: it steps generically and agrees with forward."""
    model = _lm(make_config, tie_embeddings=False)
    ids = torch.randint(0, 12, (2, PROMPT + STEPS), generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        state = model.allocate_inference_cache(2, fast=True)
        out_proj = model.backbone.layers[1].mixer.out_proj
        out_proj.weight.data = torch.randn_like(out_proj.weight)
        assert not state.fast_step.accepts(ids[:, 0])
        got = _steps(model, ids, state)
        expected = model(ids).logits
        converted = model.allocate_inference_cache(2, fast=True)
        model.double()
        assert not converted.fast_step.accepts(ids[:, 0])
    torch.testing.assert_close(got, expected, **TOL)


def test_step_records_no_autograd_and_takes_the_fused_step_in_any_grad_mode(make_config):
    """``step`` runs without autograd, so with grad mode on it still takes the fused step (``accepts``), whose
    ``applies`` is for callers that record."""
    model = _lm(make_config)
    ids = torch.randint(0, 12, (2, PROMPT + 1), generator=torch.Generator().manual_seed(7))
    state = model.allocate_inference_cache(2)
    with torch.no_grad():
        model.prefill(ids[:, :PROMPT], state)
        expected = model(ids).logits[:, -1]
    assert torch.is_grad_enabled() and not state.fast_step.applies(ids[:, PROMPT])
    assert state.fast_step.accepts(ids[:, PROMPT])
    logits, _ = model.step(ids[:, PROMPT], state)
    assert not logits.requires_grad and state.seqlen_offset == PROMPT + 1
    torch.testing.assert_close(logits, expected, **TOL)
    generic = model.allocate_inference_cache(2, fast=False)
    generic_logits, _ = model.step(ids[:, 0], generic)
    assert not generic_logits.requires_grad


def _steps(model, ids: torch.Tensor, state) -> torch.Tensor:
    logits, state = model.prefill(ids[:, :PROMPT], state)
    stepped = [logits]
    for t in range(PROMPT, ids.shape[1]):
        step_logits, state = model.step(ids[:, t], state)
        stepped.append(step_logits[:, None])
    return torch.cat(stepped, dim=1)


def test_what_the_fused_step_does_not_handle_takes_the_generic_step(make_config, configure_kernels):
    ablated = MambaLMHeadModel(make_config(ssm_cfg={"d_state": 4, "use_conv": False}))
    bf16 = MambaLMHeadModel(make_config(), dtype=torch.bfloat16)
    plain = _lm(make_config)
    assert not uses_fast_step(ablated.allocate_inference_cache(1))
    assert not uses_fast_step(bf16.allocate_inference_cache(1))
    assert not uses_fast_step(plain.allocate_inference_cache(1, fast=False))
    state = plain.allocate_inference_cache(2)
    token = torch.tensor([7, 8])
    assert not state.fast_step.applies(token)  # autograd records: the generic step
    with torch.no_grad():
        assert state.fast_step.applies(token)
        assert not state.fast_step.applies(torch.tensor([7, 8, 9]))  # another batch: the generic step's error
        configure_kernels(backend="reference")
        assert not state.fast_step.applies(token)


@pytest.mark.parametrize("bad", [-1, 16])
def test_bad_token_ids_are_refused_before_the_state_changes(make_config, bad):
    model = _lm(make_config)
    with torch.no_grad():
        state = model.allocate_inference_cache(2)
        model.prefill(torch.tensor([[7, 8], [9, 10]]), state)
        before = [t.clone() for pair in state.key_value_memory_dict.values() for t in pair]
        with pytest.raises(IndexError, match=r"token ids must be in \[0, 16\)"):
            model.step(torch.tensor([7, bad]), state)
    after = [t for pair in state.key_value_memory_dict.values() for t in pair]
    assert all(torch.equal(a, b) for a, b in zip(before, after)) and state.seqlen_offset == 2


def test_a_copied_state_steps_generically_and_agrees(make_config):
    """A deep copy holds copied tensors the original's fused step does not view: it takes the generic step."""
    model = _lm(make_config)
    ids = torch.randint(0, 12, (2, PROMPT + 1), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        state = model.allocate_inference_cache(2)
        model.prefill(ids[:, :PROMPT], state)
        copied = copy.deepcopy(state)
        original, _ = model.step(ids[:, PROMPT], state)
        from_copy, _ = model.step(ids[:, PROMPT], copied)
    assert uses_fast_step(state) and not uses_fast_step(copied)
    torch.testing.assert_close(from_copy, original, **TOL)


def test_sashimi_pool_states_out_of_step_are_refused(tiny_model):
    """As the generic UpPool.step refuses them: a ValueError, not a silently stale up-sampling."""
    with torch.no_grad():
        state = tiny_model.allocate_inference_cache(1)
        state.up[0].index = 1  # the down pool starts a group, the up pool ends one
        with pytest.raises(ValueError, match="out of step"):
            tiny_model.step(torch.tensor([3]), state)


def test_sampled_log_probs_equal_forward_across_the_loops_chunks(make_config):
    """sample_sequences through the fused step records log p(token | prefix) in chunks of 64 tokens: past a chunk
    boundary they are still what one forward pass over the sampled sequence gives."""
    model = _lm(make_config)
    prompt = torch.tensor([[7, 8], [9, 10]])
    samples = sample_sequences(model, prompt, 70, top_k=0, seed=5)
    with torch.no_grad():
        expected = torch.log_softmax(model(samples.tokens[:, :-1]).logits[..., :12], dim=-1)
    expected = expected.gather(-1, samples.tokens[:, 1:, None])[..., 0]
    assert samples.tokens.shape == (2, 72) and (samples.log_probs[:, 0] == 0).all()
    torch.testing.assert_close(samples.log_probs[:, 1:], expected, **TOL)
