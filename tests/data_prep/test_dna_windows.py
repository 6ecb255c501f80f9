"""Window schemes: counts and positions follow the formulas; items, RC, PAD targets and the N guard."""
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from mamba_bio_audio.data_prep.datasets.dna_layout import load_intervals
from mamba_bio_audio.data_prep.datasets.dna_windows import PAD_ID, DnaWindowDataset
from mamba_bio_audio.data_prep.datasets.prepare_dna import prepare_dna
from mamba_bio_audio.data_prep.datasets.windows import caduceus_windows, fit, mamba_windows
from mamba_bio_audio.tokenizers import NucleotideTokenizer

SEG = 1 << 17  # the paper's segment length and tile_max
STARTS = [0, 150_000, 300_000, 700_000, 1_000_000, 1_600_000, 2_500_000, 2_800_000]  # segment starts on chr1
CHR1 = 2_800_000 + SEG + 5000


@pytest.fixture(scope="module")
def hg_like(tmp_path_factory):
    """chr1 (no N) with 8 segments of 2^17 in a BED, context of 2^20 each side; returns (dataset, tokens of chr1)."""
    tmp = tmp_path_factory.mktemp("hg_like")
    rng = np.random.default_rng(7)
    seq = "".join(rng.choice(np.array(list("ACGT")), CHR1))
    (tmp / "g.fa").write_text(">chr1\n" + "\n".join(seq[i: i + 80] for i in range(0, CHR1, 80)) + "\n")
    (tmp / "s.bed").write_text("".join(f"chr1\t{a}\t{a + SEG}\ttrain\n" for a in STARTS))
    prepare_dna([tmp / "g.fa"], tmp / "ds", bed=tmp / "s.bed", flank=1 << 20)
    return tmp / "ds", NucleotideTokenizer().encode(seq, dtype=np.uint8)


@pytest.mark.parametrize("log_l", [10, 13, 16, 17])
def test_mamba_tiles_match_the_formula(hg_like, log_l):
    path, _ = hg_like
    L = 1 << log_l
    ds = DnaWindowDataset(path, "train", L)
    assert len(ds) == len(STARTS) * SEG // L  # S * 2^17 / L
    starts = np.array([a + k * L for a in STARTS for k in range(SEG // L)])
    np.testing.assert_array_equal(ds.windows[:, 1], starts)  # one record: it starts at base 0 of chr1


@pytest.mark.parametrize("log_l", [18, 20])
def test_mamba_two_anchored_windows_match_the_formula(hg_like, log_l):
    path, _ = hg_like
    L = 1 << log_l
    ds = DnaWindowDataset(path, "train", L)
    assert len(ds) == 2 * len(STARTS)  # 2S
    expected = np.clip(np.array([[a, a + SEG - L] for a in STARTS]).reshape(-1), 0, CHR1 - L)
    np.testing.assert_array_equal(ds.windows[:, 1], expected)
    if L == 1 << 20:  # moved inside the sequence at its ends: segment 0's end window, the last one's start window
        assert ds.windows[1, 1] == 0 and ds.windows[-2, 1] + L == CHR1


@pytest.mark.parametrize("log_l", [14, 20])
def test_caduceus_tiles_match_the_formula(hg_like, log_l):
    path, _ = hg_like
    L = 1 << log_l
    ds = DnaWindowDataset(path, "train", L, scheme="caduceus")
    assert len(ds) == len(STARTS) * (1 << 20) // L  # rows * 2^20 / L
    base = np.minimum(STARTS, CHR1 - (1 << 20))
    np.testing.assert_array_equal(ds.windows[:, 1], [b + k * L for b in base for k in range((1 << 20) // L)])
    with pytest.raises(ValueError, match="must divide"):
        DnaWindowDataset(path, "train", 3000, scheme="caduceus")


def test_scheme_functions_on_short_records():
    intervals = np.array([[0, 2, 12], [1, 0, 5], [1, 5, 30]])
    lengths = np.array([15, 30])
    np.testing.assert_array_equal(mamba_windows(intervals, lengths, 4, tile_max=8),
                                  [[0, 2], [0, 6], [1, 0], [1, 5], [1, 9], [1, 13], [1, 17], [1, 21], [1, 25]])
    np.testing.assert_array_equal(mamba_windows(intervals, lengths, 20, tile_max=8),
                                  [[0, 0], [0, 0], [1, 0], [1, 0], [1, 5], [1, 10]])
    np.testing.assert_array_equal(caduceus_windows(intervals[:1], lengths, 8, span=16), [[0, 0], [0, 7]])
    np.testing.assert_array_equal(fit(np.array([0, 1]), np.array([-3, 28]), lengths, 4), [0, 26])


def test_items_shift_targets_and_pad_past_the_end(hg_like):
    path, chr1 = hg_like
    L = 1 << 10
    ds = DnaWindowDataset(path, "train", L, scheme="uniform", num_windows=50, seed=3)
    for i in range(50):
        rec, start, _ = ds.window(i)
        x, y = ds[i]
        assert x.dtype == y.dtype == torch.long and x.shape == y.shape == (L,)
        np.testing.assert_array_equal(x.numpy(), chr1[start: start + L])
        np.testing.assert_array_equal(y.numpy(), chr1[start + 1: start + L + 1])
    last = DnaWindowDataset(path, "train", 1 << 20)  # the last segment's start window ends at the end of chr1
    x, y = last[len(last) - 2]
    np.testing.assert_array_equal(x.numpy(), chr1[-(1 << 20):])
    assert y[-1] == PAD_ID and np.array_equal(y[:-1].numpy(), chr1[-(1 << 20) + 1:])


def test_reverse_complement(hg_like, tok):
    path, chr1 = hg_like
    plain = DnaWindowDataset(path, "train", 4096)
    flipped = DnaWindowDataset(path, "train", 4096, rc_prob=1.0)
    for i in (0, 5, len(plain) - 1):
        rec, start, _ = plain.window(i)
        raw = plain.window_tokens(rec, start)
        rc = plain.window_tokens(rec, start, rc=True)
        np.testing.assert_array_equal(rc, tok.reverse_complement(raw))
        np.testing.assert_array_equal(tok.reverse_complement(rc), raw)  # the RC of the RC is the window
        x, y = flipped[i]
        np.testing.assert_array_equal(x.numpy(), rc[:-1])
        np.testing.assert_array_equal(y.numpy(), rc[1:])
    half = DnaWindowDataset(path, "train", 4096, rc_prob=0.5)
    flips = [not torch.equal(half[i][0], plain[i][0]) for i in range(200)]
    assert 60 < sum(flips) < 140


@pytest.fixture(scope="module")
def n_rich(tmp_path_factory):
    """Sequences with long N runs (one interval entirely N) and a BED over them."""
    tmp = tmp_path_factory.mktemp("n_rich")
    rng = np.random.default_rng(11)
    seqs = []
    for i, n in enumerate([40_000, 25_000, 9_000]):
        s = rng.choice(np.array(list("ACGT")), n)
        for _ in range(6):
            a = int(rng.integers(n))
            s[a: a + int(rng.integers(500, 6000))] = "N"
        seqs.append((f"c{i}", "".join(s)))
    seqs.append(("gap", "N" * 5000))
    (tmp / "g.fa").write_text("".join(f">{n}\n{s}\n" for n, s in seqs))
    (tmp / "r.bed").write_text("c0\t0\t40000\ttrain\nc1\t1000\t25000\ttrain\nc2\t0\t9000\ttrain\ngap\t0\t5000\ttrain\n")
    prepare_dna([tmp / "g.fa"], tmp / "ds", bed=tmp / "r.bed")
    return tmp / "ds"


def _n_fraction(x):
    bases = x[x != PAD_ID]
    return float((bases == 11).float().mean()) if bases.numel() else 1.0


@pytest.mark.parametrize("scheme, L", [("mamba", 512), ("mamba", 1 << 18), ("caduceus", 2048), ("uniform", 1000)])
def test_no_all_n_window_is_returned(n_rich, scheme, L):
    kwargs = {"mamba": {"tile_max": 4096}, "caduceus": {"span": 8192}, "uniform": {"num_windows": 400}}[scheme]
    ds = DnaWindowDataset(n_rich, "train", L, scheme=scheme, **kwargs)
    assert len(ds) > 0
    fractions = [_n_fraction(ds[i][0]) for i in range(len(ds))]
    assert max(fractions) < 1.0
    if scheme == "mamba" and L == 512:  # the guard did drop windows here
        raw = mamba_windows(load_intervals(ds.split), ds.lengths, L, 4096)
        assert len(ds) < len(raw)


def test_max_n_fraction_and_ignored_n_targets(n_rich):
    strict = DnaWindowDataset(n_rich, "train", 256, max_n_fraction=0.1)
    loose = DnaWindowDataset(n_rich, "train", 256)
    assert 0 < len(strict) < len(loose)
    assert all(_n_fraction(strict[i][0]) <= 0.1 for i in range(len(strict)))
    ignoring = DnaWindowDataset(n_rich, "train", 256, ignore_n_targets=True)
    i = next(i for i in range(len(loose)) if (loose[i][1] == 11).any())
    assert not (ignoring[i][1] == 11).any() and torch.equal(ignoring[i][0], loose[i][0])
    assert torch.equal(ignoring[i][1][loose[i][1] != 11], loose[i][1][loose[i][1] != 11])


def test_uniform_windows_are_seeded(n_rich):
    a = DnaWindowDataset(n_rich, "train", 300, scheme="uniform", num_windows=64, seed=5, rc_prob=0.5)
    b = DnaWindowDataset(n_rich, "train", 300, scheme="uniform", num_windows=64, seed=5, rc_prob=0.5)
    assert all(torch.equal(a[i][0], b[i][0]) for i in range(64))
    b.set_epoch(1)
    assert sum(torch.equal(a[i][0], b[i][0]) for i in range(64)) < 8
    evaluation = DnaWindowDataset(n_rich, "train", 300, scheme="uniform", num_windows=64, seed=5, per_epoch=False)
    first = [evaluation.window(i)[:2] for i in range(64)]
    evaluation.set_epoch(7)
    assert [evaluation.window(i)[:2] for i in range(64)] == first
    loader = DataLoader(a, batch_size=16, num_workers=2)
    batches = torch.cat([x for x, _ in loader])
    assert torch.equal(batches, torch.stack([a[i][0] for i in range(64)]))
