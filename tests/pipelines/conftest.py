"""Tiny prepared datasets (DNA, species, piano-like audio, digit-like clips) built in a temporary folder with the
data_prep writers, and helpers to run the pipelines on them with tiny models on the CPU."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

from mamba_bio_audio.data_prep.datasets.prepare_audio import prepare_audio
from mamba_bio_audio.data_prep.datasets.prepare_dna import prepare_dna
from mamba_bio_audio.data_prep.datasets.prepare_species import prepare_species_genomes

TINY_DNA_NET = ["++net.config.n_layer=1", "++net.config.d_model=16"]
TINY_AUDIO_NET = ["++net.config.n_layer=1", "++net.config.d_model=16", "++net.config.ssm_cfg.d_state=4"]


def _fasta(path: Path, records: dict[str, str]) -> Path:
    path.write_text("".join(f">{name}\n{seq}\n" for name, seq in records.items()))
    return path


def _dna(rng: np.random.Generator, n: int, gc: float = 0.4) -> str:
    p = [(1 - gc) / 2, gc / 2, gc / 2, (1 - gc) / 2]
    return "".join(rng.choice(list("ACGT"), size=n, p=p))


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """A data folder with ``hg_small``, ``apes4``, ``piano`` and ``digits`` datasets, each a few kB."""
    root = tmp_path_factory.mktemp("pipelines_data")
    raw = root / "raw"
    raw.mkdir()
    rng = np.random.default_rng(0)
    genome = _fasta(raw / "genome.fa", {"chr1": _dna(rng, 40_000), "chr2": _dna(rng, 6_000), "chr3": _dna(rng, 6_000)})
    prepare_dna([genome], root / "hg_small", held_out={"valid": ["chr2"], "test": ["chr3"]})
    genomes = {}
    for i, name in enumerate(("human", "chimpanzee", "gorilla", "orangutan")):
        genomes[name] = [_fasta(raw / f"{name}.fa", {f"chr{c}": _dna(rng, 8_000, gc=0.3 + 0.1 * i) for c in (1, 2, 3)})]
    prepare_species_genomes(genomes, root / "apes4", valid_chroms=["chr2"], test_chroms=["chr3"])
    t = np.arange(8000) / 16000
    (raw / "piano").mkdir()
    for i in range(6):
        wave = 0.4 * np.sin(2 * np.pi * (220 + 40 * i) * t) + 0.05 * rng.standard_normal(t.size)
        sf.write(str(raw / "piano" / f"{i:02d}.wav"), wave.astype(np.float32), 16000)
    prepare_audio([raw / "piano"], root / "piano", mode="long", split="50,25,25")
    for label in ("zero", "one"):
        (raw / "digits" / label).mkdir(parents=True)
        for i in range(4):
            clip = 0.3 * np.sin(2 * np.pi * (300 + 100 * i) * t[:4000]) + 0.02 * rng.standard_normal(4000)
            sf.write(str(raw / "digits" / label / f"{label}_{i}.wav"), clip.astype(np.float32), 16000)
    prepare_audio([raw / "digits"], root / "digits", mode="clips", split="50,25,25", clip_seconds=0.25,
                  labels=["zero", "one"])
    return root


def run_overrides(data_dir: Path, run_dir: Path) -> list[str]:
    """Overrides every test run needs: the tiny data, the run folder ``run_dir``, CSV logs only, the CPU."""
    return [f"paths.data_dir={data_dir}", f"paths.output_dir={run_dir}", "logger=csv",
            "trainer.accelerator=cpu", "trainer.devices=1", "data.num_workers=0",
            "~callbacks.rich_progress_bar", "+trainer.enable_model_summary=false"]


def compose_run(*overrides) -> object:
    """The ``train`` config composed from ``overrides`` (strings, or lists of them)."""
    from mamba_bio_audio.pipelines.commands.hydra_compose import compose as compose_config

    return compose_config("train", [o for group in overrides for o in ([group] if isinstance(group, str) else group)])


@pytest.fixture
def overrides(data_dir, tmp_path):
    """:func:`run_overrides` with the run folder in tmp_path."""
    return run_overrides(data_dir, tmp_path / "run")


@pytest.fixture(scope="session")
def overrides_for(data_dir):
    """Factory: :func:`run_overrides` with a run folder of the caller's choosing (for a run shared by a module)."""
    return lambda run_dir: run_overrides(data_dir, run_dir)


@pytest.fixture(scope="session")
def compose():
    return compose_run


@pytest.fixture(scope="session")
def tiny():
    return SimpleNamespace(dna=TINY_DNA_NET, audio=TINY_AUDIO_NET)
