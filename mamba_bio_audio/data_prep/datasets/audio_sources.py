"""Which audio files go into a dataset, in which order, split and class.

- Inputs are files, folders (searched recursively for audio extensions, hidden files skipped) or glob
  patterns. Files are ordered naturally ("2.wav" before "10.wav", with natsort) by path.
- ``long`` mode splits by that order: the first 88 % of files train, the next 6 % valid, the last 6 % test
  (SaShiMi's YouTubeMix split), with integer boundaries ``n * 88 // 100`` and ``n * 94 // 100``.
- ``clips`` mode splits like Speech Commands: by a SHA-1 of the file name up to ``_nohash_`` (so one
  speaker's clips stay together), 10 % valid and 10 % test by default.
- Either mode takes explicit lists instead (``validation_list.txt`` / ``testing_list.txt`` style: one path per
  line, matched against the trailing components of each file's path, e.g. ``seven/0a2b_nohash_0.wav``);
  the files in neither list are train.
"""
from __future__ import annotations

import glob
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from natsort import natsort_keygen

from mamba_bio_audio.data_prep.formats.audio_io import AUDIO_EXTENSIONS

SPLITS = ("train", "valid", "test")
_GLOB_CHARS = re.compile(r"[*?\[]")
_SPEECH_COMMANDS_MAX = 2**27 - 1  # MAX_NUM_WAVS_PER_CLASS of the Speech Commands split function
_NAME_LABEL = re.compile(r"[_\-.\s]")


@dataclass(frozen=True)
class AudioSource:
    """One input file: ``path`` (resolved), ``root`` (the input it was found under)."""

    path: Path
    root: Path

    @property
    def key(self) -> str:
        """Path relative to its input (posix), or the file name for a file given directly."""
        return self.path.name if self.root == self.path else self.path.relative_to(self.root).as_posix()


natural_key = natsort_keygen()
"""Sort key that orders digit runs by value ("a2" < "a10"), as ``natsort.natsorted`` does."""


def find_audio(inputs: list[str | Path]) -> list[AudioSource]:
    """Expand files, folders and globs to audio files in natural path order (duplicates dropped).
    Raises FileNotFoundError for an input that matches nothing."""
    found: dict[Path, AudioSource] = {}
    for item in inputs:
        text = str(item)
        is_glob = bool(_GLOB_CHARS.search(text)) and not os.path.exists(text)
        matches = sorted(glob.glob(text, recursive=True)) if is_glob else [text]
        if not matches or not os.path.exists(matches[0]):
            raise FileNotFoundError(f"no such audio file or folder: {text}")
        files: list[tuple[Path, Path]] = []
        for match in matches:
            path = Path(match).resolve()
            if path.is_dir():
                files += [(file, path) for file in _walk(path)]
            elif not is_glob or path.suffix.lower() in AUDIO_EXTENSIONS:
                files.append((path, path))
        if not files:
            raise FileNotFoundError(f"no audio files in {text} (extensions: {', '.join(sorted(AUDIO_EXTENSIONS))})")
        for file, root in files:
            found.setdefault(file, AudioSource(file, root))
    return sorted(found.values(), key=lambda s: natural_key(str(s.path)))


def _walk(folder: Path) -> list[Path]:
    files = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        files += [Path(dirpath, f) for f in filenames
                  if not f.startswith(".") and Path(f).suffix.lower() in AUDIO_EXTENSIONS]
    return files


def read_list(path: str | Path) -> list[str]:
    """Entries of a split list file: one relative path per line; blank lines and ``#`` comments ignored."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"split list not found: {path}")
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line.replace("\\", "/").removeprefix("./") for line in lines if line and not line.startswith("#")]


def _list_matcher(entries: list[str]):
    wanted = {tuple(e.split("/")) for e in entries}
    depths = sorted({len(w) for w in wanted})
    used: set[tuple] = set()

    def match(path: Path) -> bool:
        for depth in depths:
            tail = path.parts[-depth:]
            if tail in wanted:
                used.add(tail)
                return True
        return False

    return match, wanted, used


def split_by_lists(sources: list[AudioSource], valid_entries: list[str], test_entries: list[str],
                   valid_name: str = "valid list", test_name: str = "test list") -> list[str]:
    """Split name per source: in the test list -> test, in the valid list -> valid, else train.
    Raises ValueError when a non-empty list matches none of the files (a wrong root or a typo)."""
    match_valid, wanted_valid, used_valid = _list_matcher(valid_entries)
    match_test, wanted_test, used_test = _list_matcher(test_entries)
    splits = ["test" if match_test(s.path) else "valid" if match_valid(s.path) else "train" for s in sources]
    for name, wanted, used in ((valid_name, wanted_valid, used_valid), (test_name, wanted_test, used_test)):
        if wanted and not used:
            example = "/".join(next(iter(sorted(wanted))))
            raise ValueError(f"{name}: none of its {len(wanted)} entries (e.g. {example!r}) matches an input file")
    return splits


def split_by_order(n: int, percent: tuple[int, int, int]) -> list[str]:
    """``n`` files in natural order -> train / valid / test by cumulative integer percentages."""
    b1 = n * percent[0] // 100
    b2 = n * (percent[0] + percent[1]) // 100
    return ["train" if i < b1 else "valid" if i < b2 else "test" for i in range(n)]


def split_by_hash(sources: list[AudioSource], percent: tuple[int, int, int]) -> list[str]:
    """Speech Commands' ``which_set``: SHA-1 of the file name without its ``_nohash_`` suffix."""
    splits = []
    for s in sources:
        stem = re.sub(r"_nohash_.*$", "", s.path.name)
        value = int(hashlib.sha1(stem.encode("utf-8")).hexdigest(), 16)
        share = (value % (_SPEECH_COMMANDS_MAX + 1)) * (100.0 / _SPEECH_COMMANDS_MAX)
        splits.append("valid" if share < percent[1] else "test" if share < percent[1] + percent[2] else "train")
    return splits


def label_name(source: AudioSource, label_from: str) -> str:
    """``folder``: the parent folder's name; ``name``: the file name up to its first ``_``, ``-``, ``.`` or space."""
    if label_from == "folder":
        return source.path.parent.name
    if label_from == "name":
        return _NAME_LABEL.split(source.path.name, maxsplit=1)[0]
    raise ValueError(f"label_from must be 'folder' or 'name'; got {label_from!r}")


def parse_percent(text: str) -> tuple[int, int, int]:
    """``"88,6,6"`` -> (88, 6, 6); three non-negative integers summing to 100."""
    try:
        parts = tuple(int(p) for p in str(text).split(","))
    except ValueError:
        parts = ()
    if len(parts) != 3 or min(parts) < 0 or sum(parts) != 100:
        raise ValueError(f"split must be three non-negative integer percentages summing to 100 "
                         f"(train,valid,test); got {text!r}")
    return parts
