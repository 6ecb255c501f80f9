import pytest

from mamba_bio_audio.atomic import atomic_dir, atomic_path, write_text_atomic
from mamba_bio_audio.folder_kinds import layout_kind

LETTERS = layout_kind("a folder of letters", files=("[a-z]",))  # what the folders written below hold


def test_failed_write_keeps_previous_file(tmp_path):
    target = tmp_path / "metrics.json"
    write_text_atomic(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half-writ")
            raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_atomic_dir_replaces_whole_folder(tmp_path):
    target = tmp_path / "model"
    with atomic_dir(target, replaces=LETTERS) as tmp:
        (tmp / "a").write_text("1")
    with pytest.raises(KeyboardInterrupt):
        with atomic_dir(target, replaces=LETTERS) as tmp:
            (tmp / "b").write_text("2")
            raise KeyboardInterrupt
    assert sorted(p.name for p in target.iterdir()) == ["a"]
    with atomic_dir(target, replaces=LETTERS) as tmp:
        (tmp / "c").write_text("3")
    assert sorted(p.name for p in target.iterdir()) == ["c"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


@pytest.fixture
def umask_027(monkeypatch):
    """The process umask set to 0o027, and ``os.umask`` made to raise so that no code under test changes it."""
    import os

    previous = os.umask(0o027)

    def no_umask_change(mask):
        raise AssertionError(f"os.umask({mask:#o}) called: the umask is process-wide")

    monkeypatch.setattr(os, "umask", no_umask_change)
    yield
    monkeypatch.undo()
    os.umask(previous)


def test_atomic_dir_gets_umask_permissions(tmp_path, umask_027):
    with atomic_dir(tmp_path / "ds", replaces=LETTERS) as tmp:
        (tmp / "a").write_text("1")
    assert (tmp_path / "ds").stat().st_mode & 0o777 == 0o750
    with atomic_dir(tmp_path / "ds", replaces=LETTERS) as tmp:
        (tmp / "b").write_text("2")
    assert (tmp_path / "ds").stat().st_mode & 0o777 == 0o750
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_atomic_file_gets_umask_permissions(tmp_path, umask_027):
    write_text_atomic(tmp_path / "x.json", "{}")
    assert (tmp_path / "x.json").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "x.json").read_text() == "{}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.json"]
