"""Audio files to a prepared 8-bit audio dataset (docs/design.md "Prepared datasets"; CLI ``prepare-audio``).

Two modes:

``long``   YouTubeMix-like: one record per file (windows are drawn at training time), natural file order
           split 88/6/6 unless lists are given.
``clips``  SC09-like: one fixed-length clip per file, cut to ``clip_seconds`` (the start is kept) and stored
           at its own length when shorter (readers pad it with the ignore index); a label from the folder or
           the file name; Speech Commands' hash split (80/10/10) unless lists are given.

Every file is decoded with soundfile, averaged to mono, resampled with soxr HQ to ``rate`` and tokenised with
the rules of :func:`~mamba_bio_audio.data_prep.formats.audio_encode.encode_audio`, block by block in bounded
memory (:mod:`~mamba_bio_audio.data_prep.datasets.audio_record`: a long record reaches the writer as a temporary
token file in the dataset's temporary folder). Hashing and decoding run on a process pool.
The manifest records the tokenizer, every source with its sha256, the parameters, and per file its split,
record index, label and what happened to it (silent, cut, clipped, skipped). A bad file stops the run with a
ValueError naming it (``skip_bad=True`` logs it, records it as skipped and goes on); the dataset folder is
written atomically, so a failed run leaves no dataset, or the previous one, behind. Preparing the same files
with the same parameters again returns at once unless ``force``.
"""
from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from mamba_bio_audio.data_prep.formats.audio_encode import NORMALIZE, QUANTIZATION
from mamba_bio_audio.data_prep.formats.audio_io import RESAMPLER, AudioInfo, check_rate, probe
from mamba_bio_audio.data_prep.datasets.audio_record import RecordTokens, encode_file
from mamba_bio_audio.data_prep.datasets.audio_sources import (
    SPLITS, find_audio, label_name, natural_key, parse_percent, read_list, split_by_hash,
    split_by_lists, split_by_order,
)
from mamba_bio_audio.data_prep.datasets.parallel import ordered_map
from mamba_bio_audio.data_prep.datasets.prepared import (
    PreparedDataset, PreparedDatasetWriter, check_dataset_folder, file_sha256, is_up_to_date, source_entry,
)
from mamba_bio_audio.tokenizers import MuLawTokenizer

log = logging.getLogger(__name__)

MODES = ("long", "clips")
DEFAULT_SPLIT = {"long": "88,6,6", "clips": "80,10,10"}
# Float files may hold any level; under normalize="none" a float file beyond full scale is an error. Other
# overshoot (the resampler's, a lossy decoder's) is clipped and counted.
FLOAT_SUBTYPES = ("FLOAT", "DOUBLE")
Progress = Callable[[str, int, int], None]  # (phase "hash" | "decode", done, total)


@dataclass
class AudioPrepareResult:
    """``splits``: {name: {"records", "tokens"}}; ``seconds_in``: input audio used; ``skipped``: [(path, reason)]."""

    path: Path
    up_to_date: bool
    splits: dict
    seconds_in: float
    wall_s: float
    skipped: list = field(default_factory=list)


@dataclass(frozen=True)
class _DecodeJob:
    path: str
    info: AudioInfo
    rate: int
    normalize: str
    quantization: str
    clip_samples: int | None
    spill_dir: str  # long records pass through temporary files here (the dataset's temporary folder)


def _probe_job(path: Path) -> dict:
    entry = source_entry(path)
    try:
        return {"source": entry, "info": probe(path)}
    except ValueError as err:
        return {"source": entry, "error": str(err)}


def _decode_job(job: _DecodeJob) -> dict:
    """-> {"record": RecordTokens} or {"error": message naming the file}; memory stays bounded (audio_record.py)."""
    try:
        record = encode_file(job.path, job.rate, job.normalize, job.quantization, info=job.info,
                             clip_samples=job.clip_samples, spill_dir=job.spill_dir)
    except ValueError as err:
        return {"error": str(err)}
    error = None
    if job.normalize == "none" and record.input_peak > 1 and job.info.subtype in FLOAT_SUBTYPES:
        error = (f"{job.path}: samples reach {record.input_peak:.4g}, beyond full scale [-1, 1] "
                 f"(a float file?); use --normalize peak or minmax")
    elif record.size == 0:
        error = f"{job.path}: {job.info.frames} frames at {job.info.rate} Hz give no sample at {job.rate} Hz"
    if error:
        record.discard()
        return {"error": error}
    return {"record": record}


def prepare_audio(
    inputs: list[str | Path],
    out_dir: str | Path,
    *,
    mode: str = "long",
    rate: int = 16000,
    normalize: str = "minmax",
    quantization: str = "mu-law",
    split: str | None = None,
    valid_list: str | Path | None = None,
    test_list: str | Path | None = None,
    clip_seconds: float = 1.0,
    label_from: str = "folder",
    labels: list[str] | None = None,
    skip_bad: bool = False,
    workers: int | None = None,
    force: bool = False,
    extra: dict | None = None,
    progress: Progress | None = None,
) -> AudioPrepareResult:
    """Prepare ``inputs`` (files, folders, globs) into the dataset folder ``out_dir``; see the module docstring.

    ``split`` "train,valid,test" percentages (default 88,6,6 for long, 80,10,10 for clips) or ``valid_list`` /
    ``test_list`` files; ``labels`` fixes the class order and keeps only files with those labels (clips);
    ``extra`` adds top-level manifest fields (e.g. how example audio was made).
    """
    started = time.perf_counter()
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}; got {mode!r}")
    if normalize not in NORMALIZE:
        raise ValueError(f"normalize must be one of {NORMALIZE}; got {normalize!r}")
    if quantization not in QUANTIZATION:
        raise ValueError(f"quantization must be one of {QUANTIZATION}; got {quantization!r}")
    rate = check_rate(rate)
    if split is not None and (valid_list or test_list):
        raise ValueError("give either split percentages or valid/test lists, not both")
    clip_samples = None
    if mode == "clips":
        if not clip_seconds > 0:
            raise ValueError(f"clip_seconds must be positive; got {clip_seconds!r}")
        clip_samples = round(clip_seconds * rate)
    progress = progress or (lambda phase, done, total: None)

    sources, splits, label_names, labels, split_policy = _plan(inputs, mode, split, valid_list, test_list,
                                                               label_from, labels)
    # before probing: a folder that is not a dataset, or one holding an input, is refused at once
    check_dataset_folder(out_dir, [*(s.path for s in sources), *inputs, valid_list, test_list])
    _warn_empty_splits(splits, split_policy, mode)
    probes = []
    for done, result in enumerate(ordered_map(_probe_job, [s.path for s in sources], workers), start=1):
        probes.append(result)
        progress("hash", done, len(sources))
    source_entries = [p["source"] for p in probes]
    parameters = {
        "mode": mode, "rate": rate, "normalize": normalize, "quantization": quantization, "bits": 8,
        "downmix": "mean", "resampler": RESAMPLER, "split": split_policy, "clip_samples": clip_samples,
        "label_from": label_from if mode == "clips" else None, "labels": labels, "skip_bad": skip_bad,
    }
    out_dir = Path(out_dir)
    if not force and is_up_to_date(out_dir, "audio", source_entries, parameters):
        log.info("%s is up to date", out_dir)
        return _result(out_dir, True, started)

    bad = [p["error"] for p in probes if "error" in p]
    if bad and not skip_bad:
        more = f" (and {len(bad) - 1} more bad files)" if len(bad) > 1 else ""
        raise ValueError(bad[0] + more)
    files: list[dict] = []  # filled while writing: the writer keeps this list and writes it into the manifest
    stats = {"seconds_in": 0.0, "silent_records": 0, "clipped_samples": 0, "cut_clips": 0, "skipped": 0}
    audio = {"rate": rate, "mode": mode, "clip_samples": clip_samples, "labels": labels, "stats": stats}
    tokenizer = MuLawTokenizer(bits=8, quantization=quantization, normalize=normalize).config()
    skipped = []
    label_ids = {name: i for i, name in enumerate(labels or [])}
    # the pool is closed (its running jobs finished) before the writer keeps or discards its temporary folder
    with (PreparedDatasetWriter(out_dir, "audio", tokenizer, source_entries, parameters, labelled=mode == "clips",
                                extra={"audio": audio, "files": files, **(extra or {})}) as writer,
          contextlib.closing(ordered_map(_decode_job, [
              _DecodeJob(str(s.path), p["info"], rate, normalize, quantization, clip_samples, str(writer.folder))
              for s, p in zip(sources, probes) if "info" in p], workers)) as decoded):
        split_writers = {name: writer.split(name) for name in SPLITS}
        for done, (source, probed, split_name, label) in enumerate(zip(sources, probes, splits, label_names), 1):
            progress("decode", done - 1, len(sources))
            entry = {"key": source.key, "split": split_name, "label": label}
            result = next(decoded) if "info" in probed else probed
            if "error" in result:
                if not skip_bad:
                    raise ValueError(result["error"])
                log.warning("skipped: %s", result["error"])
                skipped.append((str(source.path), result["error"]))
                stats["skipped"] += 1
                files.append({**entry, "skipped": result["error"]})
                continue
            info: AudioInfo = probed["info"]
            tokens: RecordTokens = result["record"]
            split = split_writers[split_name]
            label_id = label_ids.get(label)
            # a long record comes as a temporary token file: copied in blocks, never mapped whole
            index = split.add(tokens.tokens, label_id) if tokens.path is None else split.add_file(tokens.path, label_id)
            tokens.discard()
            files.append({**entry, "record": index, "rate_in": info.rate, "channels": info.channels,
                          "subtype": info.subtype, "seconds_in": round(info.seconds, 6),
                          "samples": tokens.size, "silent": tokens.silent, "cut": tokens.cut,
                          "clipped": tokens.clipped})
            stats["seconds_in"] += info.seconds
            stats["silent_records"] += tokens.silent
            stats["clipped_samples"] += tokens.clipped
            stats["cut_clips"] += tokens.cut
        progress("decode", len(sources), len(sources))
        if stats["skipped"] == len(sources):
            raise ValueError(f"every input file was bad; nothing to prepare (first: {skipped[0][1]})")
        stats["seconds_in"] = round(stats["seconds_in"], 6)
    return _result(out_dir, False, started, skipped)


def _plan(inputs, mode, split, valid_list, test_list, label_from, labels):
    """-> sources, split name and label name per source, the label list, the split policy for the manifest."""
    sources = find_audio(inputs)
    if valid_list or test_list:
        valid_entries = read_list(valid_list) if valid_list else []
        test_entries = read_list(test_list) if test_list else []
        splits = split_by_lists(sources, valid_entries, test_entries, str(valid_list), str(test_list))
        split_policy = {"lists": {"valid": _list_id(valid_list), "test": _list_id(test_list)}}
    else:
        percent = parse_percent(split or DEFAULT_SPLIT[mode])
        splits = split_by_order(len(sources), percent) if mode == "long" else split_by_hash(sources, percent)
        split_policy = {"percent": list(percent),
                        "by": "natural file order" if mode == "long" else "speech-commands hash"}
    if mode == "long":
        return sources, splits, [None] * len(sources), None, split_policy
    # labels are chosen after the split, so lists are checked against every file (Speech Commands' lists name
    # all 35 words when only the digits are kept)
    names = [label_name(s, label_from) for s in sources]
    if labels is None:
        return sources, splits, names, sorted(set(names), key=natural_key), split_policy
    if len(set(labels)) != len(labels):
        raise ValueError(f"labels must be distinct; got {labels}")
    kept = [i for i, name in enumerate(names) if name in labels]
    if not kept:
        raise ValueError(f"no input file has one of the labels {labels} (labels found: {sorted(set(names))[:20]})")
    if len(kept) < len(sources):
        log.info("%d files have a label outside %s and are left out", len(sources) - len(kept), labels)
    return ([sources[i] for i in kept], [splits[i] for i in kept], [names[i] for i in kept], list(labels),
            split_policy)


def _warn_empty_splits(splits: list[str], split_policy: dict, mode: str) -> None:
    """Warn, naming the split and the fix, when a split gets no file (its evaluation would have no data)."""
    for name in SPLITS:
        if name in splits:
            continue
        if "percent" in split_policy:
            percent = ",".join(str(p) for p in split_policy["percent"])
            fix = (f"--split {percent} by {split_policy['by']} of {len(splits)} files gives it none: give more files "
                   f"or a larger share (e.g. --split 80,10,10)")
            if mode == "long":
                fix += ", or name its files with --valid-list / --test-list"
        else:
            fix = f"no listed file went to it: name its files in --{name}-list"
        log.warning("split %r is empty: %s", name, fix)


def _list_id(path: str | Path | None) -> dict | None:
    return None if path is None else {"name": Path(path).name, "sha256": file_sha256(path)}


def _result(out_dir: Path, up_to_date: bool, started: float, skipped: list | None = None) -> AudioPrepareResult:
    manifest = PreparedDataset(out_dir).manifest
    return AudioPrepareResult(out_dir, up_to_date, manifest["splits"], manifest["audio"]["stats"]["seconds_in"],
                         time.perf_counter() - started, skipped or [])
