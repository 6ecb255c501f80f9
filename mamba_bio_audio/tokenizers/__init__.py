"""Tokenizers for DNA, bytes and audio (stdlib, numpy and torch only).

Three vocabularies, all fast enough for whole genomes / hours of audio (vectorised numpy lookups, no Python
loop per symbol):

:class:`NucleotideTokenizer`
    Character-level DNA with the HyenaDNA / Caduceus ids::

        [CLS] 0  [SEP] 1  [BOS] 2  [MASK] 3  [PAD] 4  [RESERVED] 5  [UNK] 6  A 7  C 8  G 9  T 10  N 11

    ``vocab_size`` is 12; models pad the embedding to 16 (``pad_vocab_size_multiple=8``, see
    :meth:`NucleotideTokenizer.padded_vocab_size`).  ``add_eos`` appends ``[SEP]`` (id 1) as HyenaDNA's
    ``HG38Dataset`` does; ``add_bos`` prepends ``[BOS]`` (id 2).  Input policies:

    * ``case="upper"`` (default): soft-masked (lowercase, repeat) bases are upper-cased; ``case="strict"``:
      a lowercase letter that would otherwise be valid raises :class:`ValueError`.
    * ``iupac="n"`` (default): the IUPAC ambiguity codes ``R Y S W K M B D H V`` become ``N``; ``"unk"``: they
      become ``[UNK]``; ``"error"``: :class:`ValueError`.
    * ``u_to_t=False`` (default): RNA ``U`` is *not* a DNA symbol and goes through the ``unknown`` policy;
      ``u_to_t=True`` reads ``U``/``u`` as ``T``.
    * ``unknown="error"`` (default): any other character (gap ``-``, ``*``, digits, whitespace, newline,
      non-ASCII, ...) raises :class:`ValueError` naming the 0-based position and the character (and the
      ``source`` / ``line`` passed to :meth:`~NucleotideTokenizer.encode`); ``"unk"`` maps it to ``[UNK]``;
      ``"n"`` maps it to ``N``.

    Complement map A<->T, C<->G, N->N, specials (and any id outside the vocabulary) to themselves.
    :meth:`~NucleotideTokenizer.byte_lookup` is the byte -> id table under these policies.

:class:`ByteTokenizer`
    Byte-level text or arbitrary files.  Layout: **byte value b is id b** (0..255), so a ``uint8`` token
    memmap is literally the file's bytes; the specials come after: ``[PAD] 256  [BOS] 257  [EOS] 258``;
    ``vocab_size`` 259 (pad the embedding to 264 with multiple 8).

Mu-law / linear 8-bit audio (SaShiMi's quantisation, ``state-spaces/s4`` ``src/dataloaders/audio.py``)
    :func:`mu_law_encode`, :func:`mu_law_decode`, :func:`linear_encode`, :func:`linear_decode` for numpy arrays
    and torch tensors (same container type out as in), :data:`MU_LAW_START_TOKEN` = 128, and the
    :class:`MuLawTokenizer` bundle (``vocab_size`` 256, ``start_token_id`` 128).
"""
from __future__ import annotations

from mamba_bio_audio.tokenizers.byte import ByteTokenizer
from mamba_bio_audio.tokenizers.factory import tokenizer_from_config
from mamba_bio_audio.tokenizers.mu_law import (
    MU_LAW_START_TOKEN,
    MuLawTokenizer,
    linear_decode,
    linear_encode,
    mu_law_decode,
    mu_law_encode,
)

# DNA_CHARACTERS and IUPAC_AMBIGUITY are not in __all__ but stay importable from here, as before the split
from mamba_bio_audio.tokenizers.nucleotide import (  # noqa: F401
    BASE_IDS,
    DNA_CHARACTERS,
    DNA_SPECIAL_TOKENS,
    DNA_VOCAB,
    IUPAC_AMBIGUITY,
    NucleotideTokenizer,
)

__all__ = [
    "NucleotideTokenizer",
    "ByteTokenizer",
    "MuLawTokenizer",
    "mu_law_encode",
    "mu_law_decode",
    "linear_encode",
    "linear_decode",
    "MU_LAW_START_TOKEN",
    "BASE_IDS",
    "DNA_SPECIAL_TOKENS",
    "DNA_VOCAB",
    "tokenizer_from_config",
]
