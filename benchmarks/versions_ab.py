"""``python benchmarks/versions_ab.py --old DIR``: CPU decoding and training of this checkout against another version
of the package, in alternating child processes, each taking its own code's default path.

``DIR`` holds the other version's ``mamba_bio_audio`` package (e.g. ``git archive f41aaf5 | tar -x -C DIR``, the
commit issue 22 measured, before the fused CPU step and the CPU training work); each child imports the package from
``DIR`` or from this checkout through ``PYTHONPATH`` (first on the path). Workloads, seeded, fp32, the torch threads
of the machine's default:

* ``lm``: greedy decoding of issue 22's LM (4 layers, d_model 256, N 16, vocabulary 12) at batch 1, 1,024 steps
  after a 1-token prompt, tokens/s;
* ``sashimi``: greedy sampling of the SaShiMi CPU twin (``youtubemix`` preset, d_model 64, 1 layer per stage,
  pools 4 and 4) at batch 16 and 64 from the mu-law start token, 512 steps, samples/s in total;
* ``train``: issue 22's training step (the same LM with a vocabulary of 16, batch 2, L 1024: forward, mean cross
  entropy of the next token, backward, AdamW), tokens/s of the median of 12 steps after 3.

With ``--process-settings command`` (the default) each child first makes the process-wide settings its own
package's ``mamba-bio-audio`` command makes before a subcommand (``openmp_spin``, ``process_memory``: those its
package has), as a run of the command would; ``none`` makes none in either child.

Each decoding child times its workload three times after a warm-up and reports the best; ``--rounds`` pairs of
children (old first, then this checkout) run one after the other, and each pair's ratio is printed. Run it on idle
cores: the two processes of a pair are minutes apart at most, but other work on the machine moves either figure.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

CHILD = r'''
import importlib, json, sys, time
from pathlib import Path
import mamba_bio_audio
kind, root, settings = sys.argv[1], Path(sys.argv[2]).resolve(), sys.argv[3]
if not Path(mamba_bio_audio.__file__).resolve().is_relative_to(root):
    sys.exit(f"the child meant for {root} imported {mamba_bio_audio.__file__}")
if settings == "command":  # what this package's command sets before torch loads, where it has the module
    for module, call in (("openmp_spin", "shorten_openmp_spin"), ("process_memory", "keep_freed_memory")):
        try:
            getattr(importlib.import_module(f"mamba_bio_audio.{module}"), call)()
        except ModuleNotFoundError:
            pass
import torch
torch.manual_seed(0)
if kind == "train":
    import statistics
    import torch.nn.functional as F
    from mamba_bio_audio.config import MambaConfig
    from mamba_bio_audio.models.lm import MambaLMHeadModel
    model = MambaLMHeadModel(MambaConfig(d_model=256, n_layer=4, vocab_size=16, ssm_cfg={"d_state": 16})).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    ids = torch.randint(0, 16, (2, 1025), generator=torch.Generator().manual_seed(0))

    def step():
        logits = model(ids[:, :-1]).logits
        loss = F.cross_entropy(logits[..., :16].reshape(-1, 16).float(), ids[:, 1:].reshape(-1))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    for _ in range(3):
        step()
    seconds = []
    for _ in range(12):
        start = time.perf_counter()
        step()
        seconds.append(time.perf_counter() - start)
    print(json.dumps({2: 2 * 1024 / statistics.median(seconds)}))
    sys.exit(0)
if kind == "lm":
    from mamba_bio_audio.config import MambaConfig
    from mamba_bio_audio.models.lm import MambaLMHeadModel
    model = MambaLMHeadModel(MambaConfig(d_model=256, n_layer=4, vocab_size=12, ssm_cfg={"d_state": 16})).eval()
    vocab = model.config.vocab_size

    def rate(batch, steps):
        with torch.no_grad():
            state = model.allocate_inference_cache(batch, steps + 8)
            logits, state = model.prefill(torch.zeros(batch, 1, dtype=torch.long), state)
            token = logits[:, -1, :vocab].argmax(-1)
            start = time.perf_counter()
            for _ in range(steps):
                logits, state = model.step(token, state)
                token = logits[:, :vocab].argmax(-1)
            return steps / (time.perf_counter() - start)
    batches, steps = (1,), 1024
else:
    from mamba_bio_audio.models.sashimi import SashimiLM
    from mamba_bio_audio.models.sashimi_config import SashimiConfig
    from mamba_bio_audio.tokenizers import MU_LAW_START_TOKEN
    model = SashimiLM(SashimiConfig.from_preset("youtubemix", d_model=64, n_layers=1, pool=[4, 4])).eval()

    def rate(batch, steps):
        with torch.no_grad():
            state = model.allocate_inference_cache(batch)
            token = torch.full((batch,), MU_LAW_START_TOKEN, dtype=torch.long)
            start = time.perf_counter()
            for _ in range(steps):
                logits, state = model.step(token, state)
                token = logits.argmax(-1)
            return steps * batch / (time.perf_counter() - start)
    batches, steps = (16, 64), 512
result = {}
for batch in batches:
    rate(batch, 64)
    result[batch] = max(rate(batch, steps) for _ in range(3))
print(json.dumps(result))
'''


WORKLOADS = {"lm": "tokens/s", "sashimi": "samples/s in total", "train": "tokens/s"}


def _child(kind: str, package_root: Path, settings: str = "command") -> dict:
    """{batch: rate} of one child process that imports the package under ``package_root`` (its working folder too:
    ``python -c`` puts the working folder first on sys.path), after the process settings ``settings`` names."""
    env = {**os.environ, "PYTHONPATH": str(package_root)}
    out = subprocess.run([sys.executable, "-c", CHILD, kind, str(package_root), settings], env=env, cwd=package_root,
                         capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"the {kind} child for {package_root} failed: {out.stderr.strip()[-2000:]}")
    return {int(batch): rate for batch, rate in json.loads(out.stdout.strip().splitlines()[-1]).items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", type=Path, required=True, help="folder holding the other version's package")
    parser.add_argument("--rounds", type=int, default=3, help="pairs of processes per workload (default 3)")
    parser.add_argument("--workloads", default="lm,sashimi,train", help="comma-separated: " + ", ".join(WORKLOADS))
    parser.add_argument("--process-settings", choices=("command", "none"), default="command",
                        help="command: each child first makes its own command's process-wide settings (default)")
    args = parser.parse_args(argv)
    if not (args.old / "mamba_bio_audio" / "__init__.py").is_file():
        parser.error(f"--old {args.old}: no mamba_bio_audio package there")
    if args.rounds < 1:
        parser.error(f"--rounds must be positive; got {args.rounds}")
    workloads = args.workloads.split(",")
    for kind in workloads:
        if kind not in WORKLOADS:
            parser.error(f"unknown workload {kind!r} ({', '.join(WORKLOADS)})")
    for kind in workloads:
        for round_ in range(1, args.rounds + 1):
            old, new = _child(kind, args.old, args.process_settings), _child(kind, REPO, args.process_settings)
            for batch in old:
                print(f"{kind} batch {batch:3d} round {round_}: old {old[batch]:9.0f}  new {new[batch]:9.0f} "
                      f"{WORKLOADS[kind]}  new / old {new[batch] / old[batch]:5.2f}x", flush=True)


if __name__ == "__main__":
    main()
