"""Causality: the logits at position t do not change when any input after t changes (all presets, scaled down)."""
import pytest
import torch


@pytest.mark.parametrize("name", ["youtubemix", "sc09_small", "sc09_large"])
def test_output_at_t_ignores_inputs_after_t(make_model, name):
    model = make_model(name)
    period = model.config.total_pool
    length = 2 * period + 3  # several complete groups at both stages, and a partial one
    generator = torch.Generator().manual_seed(1)
    base = torch.randint(0, 256, (length,), generator=generator)
    variants = [base]
    for t in range(length - 1):  # row t + 1: inputs after t redrawn, input t + 1 surely different
        ids = base.clone()
        ids[t + 1:] = torch.randint(0, 256, (length - t - 1,), generator=generator)
        ids[t + 1] = (base[t + 1] + 1) % 256
        variants.append(ids)
    with torch.no_grad():
        logits = model(torch.stack(variants)).logits
    for t in range(length - 1):
        torch.testing.assert_close(logits[t + 1, :t + 1], logits[0, :t + 1], rtol=1e-5, atol=1e-5,
                                   msg=lambda m: f"{name}: output before position {t + 1} changed\n{m}")
        assert not torch.allclose(logits[t + 1, t + 1], logits[0, t + 1]), "the changed input has no effect"
