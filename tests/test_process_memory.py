"""keep_freed_memory: a freed block below the limit comes back from the heap with no page faults (the kernel's
fault counter is the oracle; each run in a fresh interpreter, since the setting is process-wide)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from mamba_bio_audio import process_memory
from mamba_bio_audio.pipelines import cli

BLOCK_MB = 256  # above glibc's largest default mmap threshold (32 MiB): by default mapped afresh each time

_PROBE = f"""
import resource, sys
import numpy as np
from mamba_bio_audio.process_memory import keep_freed_memory
took = keep_freed_memory() if sys.argv[1] == "keep" else None
def faults_of_one_block():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = np.ones({BLOCK_MB} << 18, np.float32)  # written: every page touched
    del block
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
faults_of_one_block()
print(took, faults_of_one_block())
"""


def _second_block_faults(mode: str) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True).stdout
    took, faults = out.split()
    return took, int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_a_freed_block_is_reused_without_page_faults():
    took, kept = _second_block_faults("keep")
    _, default = _second_block_faults("default")
    pages = (BLOCK_MB << 20) // 4096
    if took != "True":
        pytest.skip("this C library has no mallopt (not glibc)")
    assert kept <= pages // 1000, f"{kept} page faults re-allocating a freed {BLOCK_MB} MiB block"
    # the control: glibc's default maps the block afresh and faults it in (in 4 KiB pages or larger folios)
    assert default > 10 * max(kept, 1), (default, kept)


@pytest.mark.parametrize("limit", [0, (1 << 20) - 1, 1 << 31])
def test_limit_outside_a_c_int_or_below_1_mib_is_refused(limit):
    with pytest.raises(ValueError, match="limit_bytes must be between 1 MiB and 2 GiB - 1"):
        process_memory.keep_freed_memory(limit)


@pytest.mark.parametrize("flags, calls", [((), 1), (("--release-memory",), 0)])
def test_the_command_keeps_freed_memory_unless_told_to_release_it(monkeypatch, capsys, flags, calls):
    called = []
    monkeypatch.setattr(cli.process_memory, "keep_freed_memory", lambda: called.append(1) or True)
    assert cli.main([*flags, "pretrain", "experiment=dna/nope"]) == 2  # fails fast, after the setting
    assert len(called) == calls
