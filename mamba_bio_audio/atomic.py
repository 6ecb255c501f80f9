"""Atomic file and folder writes: write under a temporary name in the same folder, then rename into place.

A crash or a full disk leaves the previous version (or nothing) in place, never a half-written file. The
temporary file or folder is created with mode 0o666 / 0o777, so the kernel applies the process umask (or
the folder's default ACL) and the renamed result has the permissions of any newly created file or folder.

A folder is written by one process at a time: :func:`folder_lock` holds an advisory lock on ``.<name>.lock``
beside it (an empty file, removed on release; one left by a killed process is harmless), and the holder first removes the temporaries a killed writer
left under this module's names (``.<name>.<12 hex>.tmp|old|parts``), putting the previous folder back if the
writer died between the two renames of :func:`atomic_dir`. :func:`atomic_dir` replaces an existing folder only
when it is of the kind the caller names (:mod:`mamba_bio_audio.folder_kinds`).
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

from mamba_bio_audio.folder_kinds import FolderInUse, FolderKind, check_folder

_TRIES = 100
_HELD: dict[str, list[int]] = {}  # lock file -> [fd, depth]: the locks this process holds (re-entrant)


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


def _remove_stale(path: Path) -> None:
    """Remove the temporary folders of this module's naming beside ``path`` (left by a killed writer; the
    caller holds the lock, so no live writer owns them). A ``.old`` folder holding the previous ``path`` while
    ``path`` is missing is a swap cut short: the previous folder is put back first."""
    stale = re.compile(rf"\.{re.escape(path.name)}\.[0-9a-f]{{12}}\.(tmp|old|parts)")
    for entry in sorted(path.parent.iterdir()):
        match = stale.fullmatch(entry.name)
        if match is None or entry.is_symlink() or not entry.is_dir():
            continue
        if match[1] == "old" and not os.path.lexists(path) and (entry / path.name).is_dir():
            os.replace(entry / path.name, path)
        shutil.rmtree(entry, ignore_errors=True)


@contextlib.contextmanager
def folder_lock(path: Path):
    """Hold the advisory lock of folder ``path`` (``fcntl.flock`` on ``.<name>.lock`` beside it) for the block.

    Raises :class:`~mamba_bio_audio.folder_kinds.FolderInUse` at once when another process holds it. Re-entrant
    within a process (a command may take it before its work and :func:`atomic_dir` again around the swap); the
    first acquisition removes stale temporaries beside ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = path.with_name(f".{path.name}.lock")
    key = os.path.realpath(lock)
    if key in _HELD:
        _HELD[key][1] += 1
        try:
            yield
        finally:
            _HELD[key][1] -= 1
        return
    fd = _take(lock, path)
    _HELD[key] = [fd, 1]
    try:
        _remove_stale(path)
        yield
    finally:
        del _HELD[key]
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock)  # while still holding it: a process that opened this file before retries (_take)
        os.close(fd)


def _take(lock: Path, path: Path) -> int:
    """An open descriptor of ``lock`` with the exclusive flock held, the file still being ``lock``."""
    for _ in range(_TRIES):
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise FolderInUse(f"{path}: in use: another process is writing it (it holds {lock}); wait until it "
                              f"has finished and run again (nothing was changed)") from None
        try:
            same = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:  # the previous holder removed it on release: take a new one
            same = False
        if same:
            return fd
        os.close(fd)
    raise FolderInUse(f"{path}: in use: its lock {lock} keeps changing hands; run again later")


@contextlib.contextmanager
def atomic_dir(path: Path, *, replaces: FolderKind, inputs: Iterable[str | Path | None] = ()):
    """Yield a temporary folder beside ``path``; on success it replaces ``path``.

    Holds :func:`folder_lock` throughout. An existing ``path`` is replaced only when empty or of the kind
    ``replaces``, and only when none of ``inputs`` lies inside it; otherwise
    :class:`~mamba_bio_audio.folder_kinds.FolderRefused` is raised before anything is written. The swap renames
    the old folder into a ``.old`` folder, the new one into place, then deletes the old one: a crash at any
    point leaves the old or the new folder in place (the next writer puts back an old one cut off mid-swap)."""
    path = Path(path)
    with folder_lock(path):
        check_folder(path, replaces, inputs)
        tmp = _fresh(path, ".tmp", _create_dir)
        try:
            yield tmp
            check_folder(path, replaces, inputs)  # unchanged unless a process that takes no lock wrote it
            if os.path.lexists(path):
                old = _fresh(path, ".old", _create_dir)
                os.replace(path, old / path.name)
                os.replace(tmp, path)
                shutil.rmtree(old)
            else:
                os.replace(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


@contextlib.contextmanager
def scratch_dir(path: Path):
    """A scratch folder ``.<name>.<12 hex>.parts`` beside ``path`` for the block, holding ``path``'s
    :func:`folder_lock` meanwhile; removed afterwards (or, if the process is killed, by the next writer that
    takes the lock)."""
    path = Path(path)
    with folder_lock(path):
        folder = _fresh(path, ".parts", _create_dir)
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def write_text_atomic(path: Path, text: str) -> None:
    with atomic_path(Path(path)) as tmp:
        tmp.write_text(text)
