"""benchmarks/versions_ab.py: its children import the package from the folder they are given, and bad arguments are
refused before any child starts."""
import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _script():
    spec = importlib.util.spec_from_file_location("versions_ab", REPO / "benchmarks" / "versions_ab.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_child_refuses_a_package_from_another_folder(tmp_path):
    """The guard against a child that imports this checkout instead of the version it was meant to time (``python
    -c`` puts its working folder first on sys.path): a child given a folder whose package is in fact elsewhere
    fails instead of timing the wrong code."""
    script = _script()
    (tmp_path / "mamba_bio_audio").mkdir()
    (tmp_path / "mamba_bio_audio" / "__init__.py").write_text(
        f"import sys\nsys.path.insert(0, {str(REPO)!r})\nsys.modules.pop('mamba_bio_audio')\n"
        "import mamba_bio_audio\nsys.modules[__name__] = mamba_bio_audio\n")
    with pytest.raises(RuntimeError, match="imported .*mamba_bio_audio"):
        script._child("lm", tmp_path)


@pytest.mark.parametrize("argv, message", [
    (["--old", "{tmp}"], "no mamba_bio_audio package"),
    (["--old", "{repo}", "--rounds", "0"], "--rounds must be positive"),
    (["--old", "{repo}", "--workloads", "lm,video"], "unknown workload 'video'"),
])
def test_bad_arguments_are_refused(tmp_path, capsys, argv, message):
    argv = [a.format(tmp=tmp_path, repo=REPO) for a in argv]
    with pytest.raises(SystemExit):
        _script().main(argv)
    assert message in capsys.readouterr().err
