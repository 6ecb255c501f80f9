"""Packaging contracts: light import, console script, version."""
import subprocess
import sys

import mamba_bio_audio
from mamba_bio_audio.pipelines.cli import main


def test_import_is_light():
    code = (
        "import sys, mamba_bio_audio, mamba_bio_audio.ops;"
        "heavy = {'numba', 'lightning', 'hydra', 'safetensors', 'yaml', 'Bio', 'pyfaidx', 'soundfile', 'matplotlib', 'triton'};"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_version_and_help(capsys):
    for argv in (["--version"], ["--help"]):
        try:
            main(argv)
        except SystemExit as stop:
            assert stop.code == 0
    text = capsys.readouterr().out
    assert f"mamba-bio-audio {mamba_bio_audio.__version__}" in text
    assert "quickstart" in text and "bench" in text


def test_console_script_runs():
    result = subprocess.run(["mamba-bio-audio", "--version"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("mamba-bio-audio ")


def test_unknown_command_fails():
    try:
        main(["no-such-command"])
    except SystemExit as stop:
        assert stop.code == 2
    else:
        raise AssertionError("an unknown subcommand must exit with status 2")
