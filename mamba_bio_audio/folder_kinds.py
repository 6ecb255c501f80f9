"""Which existing folders a command may replace or write into: one recogniser per kind of output folder.

Every command that writes a folder states the kind it writes (a prepared dataset, a model export, a run
folder, ...). It uses a folder that is absent, empty or recognised as that kind, and refuses anything else
before any work starts with :class:`FolderRefused`: one line naming the folder and why, nothing in it changed.
An input file that lies inside the folder is refused by name, since replacing the folder would delete it.

    >>> check_folder(Path("mine"), MODEL_EXPORT)   # raises FolderRefused for a folder of someone else's files
"""
from __future__ import annotations

import fnmatch
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["FolderInUse", "FolderKind", "FolderRefused", "MODEL_EXPORT", "check_folder", "layout_kind"]


class FolderRefused(ValueError):
    """A command will not replace or write into a folder; the message (one line) names the folder and why.

    A ValueError, so the console command reports it as one line with exit status 2, like any bad argument."""


class FolderInUse(FolderRefused):
    """Another process holds the folder's lock (it is writing the folder now)."""


@dataclass(frozen=True)
class FolderKind:
    """A kind of output folder: ``name`` reads in a sentence ("a prepared dataset"); ``foreign(path)`` gets a
    non-empty folder and returns why it is not of this kind (a clause), or None when it is."""

    name: str
    foreign: Callable[[Path], str | None] = field(repr=False)

    def refusal(self, path: Path) -> str | None:
        """None when ``path`` may be used (absent, an empty folder, or a folder of this kind), else why not."""
        path = Path(path)
        if not path.exists() and not path.is_symlink():
            return None
        if not path.is_dir():
            return f"it is a file, not {self.name}"
        if next(path.iterdir(), None) is None:
            return None
        return self.foreign(path)


def layout_kind(name: str, *, files: Iterable[str] = (), folders: dict[str, FolderKind | None] | None = None,
                marker: str | None = None, marker_check: Callable[[Path], bool] | None = None) -> FolderKind:
    """A kind known by what it holds at its top level: files matching the ``files`` globs, sub-folders named in
    ``folders`` (each checked against its own kind, or anything when None), and, when ``marker`` is given, that
    file, which ``marker_check`` (if given) accepts."""
    files, folders = tuple(files), dict(folders or {})

    def foreign(path: Path) -> str | None:
        if marker is not None:
            if not (path / marker).is_file():
                return f"it holds {_some(path)} and no {marker}, so it is not {name}"
            if marker_check is not None and not marker_check(path / marker):
                return f"its {marker} is not that of {name}"
        for entry in sorted(path.iterdir()):
            if entry.is_dir() and not entry.is_symlink() and entry.name in folders:
                inner = folders[entry.name]
                why = inner.refusal(entry) if inner is not None else None
                if why:
                    return f"its {entry.name}/ is not {inner.name} ({why})"
            elif not entry.is_dir() and any(fnmatch.fnmatchcase(entry.name, g) for g in files):
                continue
            else:
                return f"it holds {entry.name}{'/' if entry.is_dir() else ''}, which is not part of {name}"
        return None

    return FolderKind(name, foreign)


def _some(path: Path, shown: int = 3) -> str:
    """``a.txt, b/ and 4 more``: the first entries of a folder, for a message."""
    names = sorted(e.name + ("/" if e.is_dir() else "") for e in path.iterdir())
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def _inside(inner: Path, outer: Path) -> bool:
    return inner == outer or outer in inner.parents


def check_folder(path: str | Path, kind: FolderKind, inputs: Iterable[str | Path | None] = ()) -> None:
    """Raise :class:`FolderRefused` unless ``path`` may be written as ``kind``: absent, empty or of that kind,
    and holding none of ``inputs`` (files or folders the command reads; None entries are skipped)."""
    path = Path(path)
    target = path.resolve()
    for item in inputs:
        if item is not None and _inside(Path(item).resolve(), target):
            raise FolderRefused(f"{path}: refused: the input {item} lies inside it, and writing {kind.name} "
                                f"there would delete it; write the output to another folder (nothing was changed)")
    why = kind.refusal(path)
    if why:
        raise FolderRefused(f"{path}: refused: {why}; choose a new or empty folder (nothing in it was changed)")


def _our_model_config(config: Path) -> bool:
    try:
        values = json.loads(config.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(values, dict) and "architecture" in values and "head_type" in values


def _export_foreign(path: Path) -> str | None:
    # save_pretrained overwrites only config.json and model.safetensors and leaves other files alone: those
    # two must be ours (a config.json with "architecture" and "head_type"), or absent
    config = path / "config.json"
    if config.exists() and not _our_model_config(config):
        return "its config.json is not a model export of mamba-bio-audio (no 'architecture' and 'head_type')"
    if (path / "model.safetensors").exists() and not config.exists():
        return "it holds a model.safetensors without our config.json"
    return None


MODEL_EXPORT = FolderKind("a model export (config.json + model.safetensors)", _export_foreign)
