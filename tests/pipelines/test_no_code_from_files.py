"""Loading a file never runs code from it: a real pickle whose ``__reduce__`` creates a marker file is refused by
``sample``, ``pretrain`` / ``evaluate ckpt_path=``, ``finetune net.pretrained=``, ``load_net`` (.ckpt/.pt/.pth) and
model folders (``pytorch_model.bin``, Caduceus included) with an error naming the file and the safetensors way
out, and no marker appears. Our own checkpoints load with ``weights_only=True``, resume included.
Sharded-checkpoint indexes cannot name files outside their folder."""
from __future__ import annotations

import json
import os
import pathlib
import shlex
import subprocess
import sys
from fractions import Fraction

import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import save_file

from mamba_bio_audio.models import load_pretrained
from mamba_bio_audio.pretrained import save_pretrained
from mamba_bio_audio.config import MambaConfig
from mamba_bio_audio.models import MambaLMHeadModel
from mamba_bio_audio.models.caduceus import CaduceusForMaskedLM
from mamba_bio_audio.pipelines.cli import main
from mamba_bio_audio.pipelines.training.nets import load_net, net_spec
from mamba_bio_audio.pipelines.training.plain_data import plain_data
from mamba_bio_audio.pipelines.training.train import run
from mamba_bio_audio.torch_files import UnsafeFileError

RUN = ["experiment=dna/hg_small_cpu", "data.seq_len=64", "data.batch_size=2", "data.train_windows=4",
       "data.eval_items=2", "trainer.val_check_interval=null", "trainer.check_val_every_n_epoch=1",
       "trainer.limit_val_batches=1", "test=false", "export=false"]


class TouchOnLoad:
    """Unpickling this (full pickle, not weights_only) creates ``marker``: the side effect a malicious file has."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (self.marker,)


def evil_checkpoint(path: pathlib.Path, marker: pathlib.Path) -> pathlib.Path:
    """A file shaped like one of our Lightning checkpoints whose ``net_spec`` creates ``marker`` when unpickled."""
    torch.save({"epoch": 0, "global_step": 1, "pytorch-lightning_version": "2.6.6",
                "state_dict": {"net.backbone.embedding.weight": torch.zeros(16, 16)}, "net_spec": TouchOnLoad(marker)},
               path)
    return path


@pytest.fixture
def evil(tmp_path):
    """(evil file, its marker); the payload is checked to work: a full unpickle of a twin file creates its marker."""
    probe = tmp_path / "probe_marker"
    torch.load(evil_checkpoint(tmp_path / "probe.ckpt", probe), weights_only=False)
    assert probe.exists()
    marker = tmp_path / "marker"
    return evil_checkpoint(tmp_path / "downloaded.ckpt", marker), marker


def assert_refused(message: str, path) -> None:
    assert f"{path} was not loaded" in message and "safetensors" in message


def test_sample_refuses_a_checkpoint_that_runs_code(evil, tmp_path):
    path, marker = evil
    out = tmp_path / "samples"
    result = subprocess.run([sys.executable, "-m", "mamba_bio_audio.pipelines.cli", "sample", f"checkpoint={path}",
                             f"out={out}", "n=1", "length=8"], capture_output=True, text=True)
    assert result.returncode == 2, result.stderr
    assert_refused(result.stderr, path)
    assert not marker.exists() and not out.exists()


def test_training_commands_refuse_a_checkpoint_that_runs_code(evil, overrides, tiny, capsys):
    path, marker = evil
    assert main(["pretrain", *overrides, *RUN, *tiny.dna, "trainer.max_steps=1", f"ckpt_path={path}"]) == 2
    assert_refused(capsys.readouterr().err, path)
    assert main(["evaluate", *overrides, *[o for o in RUN if o != "test=false"], *tiny.dna, f"ckpt_path={path}"]) == 2
    assert_refused(capsys.readouterr().err, path)
    assert main(["finetune", "experiment=species/apes4_cpu", *overrides, *tiny.dna, "trainer.max_steps=1",
                 f"net.pretrained={path}"]) == 2
    assert_refused(capsys.readouterr().err, path)
    assert not marker.exists()


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".ckpt"])
def test_load_net_refuses_a_file_that_runs_code(tmp_path, suffix):
    marker = tmp_path / "marker"
    path = evil_checkpoint(tmp_path / f"model{suffix}", marker)
    with pytest.raises(UnsafeFileError) as caught:
        load_net(path)
    assert_refused(str(caught.value), path)
    assert not marker.exists()


def _tiny_lm() -> MambaLMHeadModel:
    torch.manual_seed(0)
    return MambaLMHeadModel(MambaConfig(d_model=16, n_layer=1, vocab_size=12, ssm_cfg={"d_state": 4}))


def test_model_folders_refuse_a_pytorch_model_bin_that_runs_code(tmp_path):
    marker = tmp_path / "marker"
    mamba = save_pretrained(_tiny_lm(), tmp_path / "mamba")
    (mamba / "model.safetensors").unlink()
    torch.save({"backbone.embedding.weight": TouchOnLoad(marker)}, mamba / "pytorch_model.bin")
    caduceus = tmp_path / "caduceus"
    caduceus.mkdir()
    (caduceus / "config.json").write_text(json.dumps({"model_type": "caduceus", "d_model": 8, "n_layer": 1,
                                                      "vocab_size": 16}))
    torch.save({"lm_head.weight": TouchOnLoad(marker)}, caduceus / "pytorch_model.bin")
    for load, folder in ((load_pretrained, mamba), (CaduceusForMaskedLM.from_pretrained, caduceus)):
        with pytest.raises(UnsafeFileError) as caught:
            load(folder)
        assert_refused(str(caught.value), folder / "pytorch_model.bin")
    assert not marker.exists()


def test_the_conversion_in_the_message_gives_a_folder_that_loads(tmp_path):
    """A checkpoint of our tasks refused for one harmless extra object converts, with the command the error
    gives, into a model folder with the same config and weights."""
    model = _tiny_lm()
    odd = tmp_path / "odd.ckpt"
    torch.save({"state_dict": {f"net.{k}": v for k, v in model.state_dict().items()}, "net_spec": net_spec(model),
                "note": Fraction(1, 3)}, odd)
    with pytest.raises(UnsafeFileError, match="fractions.Fraction") as caught:
        load_net(odd)
    command = str(caught.value).rsplit(" instead: ", 1)[1]
    assert command.startswith("python -c ")
    subprocess.run([sys.executable, *shlex.split(command)[1:]], check=True, cwd=tmp_path)
    converted = load_net(tmp_path / "odd_safetensors")
    assert converted.config.to_dict() == model.config.to_dict()
    for key, value in model.state_dict().items():
        assert torch.equal(converted.state_dict()[key], value), key


def test_our_checkpoints_load_weights_only_and_resume(compose, overrides, tiny, tmp_path, capsys):
    """A 2-step run's last.ckpt (mid-epoch: loader position, RNG, optimizer, scheduler and loop states) reads
    whole with torch's own ``weights_only=True``; ``pretrain ckpt_path=last.ckpt`` (Lightning reading it
    weights_only) starts at step 2 and ends at step 4."""
    run_args = [*RUN, *tiny.dna, "data.train_windows=8"]
    first = run(compose(overrides, run_args, "trainer.max_steps=2", f"paths.output_dir={tmp_path / 'first'}"))
    checkpoint = torch.load(first.last_checkpoint, weights_only=True)
    assert checkpoint["global_step"] == 2 and checkpoint["net_spec"]["architecture"] == "mamba"
    assert {"optimizer_states", "lr_schedulers", "loops", "callbacks", "hyper_parameters"} <= checkpoint.keys()
    assert load_net(first.last_checkpoint).config.to_dict() == checkpoint["net_spec"]["config"]
    capsys.readouterr()
    resumed = tmp_path / "resumed"
    assert main(["pretrain", *overrides, *run_args, "trainer.max_steps=4", f"paths.output_dir={resumed}",
                 f"ckpt_path={first.last_checkpoint}"]) == 0
    assert "training from step 2" in capsys.readouterr().out
    last = torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 4
    assert not torch.equal(last["state_dict"]["net.lm_head.weight"], checkpoint["state_dict"]["net.lm_head.weight"])


def test_hyper_parameters_and_net_spec_are_plain_data():
    from functools import partial

    values = plain_data({"scheduler": OmegaConf.create({"min_lr": 0.0, "steps": [1, 2]}),
                         "out": pathlib.Path("a/b"), "shape": (1, 2)}, "hyper_parameters")
    assert values == {"scheduler": {"min_lr": 0.0, "steps": [1, 2]}, "out": "a/b", "shape": (1, 2)}
    assert type(values["scheduler"]) is dict and type(values["scheduler"]["steps"]) is list
    with pytest.raises(TypeError, match=r"hyper_parameters\['optimizer'\] holds a functools.partial"):
        plain_data({"optimizer": partial(torch.optim.AdamW, lr=1e-3)}, "hyper_parameters")


@pytest.mark.parametrize("content", [b"", b"not a torch file", None], ids=["empty", "text", "truncated"])
def test_unreadable_files_are_named(tmp_path, content):
    path = tmp_path / "broken.ckpt"
    if content is None:  # truncated
        torch.save({"state_dict": {"w": torch.zeros(1000)}}, path)
        content = path.read_bytes()[:300]
    path.write_bytes(content)
    with pytest.raises(ValueError, match="broken.ckpt"):
        load_net(path)


def _sharded_folder(tmp_path) -> pathlib.Path:
    folder = save_pretrained(_tiny_lm(), tmp_path / "sharded")
    (folder / "model.safetensors").rename(folder / "model-00001-of-00001.safetensors")
    return folder


def _write_index(folder: pathlib.Path, text: str) -> pathlib.Path:
    index = folder / "model.safetensors.index.json"
    index.write_text(text)
    return index


def test_a_valid_index_loads(tmp_path):
    folder = _sharded_folder(tmp_path)
    _write_index(folder, json.dumps({"weight_map": {"backbone.embedding.weight": "model-00001-of-00001.safetensors"}}))
    model = load_pretrained(folder)
    assert torch.equal(model.backbone.embedding.weight, _tiny_lm().backbone.embedding.weight)


@pytest.mark.parametrize(("weight_map", "message"), [
    ("{not json", "not valid JSON"),
    (json.dumps({"metadata": {}}), "has no weight_map"),
    (json.dumps({"weight_map": {"w": 3}}), "is not a shard file name"),
    (json.dumps({"weight_map": {"w": "../outside.safetensors"}}), "'../outside.safetensors' is not a file name inside"),
    (json.dumps({"weight_map": {"w": "/etc/passwd"}}), "'/etc/passwd' is not a file name inside"),
], ids=["bad_json", "no_weight_map", "shard_not_a_string", "dotdot_shard", "absolute_shard"])
def test_malformed_indexes_are_named(tmp_path, weight_map, message):
    index = _write_index(_sharded_folder(tmp_path), weight_map)
    with pytest.raises(ValueError, match=message) as caught:
        load_pretrained(index.parent)
    assert str(index) in str(caught.value)


def test_a_shard_symlink_out_of_the_folder_is_refused(tmp_path):
    folder = _sharded_folder(tmp_path)
    outside = tmp_path / "elsewhere.safetensors"
    save_file({"w": torch.zeros(1)}, str(outside))
    os.symlink(outside, folder / "link.safetensors")
    index = _write_index(folder, json.dumps({"weight_map": {"w": "link.safetensors"}}))
    with pytest.raises(ValueError, match="'link.safetensors' resolves to .*outside the model folder") as caught:
        load_pretrained(folder)
    assert str(index) in str(caught.value)
