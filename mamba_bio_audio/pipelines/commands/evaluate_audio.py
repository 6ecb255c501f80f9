"""``mamba-bio-audio evaluate-audio --real DATASET [--train-classifier] [--samples DIR | --checkpoint MODEL]``:
SC09 metrics (FID, IS, mIS, AM; :mod:`~mamba_bio_audio.pipelines.evaluation.audio_metrics`) of generated clips
and of the real test clips, with the digit classifier of :mod:`~mamba_bio_audio.models.digit_classifier`
(trained by :mod:`~mamba_bio_audio.pipelines.training.digit_classifier`).

As in SaShiMi, the reference set is the dataset's ``train`` split: its features are the FID reference and its
mean prediction the AM score's ``p_train(y)``. The ``real_test`` row scores the dataset's ``test`` split (clips
no generator was trained on): the ceiling a generator can reach. Generated clips come from a folder of WAVs or
are drawn from a model (an exported folder or a Lightning ``.ckpt``). One JSON file holds the rows, the
classifier's accuracies and the machine.
"""
from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
import torch

from mamba_bio_audio.models import digit_classifier as classifier
from mamba_bio_audio.pipelines.training import digit_classifier as classifier_training

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--real", type=Path, required=True,
                        help="prepared clips dataset of the real audio, e.g. data/digits "
                             "(`examples audio --only digits`)")
    parser.add_argument("--classifier", type=Path, default=None,
                        help="classifier folder (default: REAL/classifier)")
    parser.add_argument("--train-classifier", action="store_true",
                        help="train the classifier on REAL first (replacing the folder's classifier)")
    parser.add_argument("--epochs", type=int, default=classifier_training.TrainConfig.epochs,
                        help="classifier training epochs (default: %(default)s)")
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="stop classifier training after the epoch that passes this wall time")
    parser.add_argument("--test-voices", default=",".join(classifier_training.DEFAULT_TEST_VOICES),
                        help="comma-separated fnmatch patterns of the voices held out for the classifier's test "
                             "(default: %(default)s)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--samples", type=Path, help="folder of generated mono WAV clips (rate and length of REAL)")
    source.add_argument("--checkpoint", type=Path,
                        help="generative model (exported folder or .ckpt) to draw --n clips from")
    parser.add_argument("--n", type=int, default=256, help="clips to draw with --checkpoint (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=64, help="streams sampled at once (default: %(default)s)")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default: %(default)s)")
    parser.add_argument("--save-samples", type=Path, default=None,
                        help="with --checkpoint: write the drawn clips here as WAVs (clip_NNN.wav); a folder "
                             "that holds anything else is refused")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON file (default: benchmarks/results/audio_metrics_<UTC stamp>.json)")


def read_wav_clips(folder: Path, sample_rate: int, clip_samples: int) -> tuple[np.ndarray, list[str]]:
    """Every ``*.wav`` in ``folder`` (natural order) → (waves (n, clip_samples) float32 in [-1, 1], names).
    ValueError naming the file for a wrong rate, channel count or length, or an unreadable file."""
    import soundfile as sf
    from natsort import natsorted

    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder of samples")
    files = natsorted((p for p in folder.iterdir() if p.suffix.lower() == ".wav" and p.is_file()), key=str)
    if len(files) < 2:
        raise ValueError(f"{folder}: holds {len(files)} .wav files; the metrics need at least 2")
    waves = np.zeros((len(files), clip_samples), dtype=np.float32)
    for i, path in enumerate(files):
        try:
            info = sf.info(str(path))
            if info.samplerate != sample_rate:
                raise ValueError(f"sample rate {info.samplerate} Hz; the classifier takes {sample_rate} Hz")
            if info.channels != 1:
                raise ValueError(f"{info.channels} channels; the classifier takes mono clips")
            if info.frames != clip_samples:
                raise ValueError(f"{info.frames} samples ({info.frames / sample_rate:.3f} s); the classifier takes "
                                 f"clips of {clip_samples} samples ({clip_samples / sample_rate:.3f} s)")
            waves[i] = sf.read(str(path), dtype="float32")[0]
        except (RuntimeError, sf.LibsndfileError) as err:
            raise ValueError(f"{path}: not a WAV file libsndfile can read ({err})") from err
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from err
    return waves, [p.name for p in files]


def clip_name(index: int) -> str:
    return f"clip_{index:03d}.wav"


def draw_clips(checkpoint: Path, n: int, clip_samples: int, sample_rate: int, save: Path | None,
               **knobs) -> tuple[np.ndarray, dict]:
    """(waves (n, clip_samples) float32, record) drawn from a generative mu-law model; WAVs into ``save``."""
    from mamba_bio_audio.atomic import atomic_dir
    from mamba_bio_audio.audio_generation import sample_audio
    from mamba_bio_audio.pipelines.commands.output_folders import DRAWN_CLIPS_FOLDER
    from mamba_bio_audio.pipelines.reporting.audio_out import write_wav
    from mamba_bio_audio.pipelines.training.nets import load_net
    from mamba_bio_audio.tokenizers import mu_law_decode

    net = load_net(checkpoint)
    if net.config.vocab_size != 256:
        raise ValueError(f"{checkpoint}: vocab_size {net.config.vocab_size} is no 8-bit mu-law audio model")
    started = time.perf_counter()
    drawn = sample_audio(net, n, clip_samples, **knobs)
    seconds = time.perf_counter() - started
    if save is not None:  # the folder holds this draw's clips only, none of an earlier one
        with atomic_dir(save, replaces=DRAWN_CLIPS_FOLDER) as folder:
            for i, pcm in enumerate(drawn.waveforms()):
                write_wav(folder / clip_name(i), pcm, sample_rate)
    bits = (-drawn.log_likelihood / clip_samples / np.log(2)).numpy()
    record = {"checkpoint": str(checkpoint), "n": n, **knobs, "sampling_s": seconds,
              "samples_per_s": n * clip_samples / seconds, "bits_per_sample_mean": float(bits.mean()),
              "saved_to": str(save) if save is not None else None}
    return mu_law_decode(drawn.tokens.numpy()), record


def _classifier_summary(folder: Path, report: dict, real_test_accuracy: float, manifest_sha: str) -> dict:
    matches = report.get("manifest_sha256") == manifest_sha
    if not matches:
        log.warning("%s was trained on another preparation of the data (manifest sha256 differs)", folder)
    return {"folder": str(folder), "test_accuracy_held_out_voices": report["test_accuracy"],
            "test_clips": report["clips"]["test"], "test_voices": report["train"]["test_voices"],
            "voices": report["voices"], "valid_accuracy": report["valid_accuracy"],
            "accuracy_on_real_test_split": real_test_accuracy, "parameters": report["parameters"],
            "trained_on_this_dataset": matches}


def check_output_folders(args) -> None:
    """Refuse (FolderRefused, a ValueError) before any work a ``--save-samples`` folder that is not new, empty
    or of drawn clips, and with ``--train-classifier`` a classifier folder that is not new, empty or a digit
    classifier's; neither may hold an input."""
    from mamba_bio_audio.folder_kinds import check_folder
    from mamba_bio_audio.pipelines.commands.output_folders import DRAWN_CLIPS_FOLDER

    inputs = (args.real, args.samples, args.checkpoint)
    if args.save_samples is not None:
        if args.checkpoint is None:
            raise ValueError("--save-samples writes the clips drawn with --checkpoint; give --checkpoint")
        check_folder(args.save_samples, DRAWN_CLIPS_FOLDER, inputs)
    if args.train_classifier:
        check_folder(args.classifier or args.real / classifier_training.DEFAULT_FOLDER, classifier.CLASSIFIER_FOLDER,
                     inputs)


def run(args) -> int:
    from mamba_bio_audio.data_prep.datasets.prepared import MANIFEST, file_sha256
    from mamba_bio_audio.pipelines.evaluation.audio_metrics import set_metrics
    from mamba_bio_audio.pipelines.reporting.bench_results import result_path, start, write_result

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.n < 2:
        raise ValueError(f"--n must be at least 2 (FID fits a covariance); got {args.n}")
    check_output_folders(args)
    started, run_start = time.perf_counter(), start()
    ds, labels, clip_samples, rate = classifier_training.dataset_info(args.real)
    folder = args.classifier or ds.path / classifier_training.DEFAULT_FOLDER
    if args.train_classifier:
        patterns = tuple(p.strip() for p in args.test_voices.split(",") if p.strip())
        if not patterns:
            raise ValueError("--test-voices names no voice pattern")
        train = classifier_training.TrainConfig(epochs=args.epochs, test_voices=patterns, max_minutes=args.max_minutes)
        report = classifier_training.train_classifier(ds.path, folder, train)
        print(f"classifier: {report['test_accuracy']:.4f} test accuracy on {report['clips']['test']} clips of "
              f"{report['voices']['test']} held-out voices ({report['minutes']:.1f} min); saved to {folder}")
    model, report = classifier.load_classifier(folder)
    if (model.config.labels, model.config.sample_rate, model.config.clip_samples) != (labels, rate, clip_samples):
        raise ValueError(f"{folder}: the classifier's labels, rate or clip length differ from {ds.path}'s")
    out = args.out or result_path(Path("benchmarks/results"), "audio_metrics")
    generated = None
    if args.samples is not None:
        waves, names = read_wav_clips(args.samples, rate, clip_samples)
        generated = {"samples": str(args.samples), "n": len(names)}
    elif args.checkpoint is not None:
        waves, generated = draw_clips(args.checkpoint, args.n, clip_samples, rate, args.save_samples,
                                      batch_size=args.batch_size, temperature=args.temperature, top_p=args.top_p,
                                      seed=args.seed)
        names = [clip_name(i) for i in range(args.n)]
    reference = classifier_training.load_clips(ds.path, ("train",))
    ref_lp, ref_feats = classifier.classify(model, reference.waves())
    test = classifier_training.load_clips(ds.path, ("test",))
    test_lp, test_feats = classifier.classify(model, test.waves())
    rows = {"real_test": set_metrics(ref_lp, ref_feats, test_lp, test_feats)}
    if generated is not None:
        gen_lp, gen_feats = classifier.classify(model, waves)
        rows["generated"] = set_metrics(ref_lp, ref_feats, gen_lp, gen_feats)
        generated["per_clip"] = [{"clip": name, "predicted": labels[int(row.argmax())],
                                  "probability": float(np.exp(row.max()))}
                                 for name, row in zip(names, gen_lp)]
    result = {
        "metrics": "SaShiMi's SC09 set (FID, IS, mIS, AM); reference: the real train split",
        "real": str(ds.path), "reference_clips": len(reference), "rows": rows, "generated": generated,
        "classifier": _classifier_summary(folder, report, classifier.accuracy(test_lp, test.labels),
                                          file_sha256(ds.path / MANIFEST)),
        "wall_s": time.perf_counter() - started, "threads": torch.get_num_threads(),
    }
    for name, row in rows.items():
        print(f"{name:>10}: n {row['n']}  FID {row['fid']:.3f}  IS {row['is']:.3f}  mIS {row['mis']:.3f}  "
              f"AM {row['am']:.3f}  confidence {row['confidence']:.3f}")
    write_result(out.parent, "audio_metrics", result, path=out, started=run_start)
    return 0
