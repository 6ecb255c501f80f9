"""Species-classification datasets (``mamba-bio-audio prepare-species``): kind ``species``, records labelled
with the species index (the order the species were given in; names in the manifest's ``species``).

From per-species genomes (FASTA files), each sequence is one record and the split follows its chromosome
(HyenaDNA's table: valid 1, 3, 12, 13; test 5, 7, 9, 10, 11; train the rest; ``chr`` prefixes and case are
ignored), or, for a sequence given held-out ranges, its region: the ranges are held out and the rest is
``train`` less a margin each side of every range. Windows come from each species' own sequence. Sequences are
streamed: tokenised in parts on disk and appended to the dataset, one part in memory at a time. From a MAF
alignment, the split follows the locus: each block goes where its reference row's
interval lies (held-out ranges in reference coordinates, train elsewhere), for every species at once, so
orthologous sequence never sits in two splits; blocks straddling a range boundary are dropped. Each
species' blocks of a split are joined, in alignment order, into one record; ``<split>.blocks.tsv`` tells
where each block sits in every species' record (``offset:length``, ``-`` when absent).
"""
from __future__ import annotations

import contextlib
import fnmatch
import itertools
import math
from pathlib import Path

import numpy as np

from mamba_bio_audio.data_prep.datasets.dna_layout import SplitSinks
from mamba_bio_audio.data_prep.formats.fasta_stream import check_readable, where
from mamba_bio_audio.data_prep.formats.maf import MafBlock, iter_maf
from mamba_bio_audio.data_prep.datasets.prepare_dna import DnaPrepareResult, ProgressFn, stream_sequences
from mamba_bio_audio.atomic import scratch_dir
from mamba_bio_audio.data_prep.datasets.prepared import (PreparedDatasetWriter, check_dataset_folder, is_up_to_date,
                                                         source_entry)
from mamba_bio_audio.data_prep.datasets.regions import HeldOutPolicy, Region, parse_region
from mamba_bio_audio.tokenizers import NucleotideTokenizer

HYENA_VALID = ("1", "3", "12", "13")
HYENA_TEST = ("5", "7", "9", "10", "11")
N_ID = NucleotideTokenizer().encode("N")[0]


def chromosome_key(name: str) -> str:
    """``chr2A`` / ``Chr2a`` / ``2A`` -> ``2a``: how sequence names are matched against chromosome lists."""
    key = name.lower()
    return key[3:] if key.startswith("chr") else key


def _check_species(names: list[str]) -> None:
    if not names:
        raise ValueError("no species given")
    if len(set(names)) != len(names):
        raise ValueError(f"species names must be unique; got {names}")
    if len(names) > 255:
        raise ValueError("at most 255 species")


@contextlib.contextmanager
def _writing(out: Path, sources: list[dict], parameters: dict, tokenizer, species: list[str], notes: str | None,
             split_by: str, extra: dict | None = None):
    """(writer, sinks, scratch folder) for a species dataset; scratch is removed, the dataset atomic. ``extra``
    (manifest fields) may be filled in while writing: the manifest is written last."""
    extra = {"species": species, "split_by": split_by, **({"notes": notes} if notes else {}), **(extra or {})}
    with (scratch_dir(out) as scratch,  # takes out's lock: one writer at a time
          PreparedDatasetWriter(out, "species", tokenizer.config(), sources, parameters, labelled=True,
                                extra=extra) as writer):
        sinks = SplitSinks(writer, species)
        yield writer, sinks, scratch
        if not sinks:
            raise ValueError("nothing to write: no sequence was selected")
        sinks.close()


def prepare_species_genomes(genomes: dict[str, list[str | Path]], out: str | Path, *,
                            valid_chroms: list[str] = HYENA_VALID, test_chroms: list[str] = HYENA_TEST,
                            held_out: dict[str, dict[str, list[str]]] | None = None, margin: int = 0,
                            window: int | None = None, exclude: list[str] = (), case: str = "upper",
                            iupac: str = "n", unknown: str = "error", workers: int = 0, force: bool = False,
                            notes: str | None = None, progress: ProgressFn | None = None) -> DnaPrepareResult:
    """Species dataset from per-species FASTA files (``{species: [fasta, ...]}``).

    A sequence named in ``held_out`` (``{species: {split: ["NAME" or "NAME:START-END", ...]}}``, 0-based
    half-open, ``END`` optional) is split by region: the ranges go to their splits, the rest to ``train`` less
    ``margin`` bases on each side of every range, so no training window touches a held-out one. Every other
    sequence goes to the split of its chromosome (``valid_chroms``, ``test_chroms``, else ``train``), unless it
    matches an ``exclude`` glob. With ``window``, records shorter than ``window`` are left out (their windows
    would be mostly [PAD]).

    Raises ValueError, leaving nothing behind, when a file holds no sequence, one file is given twice, two
    species names differ only in case, or a species ends up with no bases in a split, only N there, or (with
    ``window``) no record of ``window`` bases in it; each message names the species and its files.
    """
    species = list(genomes)
    _check_species(species)
    folded = {}
    for name in species:
        if name.strip().lower() in folded:
            raise ValueError(f"species {folded[name.strip().lower()]!r} and {name!r} differ only in case or "
                             "spaces; give each species one name (several files of one species share it)")
        folded[name.strip().lower()] = name
    files = [(i, check_readable(p)) for i, name in enumerate(species) for p in genomes[name]]
    if not files:
        raise ValueError("no FASTA file given")
    given: dict[Path, int] = {}
    for label, path in files:
        key = path.resolve()
        if key in given:
            first = species[given[key]]
            what = f"twice for {first}" if first == species[label] else f"for both {first} and {species[label]}"
            raise ValueError(f"{path} is given {what}; a genome belongs to one species, once")
        given[key] = label
    valid, test = {chromosome_key(c) for c in valid_chroms}, {chromosome_key(c) for c in test_chroms}
    if valid & test:
        raise ValueError(f"chromosomes both in valid and test: {sorted(valid & test)}")
    unknown_species = sorted(set(held_out or {}) - set(species))
    if unknown_species:
        raise ValueError(f"held-out ranges for {', '.join(unknown_species)}, which is not among the species "
                         f"{species}")
    if margin < 0:
        raise ValueError(f"margin must be >= 0; got {margin}")
    if window is not None and window < 1:
        raise ValueError(f"window must be >= 1; got {window}")
    policies = {name: HeldOutPolicy(held_out.get(name, {})) for name in species} if held_out else {}
    tokenizer = NucleotideTokenizer(case=case, iupac=iupac, unknown=unknown)
    out = Path(out)
    parameters = {"mode": "genomes", "species": {s: [Path(p).name for p in genomes[s]] for s in species},
                  "valid_chroms": sorted(valid), "test_chroms": sorted(test), "exclude": list(exclude),
                  "held_out": {s: {k: list(v) for k, v in d.items()} for s, d in (held_out or {}).items()},
                  "margin": margin, "window": window, "case": case, "iupac": iupac, "unknown": unknown}
    check_dataset_folder(out, [p for _, p in files])  # before hashing: a folder that is not a dataset is refused
    sources = [{**source_entry(p), "role": f"genome:{species[i]}"} for i, p in files]
    if not force and is_up_to_date(out, "species", sources, parameters):
        return DnaPrepareResult(out, True)
    paths = [p for _, p in files]
    split_by = "region" if held_out and not (valid or test) else "chromosome and region" if held_out else "chromosome"
    bases: dict[str, dict] = {name: {} for name in species}  # the manifest's per-species counts, filled below
    with _writing(out, sources, parameters, tokenizer, species, notes, split_by,
                  {"species_bases": bases}) as (_, sinks, scratch):
        tally = _Tally(species, paths, [label for label, _ in files], window)
        seen: dict[tuple[int, str], tuple[int, int]] = {}
        sequences = stream_sequences(paths, tokenizer.config(), scratch, workers, progress)
        with contextlib.closing(sequences), _naming_species(paths, [species[label] for label, _ in files]):
            for seq, tokens in sequences:
                label = files[seq.source][0]
                tally.sequence(seq.source)
                if (label, seq.name) in seen:
                    src, off = seen[(label, seq.name)]
                    raise ValueError(f"duplicate sequence name {seq.name!r} for {species[label]}: "
                                     f"{where(paths[src], off)} and {where(paths[seq.source], seq.header_offset)}")
                seen[(label, seq.name)] = (seq.source, seq.header_offset)
                policy = policies.get(species[label])
                named = policy is not None and seq.name in policy.by_name
                if not named and any(fnmatch.fnmatchcase(seq.name, pattern) for pattern in exclude):
                    continue
                for split, start, end in _route(seq.name, seq.length, policy, valid, test, margin):
                    part = tokens[start:end]
                    if tally.keep(label, split, part):
                        sinks[split].add(part, seq.name, start, end, label=label)
        for name, policy in policies.items():
            missing = policy.missing({n for (label, n) in seen if species[label] == name})
            if missing:
                raise ValueError(f"held-out ranges name {', '.join(missing)}, which the FASTA files of {name} "
                                 f"({_names(tally.files_of(species.index(name)))}) do not hold")
        tally.check(sorted(sinks, key=lambda s: (s != "train", s)))
        bases.update(tally.summary())
    return DnaPrepareResult(out, False)


@contextlib.contextmanager
def _naming_species(paths: list[Path], owners: list[str]):
    """Add the species to a ValueError that names one of its files (a FASTA reader's error knows only the file)."""
    try:
        yield
    except ValueError as err:
        text = str(err)
        owner = next((o for p, o in zip(paths, owners) if str(p) in text), None)
        if owner is None or f"for {owner}" in text or f"({owner})" in text:
            raise
        raise ValueError(f"{text} (a genome of {owner})") from None


def _route(name: str, length: int, policy: HeldOutPolicy | None, valid: set[str], test: set[str],
           margin: int) -> list[tuple[str, int, int]]:
    """(split, start, end) pieces of one sequence: by its held-out ranges when it has some (training pieces
    trimmed by ``margin`` where they meet a held-out range), else by its chromosome."""
    if policy is None or name not in policy.by_name:
        key = chromosome_key(name)
        return [("valid" if key in valid else "test" if key in test else "train", 0, length)]
    records = policy.route(name, length)
    pieces = []
    for i, rec in enumerate(records):
        start, end = rec.start, rec.end
        if rec.split == "train":
            if i > 0 and records[i - 1].end == start:
                start += margin
            if i + 1 < len(records) and records[i + 1].start == end:
                end -= margin
        if end > start:
            pieces.append((rec.split, start, end))
    return pieces


def _names(paths: list[Path]) -> str:
    return ", ".join(str(p) for p in paths)


class _Tally:
    """What each species' files gave: sequences per file, and per split the records, bases, non-N bases and
    records left out as shorter than ``window``; :meth:`check` turns an empty or unusable species into an error
    naming its files."""

    def __init__(self, species: list[str], paths: list[Path], labels: list[int], window: int | None):
        self.species, self.paths, self.labels, self.window = species, paths, labels, window
        self.sequences = [0] * len(paths)
        self.counts: dict[tuple[int, str], dict[str, int]] = {}

    def files_of(self, label: int) -> list[Path]:
        return [p for p, lab in zip(self.paths, self.labels) if lab == label]

    def sequence(self, source: int) -> None:
        self.sequences[source] += 1

    def keep(self, label: int, split: str, tokens: np.ndarray) -> bool:
        c = self.counts.setdefault((label, split), {"records": 0, "bases": 0, "non_n": 0, "short": 0, "longest": 0})
        c["longest"] = max(c["longest"], int(tokens.size))
        if self.window is not None and tokens.size < self.window:
            c["short"] += 1
            return False
        c["records"] += 1
        c["bases"] += int(tokens.size)
        c["non_n"] += int(tokens.size - np.count_nonzero(tokens == N_ID))
        return True

    def check(self, splits: list[str]) -> None:
        for source, n in enumerate(self.sequences):
            if n == 0:
                raise ValueError(f"{self.paths[source]} ({self.species[self.labels[source]]}) holds no sequence")
        for label, name in enumerate(self.species):
            files = _names(self.files_of(label))
            for split in splits or ["train"]:
                c = self.counts.get((label, split))
                if c is None:
                    fix = ("everything is held out or excluded" if split == "train" else
                           "name one of its chromosomes for it, or give it a held-out range there")
                    raise ValueError(f"species {name} ({files}) has no sequence in split {split!r}: {fix}")
                if c["records"] == 0:
                    raise ValueError(f"species {name} ({files}): its longest sequence in split {split!r} has "
                                     f"{c['longest']:,} bases, shorter than one window ({self.window:,}); give a "
                                     f"longer genome or a smaller window")
                if c["non_n"] == 0:
                    raise ValueError(f"species {name} ({files}): every base in split {split!r} is N, so no window "
                                     f"there has a base to classify")

    def summary(self) -> dict:
        out: dict[str, dict] = {name: {} for name in self.species}
        for (label, split), c in sorted(self.counts.items(), key=lambda kv: (kv[0][0], kv[0][1] != "train", kv[0][1])):
            out[self.species[label]][split] = {k: c[k] for k in ("records", "bases", "non_n", "short")}
        return out


def _block_split(block_ref: tuple[str, int, int], held: list[tuple[str, Region]]) -> str | None:
    """Split of a block by its reference interval: a held-out split, ``train``, or None (straddles a boundary)."""
    name, a, b = block_ref
    for split, r in held:
        if r.name != name:
            continue
        end = b if r.end is None else r.end
        if r.start <= a and b <= end:
            return split
        if a < end and r.start < b:
            return None
    return "train"


def prepare_species_maf(maf: str | Path, out: str | Path, *, species: dict[str, str], reference: str | None = None,
                        held_out: dict[str, list[str]] | None = None, case: str = "upper", iupac: str = "n",
                        unknown: str = "error", force: bool = False, notes: str | None = None,
                        progress: ProgressFn | None = None) -> DnaPrepareResult:
    """Species dataset from a MAF alignment, split by locus.

    ``species`` maps MAF source prefixes (``Hsap`` of ``Hsap.22``) to species names, in label order;
    ``reference`` (default: the first prefix) is the species whose coordinates place blocks; ``held_out`` maps
    split names to ``NAME:START-END`` ranges on the reference's sequences, e.g.
    ``{"valid": ["22:40000000-45000000"]}``.

    Raises ValueError, leaving nothing behind, for a malformed MAF row (see :func:`~..formats.maf.iter_maf`)
    and when a species has no aligned base, or only N, in a split.
    """
    maf = check_readable(maf, "MAF file")
    names = list(species.values())
    _check_species(names)
    reference = reference or next(iter(species))
    if reference not in species:
        raise ValueError(f"reference {reference!r} is not one of the MAF prefixes {list(species)}")
    held = [(split, parse_region(spec)) for split, specs in (held_out or {}).items() for spec in specs]
    for split, _ in held:
        if not split.isidentifier() or split == "train":
            raise ValueError(f"held-out split name must be an identifier other than 'train'; got {split!r}")
    for (s1, r1), (s2, r2) in itertools.combinations(held, 2):
        if r1.name == r2.name and r1.start < (r2.end or math.inf) and r2.start < (r1.end or math.inf):
            raise ValueError(f"held-out ranges overlap: {r1.name}:{r1.start}- ({s1}) and {r2.name}:{r2.start}- ({s2})")
    tokenizer = NucleotideTokenizer(case=case, iupac=iupac, unknown=unknown)
    out = Path(out)
    parameters = {"mode": "maf", "species": dict(species), "reference": reference,
                  "held_out": {k: list(v) for k, v in (held_out or {}).items()},
                  "case": case, "iupac": iupac, "unknown": unknown}
    check_dataset_folder(out, [maf])  # before hashing: a folder that is not a dataset is refused
    sources = [{**source_entry(maf), "role": "maf"}]
    if not force and is_up_to_date(out, "species", sources, parameters):
        return DnaPrepareResult(out, True)
    prefixes = list(species)
    with _writing(out, sources, parameters, tokenizer, names, notes, "locus") as (_, sinks, scratch):
        joined = _JoinedRecords(scratch, prefixes)
        stats = {"blocks": 0, "without_reference": 0, "straddling": 0}
        total = maf.stat().st_size
        for block in iter_maf(maf, (lambda n: progress(n, total)) if progress else None):
            stats["blocks"] += 1
            rows = {}
            for row in block.rows:
                rows.setdefault(row.species, row)
            ref = rows.get(reference)
            if ref is None:
                stats["without_reference"] += 1
                continue
            split = _block_split((ref.sequence_name, *ref.forward_interval()), held)
            if split is None:
                stats["straddling"] += 1
                continue
            joined.add(split, block, ref, rows, tokenizer, maf)
        joined.check(names, maf)
        joined.write(sinks, names, stats)
    return DnaPrepareResult(out, False)


class _JoinedRecords:
    """Per (split, species) token files of joined blocks, and the block table of each split."""

    def __init__(self, folder: Path, prefixes: list[str]):
        self.folder, self.prefixes = folder, prefixes
        self.files: dict[tuple[str, str], object] = {}
        self.sizes: dict[tuple[str, str], int] = {}
        self.non_n: dict[tuple[str, str], int] = {}
        self.tables: dict[str, list[str]] = {}

    def add(self, split: str, block: MafBlock, ref, rows: dict, tokenizer, maf: Path) -> None:
        a, b = ref.forward_interval()
        cells = [str(block.number), ref.sequence_name, str(a), str(b)]
        for prefix in self.prefixes:
            row = rows.get(prefix)
            if row is None:
                cells.append("-")
                continue
            try:
                tokens = tokenizer.encode(row.bases(), dtype=np.uint8)
            except ValueError as err:
                raise ValueError(f"{maf}, line {row.line}: {err}") from None
            key = (split, prefix)
            if key not in self.files:
                self.files[key] = open(self.folder / f"{split}.{prefix}.u8", "wb")
                self.sizes[key] = 0
            self.files[key].write(memoryview(tokens))
            cells.append(f"{self.sizes[key]}:{tokens.size}")
            self.sizes[key] += tokens.size
            self.non_n[key] = self.non_n.get(key, 0) + int(tokens.size - np.count_nonzero(tokens == N_ID))
        self.tables.setdefault(split, []).append("\t".join(cells))

    def check(self, names: list[str], maf: Path) -> None:
        """Raise ValueError when a species has no base, or only N, in a split (as prepare_species_genomes does):
        a classifier evaluated on a split that lacks a class, or trained without it, measures nothing."""
        for fh in self.files.values():
            fh.close()
        for split in sorted(self.tables, key=lambda s: (s != "train", s)):
            for prefix, name in zip(self.prefixes, names):
                if not self.sizes.get((split, prefix)):
                    raise ValueError(f"species {name} (MAF prefix {prefix}) has no aligned bases in split {split!r} "
                                     f"of {maf}: its rows are missing from every block placed there; give a "
                                     f"held-out range where it is aligned, or leave the species out")
                if not self.non_n.get((split, prefix)):
                    raise ValueError(f"species {name} (MAF prefix {prefix}) in {maf}: every aligned base in split "
                                     f"{split!r} is N, so no window there has a base to classify")

    def write(self, sinks: SplitSinks, names: list[str], stats: dict) -> None:
        for fh in self.files.values():
            fh.close()
        for split in sorted(self.tables, key=lambda s: (s != "train", s)):
            for label, prefix in enumerate(self.prefixes):
                path = self.folder / f"{split}.{prefix}.u8"
                size = self.sizes[(split, prefix)]
                tokens = np.memmap(path, dtype=np.uint8, mode="r") if size else np.zeros(0, np.uint8)
                blocks = len(self.tables[split])
                name = f"{names[label]}:{split} ({blocks} blocks joined)"
                sinks[split].add(tokens, name, 0, tokens.size, label=label)
            header = "\t".join(["block", "ref_name", "ref_start", "ref_end"] + names)
            (sinks.writer.folder / f"{split}.blocks.tsv").write_text("\n".join([header] + self.tables[split]) + "\n")
        (sinks.writer.folder / "maf_stats.tsv").write_text("".join(f"{k}\t{v}\n" for k, v in stats.items()))
