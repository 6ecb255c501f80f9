"""shorten_openmp_spin: set before torch loads, libgomp's workers stop spinning sooner (the process's CPU time while
the main thread sleeps after a parallel op is the oracle); the user's own setting and a late call change nothing.
Each case runs in a fresh interpreter, since the setting is read once, when torch loads."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

_PROBE = """
import json, os, resource, sys, time
from mamba_bio_audio import openmp_spin
if sys.argv[1] == "late":
    import torch
outcome = openmp_spin.shorten_openmp_spin() if sys.argv[1] != "default" else None
import torch
torch.set_num_threads(2)
a = torch.randn(768, 768)
spins = []
for _ in range(5):
    a @ a  # a parallel region: then the workers wait for the next one
    before = resource.getrusage(resource.RUSAGE_SELF).ru_utime
    time.sleep(0.05)  # the main thread sleeps: what CPU time the process takes now is the workers' spinning
    spins.append(resource.getrusage(resource.RUSAGE_SELF).ru_utime - before)
print(json.dumps({"outcome": outcome, "env": os.environ.get("GOMP_SPINCOUNT"), "spin_s": sorted(spins)[2]}))
"""


def _environment(**env) -> dict:
    """This process's environment without an OpenMP wait setting, plus ``env``."""
    return {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")} | env


def _probe(mode: str, **env) -> dict:
    out = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True,
                         env=_environment(**env)).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_set_before_torch_loads_the_workers_spin_less():
    default, shortened = _probe("default"), _probe("set")
    assert default["outcome"] is None and default["env"] is None
    assert shortened["outcome"] == "set" and shortened["env"] == "10000"
    if (os.cpu_count() or 1) < 2 or default["spin_s"] < 0.002:
        pytest.skip(f"libgomp's workers do not spin measurably here ({default['spin_s'] * 1e3:.2f} ms by default)")
    assert shortened["spin_s"] < default["spin_s"] / 3, (default, shortened)


def test_the_users_setting_and_a_late_call_are_left_alone():
    assert _probe("set", GOMP_SPINCOUNT="123") | {"spin_s": None} == {"outcome": "user", "env": "123",
                                                                       "spin_s": None}
    assert _probe("set", OMP_WAIT_POLICY="active")["outcome"] == "user"
    late = _probe("late")
    assert late["outcome"] == "late" and late["env"] is None


@pytest.mark.parametrize("bad", [-1, 1.5, True, "10"])
def test_bad_spin_counts_are_refused(bad):
    from mamba_bio_audio.openmp_spin import shorten_openmp_spin
    with pytest.raises(ValueError, match="spin_count"):
        shorten_openmp_spin(bad)


def test_the_command_sets_it_before_a_subcommand_imports_torch():
    code = ("import os, sys\nfrom mamba_bio_audio.pipelines import cli\n"
            "try:\n    cli.main(['bench', 'cpu', '--help'])\nexcept SystemExit:\n    pass\n"
            "print('torch' in sys.modules, os.environ.get('GOMP_SPINCOUNT'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=_environment()).stdout
    assert out.strip().splitlines()[-1] == "True 10000"
