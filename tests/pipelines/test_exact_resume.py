"""A run stopped by SIGTERM mid-epoch and resumed from its ``last.ckpt`` ends with the weights and optimizer
state of an uninterrupted run, bit for bit on the CPU: the sampler's place, the per-item random windows and
reverse complements, the masked-LM masks and torch's global RNG (drawn by a callback standing in for dropout)
all resume."""
from __future__ import annotations

import pytest
import torch

from mamba_bio_audio.pipelines.cli import main

# masked LM (Caduceus) with RC augmentation over random windows; 6 batches per epoch, validation after steps
# 4 and 8, 10 steps: the run crosses an epoch end after the stop
RUN = ["pretrain", "experiment=dna/caduceus_ph_cpu", "++net.config.d_model=8", "++net.config.n_layer=1",
       "++net.config.ssm_cfg.d_state=4", "data.seq_len=64", "data.batch_size=2", "data.train_windows=12",
       "data.eval_items=2", "trainer.max_steps=10", "trainer.val_check_interval=4", "trainer.limit_val_batches=1",
       "test=false", "export=false", "+callbacks.jitter._target_=signal_at.Jitter"]


def _cli(base, folder, *extra) -> int:
    """The CLI's main in this process (``signal_at`` imports here); the signal is real, sent to pytest itself."""
    return main([*RUN, *base, f"paths.output_dir={folder}", *extra])


def _state(path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, data_dir):
    folder = tmp_path_factory.mktemp("whole")
    base = [f"paths.data_dir={data_dir}", "logger=csv", "trainer.accelerator=cpu", "trainer.devices=1",
            "data.num_workers=0", "~callbacks.rich_progress_bar", "+trainer.enable_model_summary=false"]
    assert _cli(base, folder) == 0
    return base, _state(folder / "checkpoints" / "last.ckpt")


@pytest.mark.parametrize("stop", [5, 4], ids=["mid_epoch", "validation_step"])
def test_resumed_run_is_bit_identical(uninterrupted, tmp_path, capsys, stop):
    base, whole = uninterrupted
    stopped = tmp_path / "stopped"
    code = _cli(base, stopped, "+callbacks.signal_at._target_=signal_at.SignalAt", f"+callbacks.signal_at.step={stop}")
    checkpoint = stopped / "checkpoints" / "last.ckpt"
    assert code == 143
    assert f"stopped by SIGTERM at step {stop}: resume with ckpt_path={checkpoint}" in capsys.readouterr().out
    part = _state(checkpoint)
    assert part["global_step"] == stop and part["epoch"] == 0  # an epoch is 6 steps
    if stop == 4:  # stopped after the step's validation (its top-k checkpoint), which the resumed run skips
        assert (stopped / "checkpoints" / "epoch_000-step_000004.ckpt").is_file()
    assert part["loops"]["fit_loop"]["state_dict"]["combined_loader"] == [{"epoch": 0, "items": 2 * stop}]
    assert _cli(base, tmp_path / "resumed", f"ckpt_path={checkpoint}") == 0
    resumed = _state(tmp_path / "resumed" / "checkpoints" / "last.ckpt")
    assert resumed["global_step"] == whole["global_step"] == 10
    assert not torch.equal(part["state_dict"]["net.lm_head.weight"], whole["state_dict"]["net.lm_head.weight"])
    assert resumed["state_dict"].keys() == whole["state_dict"].keys()
    for key, value in whole["state_dict"].items():
        assert torch.equal(resumed["state_dict"][key], value), key
    a, b = whole["optimizer_states"][0]["state"], resumed["optimizer_states"][0]["state"]
    assert a.keys() == b.keys()
    for index, slots in a.items():
        for name, value in slots.items():
            assert torch.equal(b[index][name], value), (index, name)


def test_loader_resumes_each_rank_where_it_stopped():
    """Two data-parallel ranks, 24 items, batches of 2: after 3 batches each, fresh loaders given the saved state
    yield the rest of what the uninterrupted loaders would (and a later epoch starts from its beginning)."""
    from mamba_bio_audio.pipelines.training.datamodules import EpochSampler, ResumableLoader

    def loader(rank: int) -> ResumableLoader:
        sampler = EpochSampler(list(range(24)), seed=3, rank=rank, world_size=2)
        sampler.set_epoch(1)
        return ResumableLoader(sampler.dataset, batch_size=2, sampler=sampler, drop_last=True)

    whole = {rank: [b.tolist() for b in loader(rank)] for rank in (0, 1)}
    state = None
    for rank in (0, 1):
        first = loader(rank)
        batches = iter(first)
        assert [next(batches).tolist() for _ in range(3)] == whole[rank][:3]
        state = first.state_dict()
        assert state == {"epoch": 1, "items": 12}  # 3 batches of 2 on each of 2 ranks
        resumed = loader(rank)
        resumed.load_state_dict(state)
        assert [b.tolist() for b in resumed] == whole[rank][3:]
        assert resumed.state_dict() == {"epoch": 1, "items": 24}
    later = loader(0)
    later.load_state_dict(state)
    later.sampler.set_epoch(2)
    assert len([b for b in later]) == 6  # another epoch: nothing skipped
