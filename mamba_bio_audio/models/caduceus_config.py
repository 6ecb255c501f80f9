"""``CaduceusConfig``: bidirectional (BiMamba) and reverse-complement-equivariant (RCPS) Mamba models for DNA.

Field names follow ``CaduceusConfig`` of Schiff et al. (2024) (HF ``model_type: "caduceus"``), so the
published ``config.json`` files load (:mod:`mamba_bio_audio.models.caduceus_checkpoint` reads them), plus the
fields of our heads and loss (``num_labels``, ``pooling``, ``pad_token_id``), post-hoc RC conjoining
(``conjoin_train``, ``conjoin_eval``) and the memory switches (``piece_length``, ``checkpoint_blocks``).

* ``bidirectional``: every mixer is a :class:`~mamba_bio_audio.modules.bimamba.BiMamba`: a forward Mamba plus
  one over the reversed sequence, combined by ``bidirectional_strategy`` ("add" or "ew_multiply"), with the
  in/out projections shared when ``bidirectional_weight_tie``. False: the forward Mamba alone (causal).
* ``rcps``: reverse-complement parameter sharing. The residual stream has 2 · d_model channels: the first
  d_model carry the strand read, the last d_model the reverse complement, flipped along the sequence and the
  channels; embedding, blocks, final norm and LM head are RC-equivariant, the classifier pooling RC-invariant.
  Needs ``complement_map`` and an even ``d_model``.
* ``complement_map``: token id -> id of its complement, an involution ({0: 0, ..., 7: 10, 8: 9, 9: 8, 10: 7,
  11: 11} for the DNA ids); the string "dna" stands for the :class:`~mamba_bio_audio.tokenizers.NucleotideTokenizer`
  map. Ids of the padded vocabulary beyond the map are their own complement.
* ``fused_add_norm``: with ``rcps``, True reproduces upstream's fused RCPS block (the add-norm hands each strand's
  residual to the other half, see :mod:`mamba_bio_audio.modules.rcps`), False its unfused wrapper; both are
  exactly RC-equivariant. Without ``rcps`` the two are the same computation.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from mamba_bio_audio.config import BackboneConfig, MambaConfig, check_ssm_cfg, is_int, is_number

__all__ = ["BIDIRECTIONAL_STRATEGIES", "CaduceusConfig", "INITIALIZER_CFG_KEYS", "dna_complement_map"]

BIDIRECTIONAL_STRATEGIES = ("add", "ew_multiply")
INITIALIZER_CFG_KEYS = ("initializer_range", "rescale_prenorm_residual", "n_residuals_per_layer")
_OWNER = "CaduceusConfig"


def dna_complement_map() -> dict[int, int]:
    """The complement map of the DNA ids (A<->T, C<->G, N and the specials to themselves)."""
    from mamba_bio_audio.tokenizers import NucleotideTokenizer

    return NucleotideTokenizer().complement_map


@dataclass(kw_only=True)  # keywords only: upstream's positional order cannot survive a shared base
class CaduceusConfig(BackboneConfig):
    """Hyper-parameters of the Caduceus backbone and its masked-LM and classification heads (defaults are
    upstream's, except ``vocab_size``: the DNA vocabulary of 12 ids, padded to 16). Upstream's
    ``tie_word_embeddings`` is read as ``tie_embeddings``, the one spelling of the backbone configs.

    ``piece_length``: every mixer runs each direction over the sequence in pieces of that many tokens with its
    state passed on (:class:`~mamba_bio_audio.modules.bimamba.BiMamba`), any positive integer, or None (one
    pass). Not ``MambaConfig.chunk_size``: nothing is recomputed in backward. Earlier files' ``chunk_size`` is
    read as ``piece_length``."""

    architecture = "caduceus"
    _old_names = {"tie_word_embeddings": "tie_embeddings", "chunk_size": "piece_length"}

    d_model: int = 2560
    n_layer: int = 64
    vocab_size: int = 12
    pooling: str = "mean"
    pad_token_id: int | None = 4
    ssm_cfg: dict = field(default_factory=dict)
    rms_norm: bool = True
    fused_add_norm: bool = True
    initializer_cfg: dict = field(default_factory=dict)
    bidirectional: bool = True
    bidirectional_strategy: str = "add"
    bidirectional_weight_tie: bool = True
    rcps: bool = False
    complement_map: dict | str | None = None
    conjoin_train: bool = False
    conjoin_eval: bool = False
    piece_length: int | None = None

    def _check(self) -> None:
        for name in ("rms_norm", "fused_add_norm", "bidirectional", "bidirectional_weight_tie", "rcps",
                     "conjoin_train", "conjoin_eval"):
            self._require(isinstance(getattr(self, name), bool), name, "true or false", getattr(self, name))
        self._require(self.bidirectional_strategy in BIDIRECTIONAL_STRATEGIES, "bidirectional_strategy",
                      f"one of {', '.join(BIDIRECTIONAL_STRATEGIES)}", self.bidirectional_strategy)
        self._require(self.piece_length is None or (is_int(self.piece_length) and self.piece_length > 0),
                      "piece_length", "None (one pass) or a positive integer", self.piece_length)
        self._check_initializer_cfg()
        self.ssm_cfg = check_ssm_cfg({} if self.ssm_cfg is None else self.ssm_cfg, self.d_model, _OWNER)
        self._require(self.ssm_cfg.get("layer", "Mamba1") == "Mamba1", "ssm_cfg['layer']",
                      "'Mamba1' (the BiMamba mixer wraps Mamba-1 layers)", self.ssm_cfg.get("layer"))
        self._check_complement_map()
        if self.rcps:
            self._require(self.d_model % 2 == 0, "d_model",
                          "an even integer with rcps (the RC half of the stream mirrors the forward half channel "
                          "by channel)", self.d_model)
            for name in ("conjoin_train", "conjoin_eval"):
                self._require(not getattr(self, name), name,
                              "false with rcps (an RCPS model is RC-equivariant already)", getattr(self, name))

    def init_options(self) -> dict:
        return {"initializer_range": 0.02, **self.initializer_cfg}

    @property
    def hidden_size(self) -> int:
        """Channels of the residual stream: 2 · d_model with ``rcps``, else d_model."""
        return 2 * self.d_model if self.rcps else self.d_model

    @property
    def needs_complement(self) -> bool:
        """Whether the model reverse-complements ids (RCPS or conjoining)."""
        return self.rcps or self.conjoin_train or self.conjoin_eval

    def complement_ids(self) -> list[int]:
        """Complement of every id of the padded vocabulary (ids beyond ``complement_map`` map to themselves)."""
        table = list(range(self.padded_vocab_size))
        for key, value in (self.complement_map or {}).items():
            table[key] = value
        return table

    def mamba_config(self) -> MambaConfig:
        """The causal :class:`~mamba_bio_audio.config.MambaConfig` of the same width, depth and mixer settings."""
        return MambaConfig(d_model=self.d_model, n_layer=self.n_layer, vocab_size=self.vocab_size,
                           ssm_cfg=dict(self.ssm_cfg), rms_norm=self.rms_norm, residual_in_fp32=self.residual_in_fp32,
                           fused_add_norm=self.fused_add_norm, pad_vocab_size_multiple=self.pad_vocab_size_multiple,
                           tie_embeddings=self.tie_embeddings, norm_epsilon=self.norm_epsilon,
                           initializer_range=self.init_options()["initializer_range"],
                           num_labels=self.num_labels, pad_token_id=self.pad_token_id)

    def _check_initializer_cfg(self) -> None:
        if self.initializer_cfg is None:
            self.initializer_cfg = {}
        self._require(isinstance(self.initializer_cfg, Mapping), "initializer_cfg", "a mapping", self.initializer_cfg)
        self.initializer_cfg = dict(self.initializer_cfg)
        unknown = sorted(set(self.initializer_cfg) - set(INITIALIZER_CFG_KEYS))
        if unknown:
            raise ValueError(f"CaduceusConfig.initializer_cfg has unknown key(s) {unknown}; known keys: "
                             f"{', '.join(INITIALIZER_CFG_KEYS)}")
        cfg = self.initializer_cfg
        if "initializer_range" in cfg:
            self._require(is_number(cfg["initializer_range"]) and cfg["initializer_range"] > 0,
                   "initializer_cfg['initializer_range']", "a number > 0", cfg["initializer_range"])
        if "rescale_prenorm_residual" in cfg:
            self._require(isinstance(cfg["rescale_prenorm_residual"], bool),
                          "initializer_cfg['rescale_prenorm_residual']",
                   "true or false", cfg["rescale_prenorm_residual"])
        if "n_residuals_per_layer" in cfg:
            self._require(is_int(cfg["n_residuals_per_layer"]) and cfg["n_residuals_per_layer"] > 0,
                   "initializer_cfg['n_residuals_per_layer']", "a positive integer", cfg["n_residuals_per_layer"])

    def _check_complement_map(self) -> None:
        cmap = self.complement_map
        if cmap == "dna":
            cmap = dna_complement_map()
        if cmap is None:
            if self.needs_complement:
                which = "rcps" if self.rcps else ("conjoin_train" if self.conjoin_train else "conjoin_eval")
                raise ValueError(f"CaduceusConfig.complement_map must map every token id to its complement's id "
                                 f"(or be 'dna') with {which}: the vocabulary has no complement ids; got None")
            return
        self._require(isinstance(cmap, Mapping), "complement_map", "a mapping id -> complement id, 'dna' or None", cmap)
        size = self.padded_vocab_size
        try:
            table = {int(k): int(v) for k, v in cmap.items()}
        except (TypeError, ValueError):
            raise ValueError(f"CaduceusConfig.complement_map must map integer ids to integer ids; got {cmap!r}") \
                from None
        for key, value in sorted(table.items()):
            if not (0 <= key < size and 0 <= value < size):
                raise ValueError(f"CaduceusConfig.complement_map entry {key} -> {value} lies outside the padded "
                                 f"vocabulary [0, {size})")
        missing = [i for i in range(self.vocab_size) if i not in table]
        if missing:
            raise ValueError(f"CaduceusConfig.complement_map must give the complement of every id below vocab_size "
                             f"({self.vocab_size}); missing {missing}")
        for key, value in sorted(table.items()):
            if table.get(value, value) != key:
                raise ValueError(f"CaduceusConfig.complement_map must be an involution (the complement of the "
                                 f"complement is the id itself); {key} -> {value} -> {table.get(value, value)}")
        self.complement_map = table
