"""Atomic file and folder writes: write under a temporary name in the same folder, then rename into place.

A crash or a full disk leaves the previous version (or nothing) in place, never a half-written file. The
temporary file or folder is created with mode 0o666 / 0o777, so the kernel applies the process umask (or
the folder's default ACL) and the renamed result has the permissions of any newly created file or folder.
"""
from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path

_TRIES = 100


def _fresh(path: Path, suffix: str, create: Callable[[Path], None]) -> Path:
    """A new entry ``.<name>.<random><suffix>`` beside ``path``, made by ``create`` (which raises
    FileExistsError for a name that is taken)."""
    for _ in range(_TRIES):
        candidate = path.with_name(f".{path.name}.{secrets.token_hex(6)}{suffix}")
        try:
            create(candidate)
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(f"no free temporary name beside {path} after {_TRIES} tries")


def _create_file(path: Path) -> None:
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))


def _create_dir(path: Path) -> None:
    os.mkdir(path, 0o777)


@contextlib.contextmanager
def atomic_path(path: Path):
    """Yield a temporary path beside ``path`` (an empty file); on success rename it onto ``path``, on error
    remove it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _fresh(path, ".tmp", _create_file)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_dir(path: Path):
    """Yield a temporary folder beside ``path``; on success it replaces ``path`` (an existing one is swapped out)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _fresh(path, ".tmp", _create_dir)
    try:
        yield tmp
        if path.exists():
            old = _fresh(path, ".old", _create_dir)
            os.replace(path, old / path.name)
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    with atomic_path(Path(path)) as tmp:
        tmp.write_text(text)
