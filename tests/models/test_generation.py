"""generate(): teacher forcing, greedy decoding, seeded sampling, EOS, argument validation; its signature is
mamba_ssm's and sample_sequences shares its sampling knobs."""
import inspect

import pytest
import torch

from mamba_bio_audio.generation import (GenerateOutput, generate, modify_logit_for_repetition_penalty, sample,
                                        sample_sequences)

# The oracle: mamba_ssm/utils/generation.py (state-spaces/mamba), GenerationMixin.generate's positional arguments
UPSTREAM_GENERATE = [("input_ids", inspect.Parameter.empty), ("max_length", inspect.Parameter.empty), ("top_k", 1),
                     ("top_p", 0.0), ("min_p", 0.0), ("temperature", 1.0), ("return_dict_in_generate", False),
                     ("output_scores", False)]
POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def _positional(fn):
    params = list(inspect.signature(fn).parameters.values())
    positional = [(p.name, p.default) for p in params if p.kind in POSITIONAL]
    return positional, params[len(positional):]

VOCAB = 12  # tiny_lm's real vocabulary (padded to 16)


def test_teacher_forced_scores_equal_forward_logits(tiny_lm, dna_ids):
    prompt = dna_ids[:, :4]
    out = tiny_lm.generate(prompt, max_length=12, teacher_outputs=dna_ids, return_dict_in_generate=True,
                           output_scores=True)
    assert isinstance(out, GenerateOutput)
    assert torch.equal(out.sequences, dna_ids)
    with torch.no_grad():
        logits = tiny_lm(dna_ids).logits[:, 3:-1, :VOCAB]
    assert len(out.scores) == 8
    torch.testing.assert_close(torch.stack(out.scores, 1), logits, rtol=1e-4, atol=1e-5)


def test_greedy_equals_argmax_decoding_by_hand(tiny_lm, dna_ids):
    prompt = dna_ids[:, :3]
    sequences = generate(tiny_lm, prompt, max_length=10)
    assert sequences.shape == (2, 10) and torch.equal(sequences[:, :3], prompt)
    expected = prompt
    with torch.no_grad():
        while expected.shape[1] < 10:
            next_token = tiny_lm(expected).logits[:, -1, :VOCAB].argmax(-1, keepdim=True)
            expected = torch.cat([expected, next_token], 1)
    assert torch.equal(sequences, expected)
    assert torch.equal(generate(tiny_lm, prompt, max_length=10), sequences)


def test_seeded_sampling_is_reproducible(tiny_lm, dna_ids):
    def draw(seed):
        return tiny_lm.generate(dna_ids[:, :2], 30, top_k=0, top_p=0.9, temperature=1.3,
                                generator=torch.Generator().manual_seed(seed))

    first = draw(7)
    assert torch.equal(first, draw(7))
    assert not torch.equal(first, draw(8))
    assert first.max() < VOCAB  # the padding rows of the head are never sampled


def test_eos_finishes_rows_and_stops(tiny_lm, dna_ids):
    teacher = dna_ids.clone()
    teacher[0, 3] = 2  # row 0 emits EOS first, row 1 one token later
    teacher[1, 4] = 2
    sequences = tiny_lm.generate(dna_ids[:, :3], 12, teacher_outputs=teacher, eos_token_id=2)
    assert sequences.shape == (2, 5)
    assert sequences[0, 3:].tolist() == [2, 2] and sequences[1, 4] == 2


def test_sample_top_k_stays_in_the_top_k():
    logits = torch.tensor([[0.0, 5.0, 1.0, 4.0, -2.0]]).repeat(200, 1)
    draws = sample(logits, top_k=2, temperature=5.0, generator=torch.Generator().manual_seed(0))
    assert set(draws.tolist()) == {1, 3}


def test_sample_top_p_and_min_p_keep_the_best_token():
    logits = torch.tensor([[0.0, 8.0, 1.0, 0.5]]).repeat(100, 1)
    generator = torch.Generator().manual_seed(0)
    assert set(sample(logits, top_k=0, top_p=0.5, generator=generator).tolist()) == {1}
    assert set(sample(logits, top_k=0, min_p=0.01, generator=generator).tolist()) == {1}
    assert len(set(sample(logits, top_k=0, temperature=100.0, generator=generator).tolist())) > 1


def test_repetition_penalty():
    logits = torch.tensor([[2.0, -2.0, 1.0]])
    out = modify_logit_for_repetition_penalty(logits.clone(), torch.tensor([[0, 1]]), 2.0)
    assert out.tolist() == [[1.0, -4.0, 1.0]]


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"temperature": 0.0}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"top_p": 1.5}, "top_p"),
        ({"top_p": -0.1}, "top_p"),
        ({"top_k": -1}, "top_k"),
        ({"top_k": 2.0}, "top_k"),
        ({"min_p": 1.0}, "min_p"),
        ({"repetition_penalty": 0.0}, "repetition_penalty"),
        ({"max_length": 3}, "max_length"),
        ({"eos_token_id": "</s>"}, "eos_token_id"),
        ({"teacher_outputs": torch.zeros(3, 5, dtype=torch.long)}, "teacher_outputs"),
    ],
)
def test_bad_arguments_name_the_argument(tiny_lm, dna_ids, kwargs, name):
    arguments = {"max_length": 8, **kwargs}
    with pytest.raises(ValueError, match=name):
        generate(tiny_lm, dna_ids[:, :3], **arguments)


@pytest.mark.parametrize(
    "input_ids",
    [torch.rand(2, 3), torch.zeros(2, 0, dtype=torch.long), torch.tensor([7, 8, 9]), [[7, 8, 9]],
     torch.tensor([[7, 16]])],
)
def test_bad_input_ids_are_refused(tiny_lm, input_ids):
    with pytest.raises(ValueError, match="input_ids"):
        generate(tiny_lm, input_ids, max_length=8)


def test_generate_takes_mamba_ssms_positional_arguments(tiny_lm):
    positional, rest = _positional(generate)
    assert positional[0][0] == "model" and positional[1:] == UPSTREAM_GENERATE
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in rest)
    positional, rest = _positional(tiny_lm.generate)
    assert positional == UPSTREAM_GENERATE and [p.kind for p in rest] == [inspect.Parameter.VAR_KEYWORD]


def test_sample_sequences_shares_the_sampling_knobs_and_their_defaults():
    positional, rest = _positional(sample_sequences)
    assert [name for name, _ in positional[:3]] == ["model", "prompt", "length"]
    assert positional[3:] == UPSTREAM_GENERATE[2:6]  # top_k, top_p, min_p, temperature
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in rest)


def test_upstream_positional_call_and_shared_defaults_agree(tiny_lm, dna_ids):
    """model.generate(ids, max_length, top_k, top_p, min_p, temperature) as mamba_ssm's callers write it; and with
    the defaults both functions decode greedily, so they draw the same tokens."""
    prompt = dna_ids[:, :3]
    by_position = tiny_lm.generate(prompt, 12, 0, 0.9, 0.0, 1.3, generator=torch.Generator().manual_seed(5))
    by_name = generate(tiny_lm, prompt, max_length=12, top_k=0, top_p=0.9, temperature=1.3,
                       generator=torch.Generator().manual_seed(5))
    assert torch.equal(by_position, by_name)
    assert torch.equal(sample_sequences(tiny_lm, prompt, 9).tokens, generate(tiny_lm, prompt, 12))
