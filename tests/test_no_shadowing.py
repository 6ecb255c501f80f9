"""The repository root holds no importable package but ``mamba_bio_audio``: a Python started there (``python -c``,
``python -m``, a notebook) imports other distributions named ``kernels`` (Hugging Face's, which transformers
imports), ``pipelines``, ``configs`` or ``data_prep`` from where they are installed, not our folders.

The oracle is a stand-in distribution of each name on ``PYTHONPATH``, which a folder of the same name in the
working directory would shadow (the working directory comes first on ``sys.path``).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAMES = ("kernels", "pipelines", "configs", "data_prep", "benchmarks", "tests")


def test_stand_in_distributions_win_from_the_repository_root(tmp_path):
    for name in NAMES:
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(f"STAND_IN = {name!r}\n")
    probe = ("import importlib, mamba_bio_audio.kernels as ours\n"
             f"for name in {NAMES!r}:\n"
             "    assert importlib.import_module(name).STAND_IN == name, name\n"
             "print(ours.__name__)\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "mamba_bio_audio.kernels"

