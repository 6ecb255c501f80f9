"""The config's data.sample_rate must be the prepared audio dataset's own rate (its manifest's audio.rate)."""
from __future__ import annotations

import json

from mamba_bio_audio.pipelines.cli import main


def test_pretrain_refuses_a_sample_rate_other_than_the_datasets(capsys, data_dir, overrides, tiny, tmp_path):
    manifest = json.loads((data_dir / "piano" / "manifest.json").read_text())
    assert manifest["audio"]["rate"] == 16000  # what the fixture prepared: the rate the error must name
    code = main(["pretrain", "experiment=audio/piano_cpu", *overrides, *tiny.audio, "data.sample_rate=8000",
                 "data.seq_len=64", "data.batch_size=2", "trainer.max_steps=1"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "data.sample_rate is 8000" in err and "16000 Hz" in err and str(data_dir / "piano") in err
    assert not (tmp_path / "run" / "checkpoints").exists()  # refused before fitting
