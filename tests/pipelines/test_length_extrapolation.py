"""Length extrapolation: loss per position, the position table, the JSON + PNG report and the command line."""
import json

import pytest
import torch

from mamba_bio_audio.models import MambaLMHeadModel
from mamba_bio_audio.models.transformer import TransformerLMHeadModel
from mamba_bio_audio.pipelines.evaluation import length_extrapolation as lx


def test_loss_per_position_chunked_equals_whole(make_mamba_config, make_dna, close):
    torch.manual_seed(0)
    model = MambaLMHeadModel(make_mamba_config()).eval()
    ids = make_dna(3, 301)
    ids[2, 150:] = 4
    whole = lx.loss_per_position(model, ids, pad_token_id=4)
    assert whole.shape == (300,)
    close(lx.loss_per_position(model, ids, chunk_size=64, pad_token_id=4), whole)
    logits = model(ids[:, :-1]).logits.detach()
    expected = torch.nn.functional.cross_entropy(logits.transpose(1, 2), ids[:, 1:], reduction="none")
    close(whole[:149], expected[:, :149].mean(0))
    close(whole[200:], expected[:2, 200:].mean(0))  # the padded row does not count


def test_position_table():
    losses = torch.cat([torch.full((64,), 1.0), torch.full((64,), 2.0), torch.full((128,), 3.0),
                        torch.full((200,), 4.0)])
    rows = lx.position_table(losses, train_length=128)
    assert [(r["start"], r["end"]) for r in rows] == [(0, 64), (64, 128), (128, 256), (256, 456)]
    assert [r["loss_nats"] for r in rows] == [1.0, 2.0, 3.0, 4.0]
    assert [r["vs_trained_end"] for r in rows] == [0.5, 1.0, 1.5, 2.0]
    assert rows[1]["bits_per_token"] == pytest.approx(2.0 / 0.6931471805599453, abs=1e-4)
    table = lx.format_table({"a": rows, "b": rows}, 128)
    assert table.count("\n") == 5 and "| [128, 256) | 4.3281 (x1.500) | 4.3281 (x1.500) |" in table


def test_report_files(tmp_path):
    curves = {"mamba": torch.rand(1000) + 1, "transformer": torch.rand(1000) + 1.5}
    json_path, png_path = lx.write_report(curves, 256, tmp_path, {"note": "test"})
    report = json.loads(json_path.read_text())
    assert report["train_length"] == 256 and report["length"] == 1001 and report["note"] == "test"
    assert set(report["tables"]) == {"mamba", "transformer"} and "| positions" in report["markdown"]
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_command_line_on_saved_models(tmp_path, make_mamba_config, make_transformer_config, capsys):
    torch.manual_seed(0)
    MambaLMHeadModel(make_mamba_config()).save_pretrained(tmp_path / "mamba")
    TransformerLMHeadModel(make_transformer_config()).save_pretrained(tmp_path / "transformer")
    from mamba_bio_audio.data_prep.formats.fasta import bundled_example

    code = lx.main([str(tmp_path / "mamba"), str(tmp_path / "transformer"), "--fasta",
                    str(bundled_example("MT-human.fa.gz")), "--train-length", "128", "--length", "512",
                    "--windows", "2", "--chunk-size", "128", "--out-dir", str(tmp_path / "out")])
    assert code == 0
    assert "| [256, 512) |" in capsys.readouterr().out
    assert len(list((tmp_path / "out").glob("length_extrapolation_*.png"))) == 1
