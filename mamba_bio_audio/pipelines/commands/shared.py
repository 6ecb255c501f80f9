"""CLI pieces several subcommands share: DNA tokenizer-policy options, the progress switch, one-line write
errors, library messages in command-line spellings, and the summary line printed after a dataset is prepared."""
from __future__ import annotations

import argparse
import contextlib
import logging
import re
import time
from pathlib import Path

from mamba_bio_audio.data_prep.datasets.prepare_audio import AudioPrepareResult
from mamba_bio_audio.data_prep.datasets.prepare_dna import DnaPrepareResult
from mamba_bio_audio.data_prep.datasets.prepared import PreparedDataset


def add_policy_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("tokens (HyenaDNA ids: A7 C8 G9 T10 N11)")
    group.add_argument("--case", choices=("upper", "strict"), default="upper",
                       help="soft-masked (lowercase) bases: upper-case them, or reject them (default: %(default)s)")
    group.add_argument("--iupac", choices=("n", "unk", "error"), default="n",
                       help="IUPAC codes R Y S W K M B D H V: to N, to [UNK], or an error (default: %(default)s)")
    group.add_argument("--unknown", choices=("error", "unk", "n"), default="error",
                       help="other characters: an error with file, line and column, [UNK] or N (default: %(default)s)")
    group.add_argument("--workers", type=int, default=0, help="tokenising processes (default: up to 4 usable cores)")
    parser.add_argument("--force", action="store_true", help="prepare again even if DIR holds the same preparation")
    add_progress_argument(parser)


def add_progress_argument(parser: argparse.ArgumentParser, dest: str = "quiet") -> None:
    """``--no-progress`` (also spelled ``--quiet``): no progress bars, the same switch in every data command."""
    parser.add_argument("--no-progress", "--quiet", dest=dest, action="store_true",
                        help="no progress bars (--quiet is the same switch)")


_PYTHON_SPELLING = re.compile(r"\b(case|iupac|unknown)='([a-z]+)'")


def cli_message(message: str) -> str:
    """A library message with keyword spellings (``unknown='n'``) turned into the command's flags (``--unknown n``)."""
    return _PYTHON_SPELLING.sub(lambda m: f"--{m[1]} {m[2]}", message)


@contextlib.contextmanager
def cli_spellings():
    """Re-raise a ValueError with :func:`cli_message` applied to its text."""
    try:
        yield
    except ValueError as err:
        text = cli_message(str(err))
        if text == str(err):
            raise
        raise ValueError(text) from err


@contextlib.contextmanager
def clean_os_errors(out: Path):
    """Turn write failures (full disk, permissions) into a one-line error: nothing half-written is left."""
    try:
        yield
    except FileNotFoundError:
        raise
    except OSError as err:
        raise ValueError(f"{err.strerror or err} ({err.filename or out}); {out} was left as it was") from err


def dna_summary(result: DnaPrepareResult, started: float) -> str:
    """One line: splits with record and token counts, time, and speed in MB of source files per second."""
    if result.up_to_date:
        return f"{result.path}: up to date (same sources and parameters); --force prepares it again"
    manifest = PreparedDataset(result.path).manifest
    splits = manifest["splits"].items()
    parts = ", ".join(f"{name} {c['records']} records / {c['tokens']:,} tokens" for name, c in splits)
    seconds = time.perf_counter() - started
    size = sum(s["size"] for s in manifest["sources"])
    return f"{result.path}: {parts} ({seconds:.1f} s, {size / 1e6 / max(seconds, 1e-9):.0f} MB/s of source files)"


def audio_summary(result: AudioPrepareResult) -> str:
    if result.up_to_date:
        return f"{result.path}: up to date (use --force to rebuild)"
    counts = ", ".join(f"{name} {c['records']} records / {c['tokens'] / 1e6:.2f}M tokens"
                       for name, c in result.splits.items())
    speed = result.seconds_in / result.wall_s if result.wall_s > 0 else float("inf")
    text = (f"{result.path}: {counts}; {result.seconds_in / 3600:.3f} h of audio in {result.wall_s:.1f} s "
            f"({speed:.0f}x real time)")
    if result.skipped:
        logging.getLogger(__name__).warning("%d bad files skipped (listed in the manifest)", len(result.skipped))
        text += f"; {len(result.skipped)} bad files skipped"
    return text
