"""The layer contracts, checked on every import statement of the source tree (function-level ones included).

* kernels import nothing of the project outside ``mamba_bio_audio.kernels``;
* only ``mamba_bio_audio/ops.py`` imports the kernels;
* the library (``mamba_bio_audio/``) imports no Lightning, Hydra or OmegaConf, and neither data_prep nor pipelines;
* data_prep imports neither pipelines nor kernels, nor Lightning or Hydra.

The imports are read with :mod:`ast`, so imports inside functions count too; a module's name is its path
under the repository root (every layer is a subpackage of ``mamba_bio_audio/``).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "mamba_bio_audio"
FRAMEWORKS = ("lightning", "pytorch_lightning", "hydra", "omegaconf")


def module_name(path: Path, root: Path = ROOT) -> str:
    """``mamba_bio_audio/kernels/selective_scan/cpu.py`` → ``mamba_bio_audio.kernels.selective_scan.cpu``."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path, module: str) -> list[tuple[int, str]]:
    """(line, imported module) of every import in ``path``; relative imports resolved against ``module``."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found += [(node.lineno, f"{base}.{alias.name}" if alias.name != "*" else base) for alias in node.names]
    return found


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def violations(module: str, imported: str) -> list[str]:
    """The contracts an import of ``imported`` by ``module`` breaks."""
    broken = []
    if _within(module, "mamba_bio_audio.kernels"):
        if _within(imported, "mamba_bio_audio") and not _within(imported, "mamba_bio_audio.kernels"):
            broken.append("kernels import nothing of the project")
    elif _within(imported, "mamba_bio_audio.kernels") and module != "mamba_bio_audio.ops":
        broken.append("only mamba_bio_audio.ops imports the kernels")
    in_data_prep = _within(module, "mamba_bio_audio.data_prep")
    in_library = not in_data_prep and not _within(module, "mamba_bio_audio.pipelines") \
        and not _within(module, "mamba_bio_audio.kernels")
    if (in_library or in_data_prep) and any(_within(imported, f) for f in FRAMEWORKS):
        broken.append("the library and data_prep import no Lightning or Hydra")
    if in_library and (_within(imported, "mamba_bio_audio.data_prep") or _within(imported, "mamba_bio_audio.pipelines")):
        broken.append("the library imports neither data_prep nor pipelines")
    if in_data_prep and _within(imported, "mamba_bio_audio.pipelines"):
        broken.append("data_prep imports no pipelines")
    return broken


def source_files(root: Path = ROOT) -> list[Path]:
    return sorted((root / PACKAGE).rglob("*.py"))


def test_the_tree_keeps_its_layers():
    files = source_files()
    assert ROOT / PACKAGE / "kernels" / "__init__.py" in files and ROOT / PACKAGE / "pipelines" / "cli.py" in files
    broken = [f"{path.relative_to(ROOT)}:{line}: imports {imported}: {rule}"
              for path in files for line, imported in imports(path, module_name(path))
              for rule in violations(module_name(path), imported)]
    assert not broken, "\n".join(broken)


@pytest.mark.parametrize(("folder", "source", "broken"), [
    ("mamba_bio_audio/kernels/new_op", "from mamba_bio_audio.config import MambaConfig", "kernels import nothing"),
    ("mamba_bio_audio/kernels/new_op", "from ...models import lm", "kernels import nothing"),
    ("mamba_bio_audio/models", "from mamba_bio_audio.kernels.selective_scan import reference", "only mamba_bio_audio.ops"),
    ("mamba_bio_audio/models", "def f():\n    import lightning.pytorch as pl", "no Lightning or Hydra"),
    ("mamba_bio_audio", "from mamba_bio_audio.data_prep.formats import fasta", "neither data_prep nor pipelines"),
    ("mamba_bio_audio/data_prep/datasets", "from ..pipelines import cli", None),  # two dots from data_prep.datasets: data_prep.pipelines
    ("mamba_bio_audio/data_prep/datasets", "from ...pipelines.commands import shared", "data_prep imports no pipelines"),
    ("mamba_bio_audio/pipelines/commands", "from mamba_bio_audio.kernels.selective_scan import cpu", "only mamba_bio_audio.ops"),
    ("mamba_bio_audio/pipelines/commands", "import lightning", None),
])
def test_the_checker_sees_a_broken_layer(tmp_path, folder, source, broken):
    """The oracle: hand-written imports whose verdict is known, in a copy of the layout."""
    path = tmp_path / folder / "probe.py"
    path.parent.mkdir(parents=True)
    path.write_text(source + "\n")
    module = module_name(path, tmp_path)
    found = [rule for _, imported in imports(path, module) for rule in violations(module, imported)]
    if broken is None:
        assert not found
    else:
        assert len(found) == 1 and broken in found[0]
