"""Model configs serialised to ``config.json``: :class:`ConfigBase`, ``MambaConfig`` and the Transformer++
baseline's ``TransformerConfig`` (``SashimiConfig`` is in :mod:`mamba_bio_audio.models.sashimi_config`).

Every config class declares its ``architecture`` ("mamba", "transformer", "sashimi"); the one registry of
architectures and model classes is :mod:`mamba_bio_audio.models.factory`. ``MambaConfig`` field names follow
``mamba_ssm.models.config_mamba.MambaConfig`` (so upstream ``config.json`` files load), plus the fields the
classification head and the loss need (``num_labels``, ``pooling``, ``pad_token_id``), ``initializer_range``
and the training-memory switches (``chunk_size``, ``tbptt``, ``checkpoint_blocks``). Every value is checked
in ``__post_init__``; a bad one raises a ValueError naming the field.
"""
from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["CHUNK_MULTIPLE", "ConfigBase", "MambaConfig", "POOLINGS", "SSM_CFG_KEYS", "TransformerConfig",
           "preset_names", "read_preset"]

POOLINGS = ("last", "mean", "first")

# Chunked training splits sequences every chunk_size tokens: a multiple of the GPU scan's tile length (64 steps,
# kernels/selective_scan/triton_kernels.py) keeps every tile of every chunk full. The last chunk of a sequence may be shorter.
CHUNK_MULTIPLE = 64

# Keyword arguments of modules.mamba.Mamba that may appear in ssm_cfg, plus upstream's layer selector.
SSM_CFG_KEYS = (
    "d_state", "d_conv", "expand", "dt_rank", "dt_min", "dt_max", "dt_init", "dt_scale", "dt_init_floor",
    "conv_bias", "bias", "use_fast_path", "layer",
)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _require(ok: bool, name: str, rule: str, value, owner: str = "MambaConfig") -> None:
    if not ok:
        raise ValueError(f"{owner}.{name} must be {rule}; got {value!r}")


def _check_common(config, owner: str) -> None:
    """Checks shared by the Mamba and Transformer configs (sizes, vocabulary, norm, head, pooling, switches)."""
    for name in ("d_model", "n_layer", "vocab_size", "pad_vocab_size_multiple", "num_labels"):
        value = getattr(config, name)
        _require(_is_int(value) and value > 0, name, "a positive integer", value, owner)
    for name in ("residual_in_fp32", "tie_embeddings", "checkpoint_blocks"):
        _require(isinstance(getattr(config, name), bool), name, "true or false", getattr(config, name), owner)
    for name in ("norm_epsilon", "initializer_range"):
        value = getattr(config, name)
        _require(_is_number(value) and value > 0, name, "a number > 0", value, owner)
    _require(config.pooling in POOLINGS, "pooling", f"one of {', '.join(POOLINGS)}", config.pooling, owner)
    if config.pad_token_id is not None:
        _require(_is_int(config.pad_token_id) and 0 <= config.pad_token_id < config.padded_vocab_size,
                 "pad_token_id", f"None or an id in [0, {config.padded_vocab_size})", config.pad_token_id, owner)


class ConfigBase:
    """Serialisation and presets shared by every model config dataclass.

    Subclasses set the class constants ``architecture`` (the value ``config.json`` and preset YAMLs carry)
    and ``preset_folder`` (``mamba_bio_audio/configs/<preset_folder>/<name>.yaml``)."""

    architecture: str = ""
    preset_folder: str = "model"
    _field_hints: dict[str, str] = {}  # field another config has -> why this one has not

    @property
    def padded_vocab_size(self) -> int:
        """vocab_size rounded up to a multiple of pad_vocab_size_multiple (1 when the config has none): the
        embedding and lm_head rows."""
        multiple = getattr(self, "pad_vocab_size_multiple", 1)
        return -(-self.vocab_size // multiple) * multiple

    def to_dict(self) -> dict:
        """``architecture`` and the fields."""
        return {"architecture": self.architecture, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, values: Mapping):
        """Build from a mapping; a key that is not a field raises ValueError naming it, and so does an
        ``architecture`` other than this class's."""
        values = dict(values)
        architecture = values.pop("architecture", cls.architecture)
        if architecture != cls.architecture:
            raise ValueError(f"{cls.__name__} describes {cls.architecture} models; got architecture "
                             f"{architecture!r}: use mamba_bio_audio.models.factory.config_from_dict")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        for name in unknown:
            if name in cls._field_hints:
                raise ValueError(f"{cls.__name__} has no field {name!r}: {cls._field_hints[name]}")
        if unknown:
            raise ValueError(f"unknown {cls.__name__} field(s) {unknown}; known fields: {', '.join(sorted(names))}")
        return cls(**values)

    def to_json_file(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def from_json_file(cls, path: str | Path):
        return cls.from_dict(json.loads(Path(path).read_text()))

    @classmethod
    def available_presets(cls) -> list[str]:
        """Names of the YAML files under ``mamba_bio_audio/configs/<preset_folder>/``."""
        return preset_names(cls.preset_folder)

    @classmethod
    def from_preset(cls, name: str, **overrides):
        """Load ``mamba_bio_audio/configs/<preset_folder>/<name>.yaml`` with ``overrides`` replacing fields, e.g.
        ``MambaConfig.from_preset("dna_1.4m")``, ``SashimiConfig.from_preset("sc09_small", d_model=16)``."""
        return cls.from_dict({**read_preset(cls.preset_folder, name), **overrides})


def preset_names(folder: str) -> list[str]:
    """Names of the YAML presets in ``mamba_bio_audio/configs/<folder>/``."""
    from importlib.resources import files

    path = files("mamba_bio_audio.configs").joinpath(folder)
    return sorted(p.name[: -len(".yaml")] for p in path.iterdir() if p.name.endswith(".yaml"))


def read_preset(folder: str, name: str) -> dict:
    """The fields of ``mamba_bio_audio/configs/<folder>/<name>.yaml``; ValueError listing the presets if unknown."""
    from importlib.resources import files

    import yaml

    resource = files("mamba_bio_audio.configs").joinpath(folder, f"{name}.yaml")
    if not resource.is_file():
        raise ValueError(f"unknown {folder} preset {name!r}; available: {', '.join(preset_names(folder))}")
    return yaml.safe_load(resource.read_text())


@dataclass
class MambaConfig(ConfigBase):
    """Hyper-parameters of ``MixerModel`` and the models built on it (defaults are ``mamba_ssm``'s).

    Training-memory switches (not in ``mamba_ssm``):

    * ``chunk_size``: run sequences longer than this in chunks of ``chunk_size`` tokens, passing every layer's
      conv and SSM state from chunk to chunk and recomputing each chunk in backward, so activation memory
      follows the chunk, not the sequence; loss and gradients are those of the whole sequence. A positive
      multiple of :data:`CHUNK_MULTIPLE`, or None (off). See :mod:`mamba_bio_audio.models.chunked`.
    * ``tbptt``: truncated backpropagation through time: states are detached between chunks (gradients stay
      inside a chunk) and, in training, carried from batch to batch of a stream. Needs ``chunk_size``.
    * ``checkpoint_blocks``: recompute each block's activations in backward instead of keeping them.
    """

    architecture = "mamba"  # class constant (not a field): the presets' ``architecture`` value
    _field_hints = {
        name: 'a SaShiMi field: a SaShiMi config.json carries "architecture": "sashimi"'
        for name in ("pool", "n_layers")
    }

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
    chunk_size: int | None = None
    tbptt: bool = False
    checkpoint_blocks: bool = False

    def __post_init__(self) -> None:
        _check_common(self, "MambaConfig")
        _require(_is_int(self.d_intermediate) and self.d_intermediate >= 0, "d_intermediate",
                 "an integer >= 0 (0: no MLP)", self.d_intermediate)
        for name in ("rms_norm", "fused_add_norm", "tbptt"):
            _require(isinstance(getattr(self, name), bool), name, "true or false", getattr(self, name))
        _require(isinstance(self.ssm_cfg, Mapping), "ssm_cfg", "a mapping", self.ssm_cfg)
        self.ssm_cfg = dict(self.ssm_cfg)
        self._check_ssm_cfg()
        self._check_chunking()

    def _check_chunking(self) -> None:
        size = self.chunk_size
        if size is not None and not (_is_int(size) and size > 0 and size % CHUNK_MULTIPLE == 0):
            hint = ""
            if _is_int(size) and size > 0:
                below = size // CHUNK_MULTIPLE * CHUNK_MULTIPLE
                hint = f" (nearest: {' or '.join(str(v) for v in (below, below + CHUNK_MULTIPLE) if v > 0)})"
            raise ValueError(f"MambaConfig.chunk_size must be None (no chunking) or a positive multiple of "
                             f"{CHUNK_MULTIPLE}, the scan kernels' tile length (a sequence's last chunk may be "
                             f"shorter); got {size!r}{hint}")
        if self.tbptt and size is None:
            raise ValueError("MambaConfig.tbptt needs MambaConfig.chunk_size, the number of tokens between two "
                             "detachments of the states; got chunk_size=None")
        if self.tbptt and self.pooling != "last":
            raise ValueError(f"MambaConfig.pooling must be 'last' with tbptt: states are detached between chunks, "
                             f"so {self.pooling!r} pooling would not train through the earlier chunks; got "
                             f"pooling={self.pooling!r} (or set tbptt false: exact chunking pools any way)")

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


@dataclass
class TransformerConfig(ConfigBase):
    """Hyper-parameters of the Transformer++ baseline (:mod:`mamba_bio_audio.models.transformer`).

    Pre-norm blocks of causal multi-head attention with rotary position embeddings (RoPE, ``rope_theta``) over
    the whole head dimension, then a SwiGLU MLP of ``d_intermediate`` hidden units; RMSNorm; no biases; tied
    embedding. ``d_model`` must be divisible by ``n_head``. The head and training fields mean what they mean
    in :class:`MambaConfig`.
    """

    architecture = "transformer"
    chunk_size = None  # class constants, not fields: attention never runs chunked with state passing
    tbptt = False
    _field_hints = {
        name: ("attention reads every earlier token, so a sequence cannot be split into chunks joined by a "
               "fixed-size state; use checkpoint_blocks to save memory")
        for name in ("chunk_size", "tbptt")
    }

    d_model: int = 768
    n_layer: int = 12
    n_head: int = 12
    d_intermediate: int = 2048
    vocab_size: int = 50277
    pad_vocab_size_multiple: int = 8
    rope_theta: float = 10000.0
    residual_in_fp32: bool = True
    tie_embeddings: bool = True
    norm_epsilon: float = 1e-5
    initializer_range: float = 0.02
    num_labels: int = 2
    pooling: str = "last"
    pad_token_id: int | None = None
    checkpoint_blocks: bool = False

    def __post_init__(self) -> None:
        _check_common(self, "TransformerConfig")
        for name in ("n_head", "d_intermediate"):
            value = getattr(self, name)
            _require(_is_int(value) and value > 0, name, "a positive integer", value, "TransformerConfig")
        _require(self.d_model % self.n_head == 0, "n_head", f"a divisor of d_model ({self.d_model})", self.n_head,
                 "TransformerConfig")
        _require(_is_number(self.rope_theta) and self.rope_theta > 0, "rope_theta", "a number > 0",
                 self.rope_theta, "TransformerConfig")

