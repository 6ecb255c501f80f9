"""``MambaConfig``: the hyper-parameters of a Mamba backbone and its heads, serialised to ``config.json``.

Field names follow ``mamba_ssm.models.config_mamba.MambaConfig`` (so upstream ``config.json`` files load), plus
the fields the classification head and the loss need (``num_labels``, ``pooling``, ``pad_token_id``) and
``initializer_range``. Every value is checked in ``__post_init__``; a bad one raises a ValueError naming the field.
"""
from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["MambaConfig", "POOLINGS", "SSM_CFG_KEYS"]

POOLINGS = ("last", "mean", "first")

# Keyword arguments of modules.mamba.Mamba that may appear in ssm_cfg, plus upstream's layer selector.
SSM_CFG_KEYS = (
    "d_state", "d_conv", "expand", "dt_rank", "dt_min", "dt_max", "dt_init", "dt_scale", "dt_init_floor",
    "conv_bias", "bias", "use_fast_path", "layer",
)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _require(ok: bool, name: str, rule: str, value) -> None:
    if not ok:
        raise ValueError(f"MambaConfig.{name} must be {rule}; got {value!r}")


@dataclass
class MambaConfig:
    """Hyper-parameters of ``MixerModel`` and the models built on it (defaults are ``mamba_ssm``'s)."""

    d_model: int = 2560
    d_intermediate: int = 0
    n_layer: int = 64
    vocab_size: int = 50277
    ssm_cfg: dict = field(default_factory=dict)
    rms_norm: bool = True
    residual_in_fp32: bool = True
    fused_add_norm: bool = True
    pad_vocab_size_multiple: int = 8
    tie_embeddings: bool = True
    norm_epsilon: float = 1e-5
    initializer_range: float = 0.02
    num_labels: int = 2
    pooling: str = "last"
    pad_token_id: int | None = None

    def __post_init__(self) -> None:
        for name in ("d_model", "n_layer", "vocab_size", "pad_vocab_size_multiple", "num_labels"):
            value = getattr(self, name)
            _require(_is_int(value) and value > 0, name, "a positive integer", value)
        _require(_is_int(self.d_intermediate) and self.d_intermediate >= 0, "d_intermediate",
                 "an integer >= 0 (0: no MLP)", self.d_intermediate)
        for name in ("rms_norm", "residual_in_fp32", "fused_add_norm", "tie_embeddings"):
            _require(isinstance(getattr(self, name), bool), name, "true or false", getattr(self, name))
        for name in ("norm_epsilon", "initializer_range"):
            value = getattr(self, name)
            _require(_is_number(value) and value > 0, name, "a number > 0", value)
        _require(self.pooling in POOLINGS, "pooling", f"one of {', '.join(POOLINGS)}", self.pooling)
        if self.pad_token_id is not None:
            _require(_is_int(self.pad_token_id) and 0 <= self.pad_token_id < self.padded_vocab_size,
                     "pad_token_id", f"None or an id in [0, {self.padded_vocab_size})", self.pad_token_id)
        _require(isinstance(self.ssm_cfg, Mapping), "ssm_cfg", "a mapping", self.ssm_cfg)
        self.ssm_cfg = dict(self.ssm_cfg)
        self._check_ssm_cfg()

    def _check_ssm_cfg(self) -> None:
        cfg = self.ssm_cfg
        unknown = sorted(set(cfg) - set(SSM_CFG_KEYS))
        if unknown:
            raise ValueError(f"MambaConfig.ssm_cfg has unknown key(s) {unknown}; known keys: {', '.join(SSM_CFG_KEYS)}")

        def check(key, ok, rule):
            if key in cfg:
                _require(ok(cfg[key]), f"ssm_cfg[{key!r}]", rule, cfg[key])

        check("layer", lambda v: v == "Mamba1", "'Mamba1' (Mamba-2/3 layers are not implemented)")
        check("d_state", lambda v: _is_int(v) and v > 0, "a positive integer")
        check("d_conv", lambda v: _is_int(v) and 2 <= v <= 4, "2, 3 or 4 (the causal conv kernels' widths)")
        check("expand", lambda v: _is_number(v) and v > 0 and float(v * self.d_model).is_integer(),
              f"a number > 0 with expand * d_model ({self.d_model}) an integer")
        check("dt_rank", lambda v: v == "auto" or (_is_int(v) and v > 0), "'auto' or a positive integer")
        for key in ("dt_min", "dt_max", "dt_scale", "dt_init_floor"):
            check(key, lambda v: _is_number(v) and v > 0, "a number > 0")
        dt_min, dt_max = cfg.get("dt_min", 0.001), cfg.get("dt_max", 0.1)
        _require(dt_min <= dt_max, "ssm_cfg['dt_max']", f">= dt_min ({dt_min})", dt_max)
        check("dt_init", lambda v: v in ("random", "constant"), "'random' or 'constant'")
        for key in ("conv_bias", "bias", "use_fast_path"):
            check(key, lambda v: isinstance(v, bool), "true or false")

    @property
    def padded_vocab_size(self) -> int:
        """vocab_size rounded up to a multiple of pad_vocab_size_multiple: the embedding and lm_head rows."""
        multiple = self.pad_vocab_size_multiple
        return -(-self.vocab_size // multiple) * multiple

    # ------------------------------------------------------------------------------------------------------
    # serialisation

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping) -> MambaConfig:
        """Build from a mapping; a key that is not a field raises ValueError naming it."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"unknown MambaConfig field(s) {unknown}; known fields: {', '.join(sorted(names))}")
        return cls(**values)

    def to_json_file(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def from_json_file(cls, path: str | Path) -> MambaConfig:
        return cls.from_dict(json.loads(Path(path).read_text()))

    # ------------------------------------------------------------------------------------------------------
    # presets: mamba_bio_audio/configs/model/<name>.yaml

    @staticmethod
    def available_presets() -> list[str]:
        """Names of the YAML files under ``mamba_bio_audio/configs/model/``."""
        from importlib.resources import files

        folder = files("mamba_bio_audio.configs").joinpath("model")
        return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))

    @classmethod
    def from_preset(cls, name: str) -> MambaConfig:
        """Load ``mamba_bio_audio/configs/model/<name>.yaml``, e.g. ``MambaConfig.from_preset("dna_1.4m")``."""
        from importlib.resources import files

        import yaml

        resource = files("mamba_bio_audio.configs").joinpath("model", f"{name}.yaml")
        if not resource.is_file():
            raise ValueError(f"unknown model preset {name!r}; available: {', '.join(cls.available_presets())}")
        return cls.from_dict(yaml.safe_load(resource.read_text()))
