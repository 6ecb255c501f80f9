"""Every ``mamba-bio-audio ...`` command in a fenced block of README.md and docs/*.md still runs, and the docs'
config tables name what the Hydra tree holds.

The rule for a documented command (so that a stale one fails here, and none trains or downloads):

* it is read as the shell would: from ``mamba-bio-audio`` to the end of the line (after a ``&&`` chain too),
  ``\\`` continuations joined, a trailing ``# comment`` dropped, each ``<placeholder>`` replaced by one word;
* a command that composes a Hydra config (its subcommand takes ``--cfg``: ``pretrain``, ``finetune``,
  ``evaluate``, ``sample``, ``compare``) runs in this process through ``pipelines.cli.main`` with ``--cfg``
  added: composition only (experiment, group options, keys and value types checked), exit status 0, nothing
  created; ``--list`` commands run as written;
* any other command (``quickstart``, ``examples``, ``prepare-*``, ``evaluate-audio``, ``bench ...``) is parsed by
  the command's own argument parser and not run: the subcommand, every flag and every choice must exist.
"""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from mamba_bio_audio.pipelines import cli
from mamba_bio_audio.pipelines.commands.hydra_compose import available

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PLACEHOLDER = re.compile(r"<[^<>]*>")


def documented_commands(docs: list[Path] = DOCS) -> list[tuple[str, list[str]]]:
    """(``file:line``, argv after ``mamba-bio-audio``) of every command in a fenced block of ``docs``."""
    found = []
    for path in docs:
        lines, fenced, start, pending = path.read_text().splitlines(), False, 0, ""
        for number, line in enumerate(lines, 1):
            if line.lstrip().startswith("```"):
                fenced, pending = not fenced, ""
                continue
            if not fenced:
                continue
            if not pending:
                at = re.search(r"(?:^|&&\s*|^\$\s*)mamba-bio-audio\s", line.strip())
                if at is None:
                    continue
                start, line = number, line.strip()[at.end() - len("mamba-bio-audio "):]
            text = pending + line.strip()
            if text.endswith("\\"):
                pending = text[:-1] + " "
                continue
            pending = ""
            text = PLACEHOLDER.sub("PLACEHOLDER", text)
            argv = shlex.split(text, comments=True)
            where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
            found.append((f"{where}:{start}", argv[1:]))
    return found


COMMANDS = documented_commands()


def test_the_docs_have_commands():
    assert {argv[0] for _, argv in COMMANDS} >= {"pretrain", "finetune", "sample"}


def test_commands_are_read_as_the_shell_reads_them(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("mamba-bio-audio outside a fence\n"
                   "```bash\n"
                   "cd somewhere && mamba-bio-audio pretrain experiment=dna/hg_small_cpu  # a comment\n"
                   "$ mamba-bio-audio finetune \\\n"
                   "    net.pretrained=<folder> data.seq_len=64\n"
                   "echo mamba-bio-audio is not at the start\n"
                   "```\n"
                   "mamba-bio-audio sample after the fence\n")
    assert documented_commands([doc]) == [
        (f"{doc}:3", ["pretrain", "experiment=dna/hg_small_cpu"]),
        (f"{doc}:4", ["finetune", "net.pretrained=PLACEHOLDER", "data.seq_len=64"])]


def refusal(argv: list[str], capsys) -> str | None:
    """What is wrong with ``mamba-bio-audio <argv>`` under the module docstring's rule; None if nothing."""
    try:
        args = cli.build_parser(argv).parse_args(argv)
    except SystemExit as stop:
        return f"refused by the parser (exit {stop.code}): {capsys.readouterr().err.strip()}"
    if hasattr(args, "cfg"):  # a Hydra command: composition only
        composed = argv if args.cfg or getattr(args, "list", False) else [*argv, "--cfg"]
        if cli.main(composed) != 0:
            return f"{shlex.join(composed)}: {capsys.readouterr().err.strip()}"
    return None


@pytest.mark.parametrize("where, argv", COMMANDS, ids=[where for where, _ in COMMANDS])
def test_documented_command_runs(where, argv, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # whatever a composition names is relative to an empty folder
    problem = refusal(argv, capsys)
    assert problem is None, f"{where}: mamba-bio-audio {shlex.join(argv)}: {problem}"
    assert not any(tmp_path.iterdir()), f"{where}: composing created {sorted(tmp_path.iterdir())}"


@pytest.mark.parametrize("argv, says", [
    (["pretrain", "experiment=dna/hg_small_gpu"], "unknown experiment 'dna/hg_small_gpu'"),
    (["pretrain", "experiment=species/species5_cpu"], "run it with `mamba-bio-audio finetune`"),
    (["finetune", "net.kind=lm"], "net.kind: no such key"),
    (["examples", "dna", "--only", "hg_small", "--fast"], "unrecognized arguments: --fast"),
    (["prepare-dna", "--out", "data/x"], "the following arguments are required"),
    (["bench", "nothing"], "invalid choice: 'nothing'"),
])
def test_a_stale_command_is_refused(argv, says, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    problem = refusal(argv, capsys)
    assert problem is not None and says in problem, problem
    assert not any(tmp_path.iterdir())


# --- config tables --------------------------------------------------------------------------------------------


def _table_rows(path: Path, marker: str) -> list[list[str]]:
    """The body cells of the first table at or after the first line that holds ``marker``."""
    lines = path.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if marker in line)
    rows, started = [], False
    for line in lines[start:]:
        if line.startswith("|"):
            started = True
            if not set(line) <= set("|-: "):
                rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        elif started:
            break
    return rows[1:]


def _names(cell: str) -> set[str]:
    """Names in the backticks of a cell, ``a_{x,y}_b`` expanded to ``a_x_b``, ``a_y_b``."""
    names = set()
    for code in re.findall(r"`([^`]+)`", cell):
        expanded = [code]
        while any("{" in name for name in expanded):
            name = next(n for n in expanded if "{" in n)
            head, options, tail = re.match(r"(.*?)\{([^{}]*)\}(.*)", name).groups()
            expanded.remove(name)
            expanded += [head + option + tail for option in options.split(",")]
        names |= set(expanded)
    return names


def test_pipelines_config_tree_table_names_every_option():
    rows = _table_rows(ROOT / "docs" / "pipelines.md", "## Config tree")
    experiments, family = set(), None
    for group, options, _ in rows:
        if group.startswith("`experiment/"):
            family = group.strip("`").split("/")[1]
        if group.startswith("`experiment/") or (not group and family):
            experiments |= {f"{family}/{name}" for name in _names(options)}
            continue
        family = None
        name = group.strip("`").rstrip("/")
        assert _names(options) == set(available(name)), f"docs/pipelines.md, group {name}/"
    assert experiments == set(available("experiment"))


@pytest.mark.parametrize("doc, heading, folder", [
    ("long_context.md", "| preset | layers", "model"),
    ("audio_model.md", "| preset (", "model"),
])
def test_preset_tables_name_presets_that_exist(doc, heading, folder):
    rows = _table_rows(ROOT / "docs" / doc, heading)
    presets = {row[0].strip("`") for row in rows}
    assert presets and presets <= set(available(folder)), f"docs/{doc}: {sorted(presets - set(available(folder)))}"
