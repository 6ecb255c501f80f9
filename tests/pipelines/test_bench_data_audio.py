"""``bench data-audio`` runs end to end on a few seconds of audio and writes its JSON."""
import argparse
import json

from mamba_bio_audio.pipelines.bench import data_audio


def test_bench_writes_json(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    data_audio.add_arguments(parser)
    args = parser.parse_args(["--minutes", "0.1", "--file-seconds", "2", "--repeats", "1", "--workers", "1",
                              "--inputs", "wav-44k-stereo,flac-16k-mono", "--out-dir", str(tmp_path)])
    assert data_audio.run(args) == 0
    (out,) = tmp_path.glob("data_audio_*.json")
    report = json.loads(out.read_text())
    assert [r["input"] for r in report["results"]] == ["wav-44k-stereo", "flac-16k-mono"]
    assert report["benchmark"] == "data_audio" and report["versions"]["soundfile"] and report["machine"]["cpu_count"]
    assert all(r["audio_s"] == 6.0 and r["files"] == 3 and r["rtf_median"] > 0 for r in report["results"])
    assert "real time" in capsys.readouterr().out
