"""Recurrent stepping and chunked forwards through two pooling stages equal one parallel forward (fp32)."""
import json

import pytest
import torch

from mamba_bio_audio.models.sashimi import SashimiLM
from mamba_bio_audio.modules.sashimi_pool import DownPool, UpPool

TOL = dict(rtol=1e-4, atol=1e-4)


def _ids(batch: int, length: int, seed: int = 2) -> torch.Tensor:
    return torch.randint(0, 256, (batch, length), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", ["sc09_small", "sc09_large"])
def test_step_equals_forward_under_teacher_forcing(make_model, name):
    model = make_model(name)
    length = 3 * model.config.total_pool + 5  # crosses the center stage's boundaries three times
    ids = _ids(2, length)
    with torch.no_grad():
        expected = model(ids).logits
    state = model.allocate_inference_cache(2)
    stepped = []
    for t in range(length):
        logits, state = model.step(ids[:, t], state)
        stepped.append(logits)
    torch.testing.assert_close(torch.stack(stepped, dim=1), expected, **TOL)
    assert state.seqlen_offset == length


def test_chunked_forward_with_state_equals_one_forward(tiny_model):
    ids = _ids(2, 31)
    with torch.no_grad():
        expected = tiny_model(ids).logits
        state = tiny_model.allocate_inference_cache(2)
        chunks, start = [], 0
        for size in (5, 1, 7, 2, 1, 15):  # starts and ends inside groups of both stages
            chunks.append(tiny_model(ids[:, start:start + size], state).logits)
            start += size
    torch.testing.assert_close(torch.cat(chunks, dim=1), expected, **TOL)


@pytest.mark.parametrize("prefix", [1, 5, 6, 7, 12])
def test_step_after_forward_on_a_prefix_equals_forward(tiny_model, prefix):
    ids = _ids(3, 20)
    with torch.no_grad():
        expected = tiny_model(ids).logits
        state = tiny_model.allocate_inference_cache(3)
        got = [tiny_model(ids[:, :prefix], state).logits]
    for t in range(prefix, ids.shape[1]):
        logits, state = tiny_model.step(ids[:, t], state)
        got.append(logits[:, None])
    torch.testing.assert_close(torch.cat(got, dim=1), expected, **TOL)


def test_center_stage_reaches_the_output_one_group_late(tiny_model):
    """The center's first output (after p0·p1 samples) is up-sampled into the next stage-1 group, whose first
    output reaches stage 0 one stage-0 group later: position p0·(p1 + 1) is the first one it changes."""
    p0, p1 = tiny_model.config.pool
    ids = _ids(1, 3 * p0 * p1)
    with torch.no_grad():
        before = tiny_model(ids).logits
        for parameter in tiny_model.backbone.up_pools[1].parameters():
            parameter.zero_()
        after = tiny_model(ids).logits
    first = p0 * (p1 + 1)
    torch.testing.assert_close(after[:, :first], before[:, :first], rtol=0, atol=0)
    assert not torch.allclose(after[:, first], before[:, first])


def test_pools_refuse_misuse():
    down, up = DownPool(4, 2, 3), UpPool(8, 2, 3)
    down_state, up_state = down.allocate_state(1), up.allocate_state(1)
    assert down.step(torch.ones(1, 4), down_state) is None and down_state.index == 1
    with pytest.raises(ValueError, match="in the middle of a group"):
        up.step(torch.ones(1, 8), up_state)
    up_state.index = 2
    with pytest.raises(ValueError, match="needs the next pooled input"):
        up.step(None, up_state)
    with pytest.raises(ValueError, match="multiple of expand"):
        UpPool(5, 2, 4)


def test_save_and_load_round_trip(tiny_model, tmp_path):
    tiny_model.save_pretrained(tmp_path)
    loaded = SashimiLM.from_pretrained(tmp_path)
    ids = _ids(1, 9)
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids).logits, tiny_model(ids).logits, rtol=0, atol=0)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "n_layers": 3}))
    with pytest.raises(ValueError, match=r"checkpoint is missing key 'backbone.down_blocks.0.2.norm.weight' \(check config field n_layers\)"):
        SashimiLM.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({**config, "d_model": 16}))
    with pytest.raises(ValueError, match="has shape"):
        SashimiLM.from_pretrained(tmp_path)
