"""``mamba-bio-audio bench data-dna``: ``prepare-dna`` speed on plain, gzip and BGZF FASTA, and the window
reader's speed at 1M-token windows.

Input is a synthetic, seeded genome written to a temporary folder: sequences of varied lengths, 60-column
lines, soft-masked (lowercase) stretches over about half the bases and N runs over about 3 %, like hg38.
Each preparation is a whole ``prepare_dna(..., force=True)`` call: sha256 of the source, tokenisation and
the atomic dataset write. Speeds are MB (10^6 bytes) of uncompressed FASTA text per second of wall time, and
for compressed inputs also MB of the compressed file. The window reader figure is tokens (1 byte each) per
second through ``DnaWindowDataset.__getitem__`` in one process, int64 tensors out. The JSON records the load
average before the run: other work on the machine slows every figure.
"""
from __future__ import annotations

import argparse
import gzip
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from Bio import bgzf
from mamba_bio_audio.data_prep.datasets.dna_windows import DnaWindowDataset
from mamba_bio_audio.data_prep.datasets.parallel import default_workers
from mamba_bio_audio.data_prep.datasets.prepared import file_sha256
from mamba_bio_audio.pipelines.reporting.bench_results import start, write_result

TARGETS_MB_S = {"plain": 100.0, "gzip": 40.0, "bgzf": 40.0, "windows": 200.0}
FORMATS = ("plain", "gzip", "bgzf")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size-mb", type=float, default=256.0,
                        help="synthetic genome size in MB (default: %(default)s)")
    parser.add_argument("--formats", default=",".join(FORMATS), help=f"comma-separated subset of {', '.join(FORMATS)}")
    parser.add_argument("--workers", type=int, default=0, help="tokenising processes (default: up to 4 usable cores)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per format (default: %(default)s)")
    parser.add_argument("--seq-len", type=int, default=1 << 20, help="window length for the reader (default: 2^20)")
    parser.add_argument("--windows", type=int, default=200, help="windows per reader timing (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work-dir", type=Path, default=None, help="folder for temporary files (default: system temp)")
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"), help="where the JSON goes")


def synthetic_fasta(path: Path, size: int, seed: int) -> int:
    """Write about ``size`` bytes of FASTA (60 columns, soft-masking, N runs); returns the bytes written."""
    rng = np.random.default_rng(seed)
    alphabet = np.frombuffer(b"ACGTacgt", np.uint8)
    lengths = rng.integers(size // 40, size // 12, 40)
    lengths = lengths[np.cumsum(lengths) * 61 // 60 < size].tolist() or [size * 60 // 61]
    written = 0
    with open(path, "wb") as fh:
        for i, n in enumerate(lengths):
            masked = (np.arange(n, dtype=np.int32) // 50_000 % 2).astype(np.uint8) * 4  # 50 kb upper, 50 kb lower
            bases = alphabet[rng.integers(0, 4, n, dtype=np.uint8) + masked]
            for a in rng.integers(0, n, max(1, n // 2_000_000)):
                bases[a: a + 60_000] = ord("N")
            full = n // 60
            grid = np.full((full, 61), ord("\n"), np.uint8)
            grid[:, :60] = bases[: full * 60].reshape(full, 60)
            body = grid.tobytes() + (bases[full * 60:].tobytes() + b"\n" if n % 60 else b"")
            header = f">chr{i + 1} synthetic\n".encode()
            fh.write(header + body)
            written += len(header) + len(body)
    return written


def _compress(src: Path, dst: Path, kind: str) -> None:
    with open(src, "rb") as fin:
        if kind == "gzip":
            with gzip.open(dst, "wb", compresslevel=6) as fout:
                while chunk := fin.read(1 << 24):
                    fout.write(chunk)
        else:
            with bgzf.BgzfWriter(str(dst), "wb", compresslevel=6) as fout:
                while chunk := fin.read(1 << 24):
                    fout.write(chunk)


# One preparation in a fresh interpreter, so that its peak memory is its own (the import of torch included).
_CHILD = """
import json, resource, sys, time
from pathlib import Path
from mamba_bio_audio.data_prep.datasets.prepare_dna import prepare_dna
started = time.perf_counter()
prepare_dna([Path(sys.argv[1])], Path(sys.argv[2]), workers=int(sys.argv[3]), force=True)
wall = time.perf_counter() - started
usage = {who: resource.getrusage(getattr(resource, who)).ru_maxrss / 1024 for who in ("RUSAGE_SELF", "RUSAGE_CHILDREN")}
print(json.dumps({"wall_s": wall, "rss_mb": usage["RUSAGE_SELF"], "workers_rss_mb": usage["RUSAGE_CHILDREN"]}))
"""


def _timed_prepare(source: Path, out: Path, workers: int) -> dict:
    done = subprocess.run([sys.executable, "-c", _CHILD, str(source), str(out), str(workers)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise ValueError(f"prepare-dna failed in the benchmark: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _median_best(values: list[float]) -> tuple[float, float]:
    return round(statistics.median(values), 1), round(max(values), 1)


def run(args) -> int:
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    if not formats or any(f not in FORMATS for f in formats):
        raise ValueError(f"--formats takes a comma-separated subset of {FORMATS}")
    if not args.size_mb > 0 or args.repeats < 1 or args.windows < 1:
        raise ValueError("--size-mb must be > 0, --repeats and --windows >= 1")
    run_start = start()
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-data-dna-", dir=args.work_dir) as tmp:
        tmp = Path(tmp)
        plain = tmp / "genome.fa"
        text_bytes = synthetic_fasta(plain, int(args.size_mb * 1e6), args.seed)
        for kind in formats:
            source = plain if kind == "plain" else tmp / f"genome.{kind}.fa.gz"
            if kind != "plain":
                _compress(plain, source, kind)
            file_bytes = source.stat().st_size
            started = time.perf_counter()
            file_sha256(source)
            hash_s = time.perf_counter() - started
            runs = [_timed_prepare(source, tmp / f"{kind}.ds", args.workers) for _ in range(args.repeats)]
            walls = [r["wall_s"] for r in runs]
            text_speed = [text_bytes / 1e6 / w for w in walls]
            results.append({
                "input": kind, "fasta_mb": round(text_bytes / 1e6, 1), "file_mb": round(file_bytes / 1e6, 1),
                "wall_s": [round(w, 3) for w in walls], "sha256_s": round(hash_s, 3),
                "fasta_mb_s": _median_best(text_speed),
                "file_mb_s": _median_best([file_bytes / 1e6 / w for w in walls]),
                "target_mb_s": TARGETS_MB_S[kind], "meets_target": statistics.median(text_speed) >= TARGETS_MB_S[kind],
                "peak_rss_mb": {"main": round(max(r["rss_mb"] for r in runs)),
                                "largest_worker": round(max(r["workers_rss_mb"] for r in runs))},
            })
            print(f"prepare-dna {kind:5s} {text_bytes / 1e6:7.1f} MB FASTA ({file_bytes / 1e6:.1f} MB file): "
                  f"median {statistics.median(walls):6.2f} s = {statistics.median(text_speed):6.1f} MB/s of FASTA "
                  f"(best {max(text_speed):.1f}; sha256 alone {hash_s:.2f} s; peak RSS {results[-1]['peak_rss_mb']})",
                  flush=True)
        dataset = tmp / f"{formats[0]}.ds"
        for scheme in ("uniform", "mamba"):
            reader = DnaWindowDataset(dataset, "train", args.seq_len, scheme=scheme, num_windows=args.windows,
                                      seed=args.seed)
            n = min(args.windows, len(reader))
            speeds = []
            for repeat in range(args.repeats):
                reader.set_epoch(repeat)
                started = time.perf_counter()
                for i in range(n):
                    reader[i]
                speeds.append(n * args.seq_len / 1e6 / (time.perf_counter() - started))
            results.append({"input": f"windows-{scheme}", "seq_len": args.seq_len, "windows": n,
                            "tokens_mb_s": _median_best(speeds), "target_mb_s": TARGETS_MB_S["windows"],
                            "meets_target": statistics.median(speeds) >= TARGETS_MB_S["windows"]})
            print(f"windows {scheme:8s} {n} x {args.seq_len} tokens: median {statistics.median(speeds):7.1f} MB/s "
                  f"of tokens (best {max(speeds):.1f})", flush=True)
    report = {
        "parameters": {"usable_cores": default_workers(), "size_mb": args.size_mb,
                       "workers": args.workers or min(4, default_workers()),
                       "repeats": args.repeats, "seed": args.seed, "compresslevel": 6},
        "results": results,
    }
    write_result(args.out_dir, "data_dna", report, started=run_start)
    return 0
