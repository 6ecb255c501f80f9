"""Model configs serialised to ``config.json``: :class:`ConfigBase` (serialisation, presets, earlier spellings),
:class:`BackboneConfig` (the fields every backbone shares and their one validator), ``MambaConfig`` and the
Transformer++ baseline's ``TransformerConfig`` (``CaduceusConfig`` and ``SashimiConfig`` are beside their models
in :mod:`mamba_bio_audio.models`), and :func:`check_ssm_cfg`, the one set of rules for a mixer's settings.

Every config class declares its ``architecture`` ("mamba", "transformer", "caduceus", "sashimi"); the one
registry of architectures and model classes is :mod:`mamba_bio_audio.models.factory`. ``MambaConfig`` field
names follow ``mamba_ssm.models.config_mamba.MambaConfig`` (so upstream ``config.json`` files load), plus the
fields the classification head and the loss need (``num_labels``, ``pooling``, ``pad_token_id``),
``initializer_range`` and the training-memory switches (``chunk_size``, ``tbptt``, ``checkpoint_blocks``).
Every value is checked in ``__post_init__``; a bad one raises a ValueError naming the field.
"""
from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


__all__ = ["BackboneConfig", "ConfigBase", "MambaConfig", "POOLINGS", "SSM_CFG_KEYS",
           "TransformerConfig", "check_ssm_cfg", "is_int", "is_number", "preset_names", "read_preset", "require"]

POOLINGS = ("last", "mean", "first")


# Keyword arguments of modules.mamba.Mamba that may appear in ssm_cfg, plus upstream's layer selector.
SSM_CFG_KEYS = (
    "d_state", "d_conv", "expand", "dt_rank", "dt_min", "dt_max", "dt_init", "dt_scale", "dt_init_floor",
    "conv_bias", "bias", "use_fast_path", "layer",
    "use_conv", "selective_dt", "selective_B", "selective_C", "A_init",  # ablation switches (modules/ssm_ablation.py)
)


def is_int(value) -> bool:
    """An int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value) -> bool:
    """A finite int or float that is not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def require(ok: bool, name: str, rule: str, value, owner: str) -> None:
    """ValueError ``<owner>.<name> must be <rule>; got <value>`` unless ``ok``."""
    if not ok:
        raise ValueError(f"{owner}.{name} must be {rule}; got {value!r}")


def check_ssm_cfg(ssm_cfg, d_model: int, owner: str) -> dict:
    """The mixer settings ``ssm_cfg`` (a mapping) as a dict, checked: ``layer`` names a registered mixer
    (:data:`mamba_bio_audio.models.factory.MIXERS`, default "Mamba1"); for Mamba-1 every key and value follows
    :data:`SSM_CFG_KEYS`, for another mixer every key must be a keyword argument of its class. A bad one raises
    ValueError naming ``<owner>.ssm_cfg[key]``."""
    require(isinstance(ssm_cfg, Mapping), "ssm_cfg", "a mapping", ssm_cfg, owner)
    cfg = dict(ssm_cfg)
    layer = cfg.get("layer", "Mamba1")
    if layer != "Mamba1":
        return _check_other_mixer(cfg, layer, owner)
    unknown = sorted(set(cfg) - set(SSM_CFG_KEYS))
    if unknown:
        raise ValueError(f"{owner}.ssm_cfg has unknown key(s) {unknown}; known keys: {', '.join(SSM_CFG_KEYS)}")

    def check(key, ok, rule):
        if key in cfg:
            require(ok(cfg[key]), f"ssm_cfg[{key!r}]", rule, cfg[key], owner)

    check("d_state", lambda v: is_int(v) and v > 0, "a positive integer")
    check("d_conv", lambda v: is_int(v) and 2 <= v <= 4, "2, 3 or 4 (the causal conv kernels' widths)")
    check("expand", lambda v: is_number(v) and v > 0 and float(v * d_model).is_integer(),
          f"a number > 0 with expand * d_model ({d_model}) an integer")
    check("dt_rank", lambda v: v == "auto" or (is_int(v) and v > 0), "'auto' or a positive integer")
    for key in ("dt_min", "dt_max", "dt_scale", "dt_init_floor"):
        check(key, lambda v: is_number(v) and v > 0, "a number > 0")
    dt_min, dt_max = cfg.get("dt_min", 0.001), cfg.get("dt_max", 0.1)
    require(dt_min <= dt_max, "ssm_cfg['dt_max']", f">= dt_min ({dt_min})", dt_max, owner)
    check("dt_init", lambda v: v in ("random", "constant"), "'random' or 'constant'")
    for key in ("conv_bias", "bias", "use_fast_path", "use_conv", "selective_dt", "selective_B", "selective_C"):
        check(key, lambda v: isinstance(v, bool), "true or false")
    check("A_init", lambda v: v in ("s4d_real", "s4d_lin"), "'s4d_real' or 's4d_lin'")
    return cfg


def _check_other_mixer(cfg: dict, layer, owner: str) -> dict:
    import inspect

    from mamba_bio_audio.models.mixer_model import MIXERS

    if layer not in MIXERS:
        raise ValueError(f"{owner}.ssm_cfg['layer'] must name a registered mixer ({', '.join(MIXERS)}; Mamba-2/3 "
                         f"layers are not implemented); got {layer!r}")
    accepted = inspect.signature(MIXERS[layer]).parameters
    unknown = sorted(set(cfg) - {"layer"} - set(accepted))
    if unknown:
        raise ValueError(f"{owner}.ssm_cfg has key(s) {unknown} that the {layer} mixer does not take; it takes "
                         f"{', '.join(name for name in accepted if name not in ('d_model', 'layer_idx'))}")
    return cfg


class ConfigBase:
    """Serialisation and presets shared by every model config dataclass.

    Subclasses set the class constants ``architecture`` (the value ``config.json`` and preset YAMLs carry)
    and ``preset_folder`` (``mamba_bio_audio/configs/<preset_folder>/<name>.yaml``)."""

    architecture: str = ""
    preset_folder: str = "model"
    _field_hints: dict[str, str] = {}  # field another config has -> why this one has not
    _old_names: dict[str, str] = {}  # an earlier spelling of a field (still read by from_dict) -> the field

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
        for old, new in cls._old_names.items():
            if old in values:
                value = values.pop(old)
                if new in values and values[new] != value:
                    raise ValueError(f"{cls.__name__}: {old!r} (the earlier spelling of {new!r}) is {value!r} but "
                                     f"{new!r} is {values[new]!r}; give one of them")
                values[new] = value
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
        """Names of the presets of this architecture under ``mamba_bio_audio/configs/<preset_folder>/`` (a preset
        names its ``architecture``; none means Mamba)."""
        return [name for name in preset_names(cls.preset_folder)
                if read_preset(cls.preset_folder, name).get("architecture", "mamba") == cls.architecture]

    @classmethod
    def from_preset(cls, name: str, **overrides):
        """Load ``mamba_bio_audio/configs/<preset_folder>/<name>.yaml`` with ``overrides`` replacing fields, e.g.
        ``MambaConfig.from_preset("dna_1.4m")``, ``SashimiConfig.from_preset("sc09_small", d_model=16)``."""
        names = cls.available_presets()
        if name not in names:
            raise ValueError(f"unknown {cls.architecture} preset {name!r}; available: {', '.join(names)}")
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


@dataclass(kw_only=True)
class BackboneConfig(ConfigBase):
    """Fields every backbone config shares (sizes, vocabulary, residual stream, tied embedding, the
    classification head and the pad id the losses skip) and their one validator. Subclasses add their own
    fields and checks in :meth:`_check`; a bad value raises a ValueError naming ``<Class>.<field>``."""

    d_model: int = 2560
    n_layer: int = 64
    vocab_size: int = 50277
    pad_vocab_size_multiple: int = 8
    residual_in_fp32: bool = True
    tie_embeddings: bool = True
    norm_epsilon: float = 1e-5
    num_labels: int = 2
    pooling: str = "last"
    pad_token_id: int | None = None
    checkpoint_blocks: bool = False

    def __post_init__(self) -> None:
        owner = type(self).__name__
        for name in ("d_model", "n_layer", "vocab_size", "pad_vocab_size_multiple", "num_labels"):
            value = getattr(self, name)
            require(is_int(value) and value > 0, name, "a positive integer", value, owner)
        for name in ("residual_in_fp32", "tie_embeddings", "checkpoint_blocks"):
            require(isinstance(getattr(self, name), bool), name, "true or false", getattr(self, name), owner)
        require(is_number(self.norm_epsilon) and self.norm_epsilon > 0, "norm_epsilon", "a number > 0",
                self.norm_epsilon, owner)
        require(self.pooling in POOLINGS, "pooling", f"one of {', '.join(POOLINGS)}", self.pooling, owner)
        if self.pad_token_id is not None:
            require(is_int(self.pad_token_id) and 0 <= self.pad_token_id < self.padded_vocab_size,
                    "pad_token_id", f"None or an id in [0, {self.padded_vocab_size})", self.pad_token_id, owner)
        self._check()

    def _check(self) -> None:
        """The subclass's own fields."""

    def _require(self, ok: bool, name: str, rule: str, value) -> None:
        require(ok, name, rule, value, type(self).__name__)

    def init_options(self) -> dict:
        """Keyword arguments of :func:`mamba_bio_audio.models.base.init_weights` (besides ``n_layer``)."""
        return {"initializer_range": self.initializer_range}


@dataclass(kw_only=True)  # keywords only: upstream's positional order cannot survive a shared base
class MambaConfig(BackboneConfig):
    """Hyper-parameters of ``MixerModel`` and the models built on it (defaults are ``mamba_ssm``'s).

    ``ssm_cfg`` are the keyword arguments of each block's mixer; ``ssm_cfg["layer"]`` (default "Mamba1") picks the
    mixer class among those registered in :data:`mamba_bio_audio.models.factory.MIXERS`.

    Training-memory switches (not in ``mamba_ssm``):

    * ``chunk_size``: run sequences longer than this in chunks of ``chunk_size`` tokens, passing every layer's
      conv and SSM state from chunk to chunk and recomputing each chunk in backward, so activation memory
      follows the chunk, not the sequence; loss and gradients are those of the whole sequence. A positive
      multiple of ``ops.SCAN_TILE_STEPS`` (64, the GPU scan's longest tile, so every tile of every chunk
      is full), or None (off). See :mod:`mamba_bio_audio.models.chunked`.
    * ``tbptt``: truncated backpropagation through time: states are detached between chunks (gradients stay
      inside a chunk) and, in training, carried from batch to batch of a stream. Needs ``chunk_size``.
    * ``checkpoint_blocks``: recompute each block's activations in backward instead of keeping them.
    """

    architecture = "mamba"  # class constant (not a field): the presets' ``architecture`` value
    _field_hints = {
        name: 'a SaShiMi field: a SaShiMi config.json carries "architecture": "sashimi"'
        for name in ("pool", "n_layers")
    }

    d_intermediate: int = 0
    ssm_cfg: dict = field(default_factory=dict)
    rms_norm: bool = True
    fused_add_norm: bool = True
    initializer_range: float = 0.02
    chunk_size: int | None = None
    tbptt: bool = False

    def _check(self) -> None:
        self._require(is_int(self.d_intermediate) and self.d_intermediate >= 0, "d_intermediate",
                      "an integer >= 0 (0: no MLP)", self.d_intermediate)
        for name in ("rms_norm", "fused_add_norm", "tbptt"):
            self._require(isinstance(getattr(self, name), bool), name, "true or false", getattr(self, name))
        self._require(is_number(self.initializer_range) and self.initializer_range > 0, "initializer_range",
                      "a number > 0", self.initializer_range)
        self.ssm_cfg = check_ssm_cfg(self.ssm_cfg, self.d_model, "MambaConfig")
        self._check_chunking()

    def _check_chunking(self) -> None:
        from mamba_bio_audio.ops import SCAN_TILE_STEPS  # here, not at import: config.py stays torch-free

        size = self.chunk_size
        if size is not None and not (is_int(size) and size > 0 and size % SCAN_TILE_STEPS == 0):
            hint = ""
            if is_int(size) and size > 0:
                below = size // SCAN_TILE_STEPS * SCAN_TILE_STEPS
                hint = f" (nearest: {' or '.join(str(v) for v in (below, below + SCAN_TILE_STEPS) if v > 0)})"
            raise ValueError(f"MambaConfig.chunk_size must be None (no chunking) or a positive multiple of "
                             f"{SCAN_TILE_STEPS}, the scan kernels' tile length (a sequence's last chunk may be "
                             f"shorter); got {size!r}{hint}")
        if self.tbptt and size is None:
            raise ValueError("MambaConfig.tbptt needs MambaConfig.chunk_size, the number of tokens between two "
                             "detachments of the states; got chunk_size=None")
        if self.tbptt and self.pooling != "last":
            raise ValueError(f"MambaConfig.pooling must be 'last' with tbptt: states are detached between chunks, "
                             f"so {self.pooling!r} pooling would not train through the earlier chunks; got "
                             f"pooling={self.pooling!r} (or set tbptt false: exact chunking pools any way)")


@dataclass(kw_only=True)  # keywords only: upstream's positional order cannot survive a shared base
class TransformerConfig(BackboneConfig):
    """Hyper-parameters of the Transformer++ baseline (:mod:`mamba_bio_audio.models.transformer`).

    Pre-norm blocks of causal multi-head attention with rotary position embeddings (RoPE, ``rope_theta``) over
    the whole head dimension, then a SwiGLU MLP of ``d_intermediate`` hidden units; RMSNorm; no biases; tied
    embedding. ``d_model`` must be divisible by ``n_head``. The shared fields mean what they mean in
    :class:`MambaConfig`.
    """

    architecture = "transformer"
    _field_hints = {
        name: ("attention reads every earlier token, so a sequence cannot be split into chunks joined by a "
               "fixed-size state; use checkpoint_blocks to save memory")
        for name in ("chunk_size", "tbptt")
    }

    d_model: int = 768
    n_layer: int = 12
    n_head: int = 12
    d_intermediate: int = 2048
    rope_theta: float = 10000.0
    initializer_range: float = 0.02

    def _check(self) -> None:
        for name in ("n_head", "d_intermediate"):
            value = getattr(self, name)
            self._require(is_int(value) and value > 0, name, "a positive integer", value)
        self._require(self.d_model % self.n_head == 0, "n_head", f"a divisor of d_model ({self.d_model})",
                      self.n_head)
        self._require(is_number(self.rope_theta) and self.rope_theta > 0, "rope_theta", "a number > 0",
                      self.rope_theta)
        self._require(is_number(self.initializer_range) and self.initializer_range > 0, "initializer_range",
                      "a number > 0", self.initializer_range)
