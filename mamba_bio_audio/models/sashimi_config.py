"""``SashimiConfig``: the hyper-parameters of the SaShiMi U-Net with Mamba blocks, serialised to ``config.json``.

Presets live in ``mamba_bio_audio/configs/model/<name>.yaml`` (``youtubemix``, ``sc09_small``,
``sc09_large``: the paper's audio models). Every value is checked in ``__post_init__``; a bad one raises a
ValueError naming the field.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from mamba_bio_audio.config import ConfigBase, check_ssm_cfg, is_int, is_number, require

__all__ = ["SashimiConfig"]


def _require(ok: bool, name: str, rule: str, value) -> None:
    require(ok, name, rule, value, "SashimiConfig")


@dataclass
class SashimiConfig(ConfigBase):
    """U-Net of ``len(pool)`` pooling stages around a center stage (defaults: the paper's SC09 small model).

    Stage widths are ``d_model · expand**i``; each stage holds ``n_layers`` Mamba blocks on the way down and
    ``n_layers`` on the way up (the center stage ``n_layers`` once). ``pool[i]`` is the down-sampling factor
    entering stage i + 1. ``ssm_cfg`` are the keyword arguments of every Mamba mixer (as in ``MambaConfig``);
    ``vocab_size`` is the number of audio classes (256 for 8-bit mu-law) for the embedding and the head.
    """

    architecture = "sashimi"

    d_model: int = 64
    n_layers: int = 8
    pool: list = field(default_factory=lambda: [4, 4])
    expand: int = 2
    vocab_size: int = 256
    ssm_cfg: dict = field(default_factory=lambda: {"d_state": 16, "d_conv": 4, "expand": 2, "dt_rank": "auto"})
    norm_epsilon: float = 1e-5
    initializer_range: float = 0.02

    def __post_init__(self) -> None:
        for name in ("d_model", "n_layers", "expand", "vocab_size"):
            value = getattr(self, name)
            _require(is_int(value) and value > 0, name, "a positive integer", value)
        _require(isinstance(self.pool, (list, tuple)) and len(self.pool) > 0
                 and all(is_int(p) and p > 0 for p in self.pool),
                 "pool", "a non-empty list of positive integers (one factor per pooling stage)", self.pool)
        self.pool = list(self.pool)
        for name in ("norm_epsilon", "initializer_range"):
            value = getattr(self, name)
            _require(is_number(value) and value > 0, name, "a number > 0", value)
        for width in self.widths:  # one set of rules for the mixer's keyword arguments
            try:
                self.ssm_cfg = check_ssm_cfg(self.ssm_cfg, width, "SashimiConfig")
            except ValueError as err:
                raise ValueError(f"SashimiConfig.ssm_cfg is invalid at stage width {width}: {err}") from err

    @property
    def widths(self) -> list[int]:
        """Widths of the stages, outer first: [d_model, d_model·expand, ..., center]."""
        return [self.d_model * self.expand**i for i in range(len(self.pool) + 1)]

    @property
    def total_pool(self) -> int:
        """Product of the pooling factors: the center stage runs once every ``total_pool`` samples."""
        return math.prod(self.pool)

    @property
    def n_blocks(self) -> int:
        """Mamba blocks in the whole U-Net: 2 · n_layers per pooling stage plus n_layers in the center."""
        return self.n_layers * (2 * len(self.pool) + 1)
