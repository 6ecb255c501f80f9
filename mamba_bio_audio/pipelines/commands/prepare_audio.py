"""``mamba-bio-audio prepare-audio``: audio files to a prepared 8-bit mu-law (or linear) dataset."""
from __future__ import annotations

import argparse
from pathlib import Path

from mamba_bio_audio.atomic import folder_lock
from mamba_bio_audio.data_prep.formats.audio_encode import NORMALIZE, QUANTIZATION
from mamba_bio_audio.data_prep.datasets.prepare_audio import MODES, prepare_audio
from mamba_bio_audio.pipelines.commands.data_progress import file_progress, phase_callback
from mamba_bio_audio.pipelines.commands.shared import add_progress_argument, audio_summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="audio files, folders (searched recursively) or globs")
    parser.add_argument("--out", type=Path, required=True, help="dataset folder to write")
    parser.add_argument("--mode", choices=MODES, default="long",
                        help="long: one record per file, windows drawn at training time (YouTubeMix); "
                             "clips: fixed-length labelled clips (SC09) (default: %(default)s)")
    parser.add_argument("--rate", type=float, default=16000, help="output sample rate in Hz (default: 16000)")
    parser.add_argument("--normalize", choices=NORMALIZE, default="minmax",
                        help="per-record scaling before quantisation; minmax is SaShiMi's (default: %(default)s)")
    parser.add_argument("--quantization", choices=QUANTIZATION, default="mu-law",
                        help="8-bit codes (default: %(default)s)")
    parser.add_argument("--split", metavar="TRAIN,VALID,TEST",
                        help="percentages; long: by natural file order (default 88,6,6); "
                             "clips: Speech Commands hash of the file name (default 80,10,10)")
    parser.add_argument("--valid-list", type=Path, help="file listing the validation files (one relative path a line)")
    parser.add_argument("--test-list", type=Path, help="file listing the test files; files in neither list are train")
    parser.add_argument("--clip-seconds", type=float, default=1.0, help="clips: clip length (default: %(default)s)")
    parser.add_argument("--label-from", choices=("folder", "name"), default="folder",
                        help="clips: label = parent folder name, or file name up to its first _ - . "
                             "(default: %(default)s)")
    parser.add_argument("--labels", help="clips: comma-separated class names in id order; other files are left out")
    parser.add_argument("--skip-bad", action="store_true",
                        help="log and skip unreadable or invalid files (listed in the manifest) instead of stopping")
    parser.add_argument("--workers", type=int, help="decoding processes (default: the usable CPU cores)")
    parser.add_argument("--force", action="store_true", help="rebuild even if the dataset is up to date")
    add_progress_argument(parser, dest="no_progress")


def run(args) -> int:
    labels = [name.strip() for name in args.labels.split(",") if name.strip()] if args.labels else None
    with folder_lock(args.out), file_progress(disable=args.no_progress) as bar:  # one writer of --out at a time
        result = prepare_audio(
            args.inputs, args.out, mode=args.mode, rate=args.rate, normalize=args.normalize,
            quantization=args.quantization, split=args.split, valid_list=args.valid_list, test_list=args.test_list,
            clip_seconds=args.clip_seconds, label_from=args.label_from, labels=labels, skip_bad=args.skip_bad,
            workers=args.workers, force=args.force, progress=phase_callback(bar),
        )
    print(audio_summary(result))
    return 0
