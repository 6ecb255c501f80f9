"""The output folders of the training, sampling and quickstart commands, and the check each makes before it
starts: a folder is used only when absent, empty or of its own kind (see :mod:`mamba_bio_audio.folder_kinds`).

* a run folder (``paths.output_dir`` of pretrain / finetune / evaluate): ``checkpoints/``, the logger folders
  ``csv/``, ``tensorboard/`` and ``lightning_logs/``, ``samples/`` of the audio callback, ``export/`` (a model
  export), ``metrics.json`` and ``config.yaml``;
* a sample folder (``sample out=``): ``clip_NN.wav`` / ``clip_NN.png``, ``samples.fa``, ``samples.json``;
* a drawn-clips folder (``evaluate-audio --save-samples``): ``clip_NNN.wav`` only, replaced as a whole;
* a quickstart folder (``quickstart --out``): ``report.md``, ``metrics.json``, the two figures, ``runs/{dna,
  species,audio}/`` run folders and the ``audio/`` and ``dna/`` sample folders.
"""
from __future__ import annotations

from pathlib import Path

from mamba_bio_audio.folder_kinds import MODEL_EXPORT, check_folder, layout_kind

TEMPORARIES = ".*.tmp"  # atomic writes cut short by a kill

RUN_FOLDER = layout_kind(
    "a run folder", files=("metrics.json", "config.yaml", TEMPORARIES),
    folders={"checkpoints": None, "csv": None, "tensorboard": None, "lightning_logs": None, "samples": None,
             "export": MODEL_EXPORT})
SAMPLE_FOLDER = layout_kind("a sample folder", files=("clip_[0-9]*.wav", "clip_[0-9]*.png", "samples.fa",
                                                      "samples.json", TEMPORARIES))
DRAWN_CLIPS_FOLDER = layout_kind("a folder of drawn clips (clip_NNN.wav)", files=("clip_[0-9]*.wav",))
QUICKSTART_PHASES = ("dna", "species", "audio")
QUICKSTART_FOLDER = layout_kind(
    "a quickstart folder", files=("report.md", "metrics.json", "loss_curves.png", "confusion.png", TEMPORARIES),
    folders={"runs": layout_kind("quickstart runs", folders=dict.fromkeys(QUICKSTART_PHASES, RUN_FOLDER)),
             "audio": SAMPLE_FOLDER, "dna": SAMPLE_FOLDER})


def check_run_folder(cfg) -> None:
    """Refuse (FolderRefused, a ValueError) a composed training config whose ``paths.output_dir`` is neither
    new, empty nor a run folder: before anything is built, read or written."""
    if "paths" in cfg and cfg.paths.get("output_dir"):
        check_folder(Path(cfg.paths.output_dir), RUN_FOLDER)
