"""How Mamba models read the folders of ``mamba_ssm`` and transformers, and name their keys in errors.

* ``mamba_ssm``'s ``config.json`` fields are a subset of :class:`~mamba_bio_audio.config.MambaConfig`'s
  (attention layers refused by name); its ``pytorch_model.bin`` keys are ours.
* transformers' Mamba (``model_type: "mamba"``: hidden_size, num_hidden_layers, state_size, ...) maps field by
  field (:data:`TRANSFORMERS_FIELDS`); its keys ``backbone.embeddings.*`` are our ``backbone.embedding.*``.
"""
from __future__ import annotations

import re
from pathlib import Path

__all__ = ["MAMBA_PRESENCE_FIELDS", "MAMBA_SHAPE_FIELDS", "MambaFolders", "TRANSFORMERS_FIELDS"]

_MAMBA_SSM_ONLY_FIELDS = ("attn_layer_idx", "attn_cfg")

# transformers MambaConfig field -> (our field, or ssm_cfg key as "ssm_cfg.<key>")
TRANSFORMERS_FIELDS = {
    "hidden_size": "d_model",
    "num_hidden_layers": "n_layer",
    "vocab_size": "vocab_size",
    "state_size": "ssm_cfg.d_state",
    "expand": "ssm_cfg.expand",
    "conv_kernel": "ssm_cfg.d_conv",
    "time_step_rank": "ssm_cfg.dt_rank",
    "time_step_min": "ssm_cfg.dt_min",
    "time_step_max": "ssm_cfg.dt_max",
    "time_step_floor": "ssm_cfg.dt_init_floor",
    "time_step_scale": "ssm_cfg.dt_scale",
    "time_step_init_scheme": "ssm_cfg.dt_init",
    "use_bias": "ssm_cfg.bias",
    "use_conv_bias": "ssm_cfg.conv_bias",
    "layer_norm_epsilon": "norm_epsilon",
    "residual_in_fp32": "residual_in_fp32",
    "tie_word_embeddings": "tie_embeddings",
    "initializer_range": "initializer_range",
}
# transformers fields with no effect on the weights or the forward pass here.
_TRANSFORMERS_IGNORED = {
    "model_type", "architectures", "transformers_version", "torch_dtype", "dtype", "_name_or_path",
    "bos_token_id", "eos_token_id", "pad_token_id", "use_cache", "rescale_prenorm_residual", "use_mambapy",
    "use_associative_scan", "pad_vocab_size_multiple", "n_layer", "rms_norm", "fused_add_norm",
    "intermediate_size", "hidden_act", "output_hidden_states", "output_attentions", "return_dict",
    "tokenizer_class", "id2label", "label2id", "problem_type", "chunk_size_feed_forward", "is_encoder_decoder",
    "is_decoder", "add_cross_attention", "tie_encoder_decoder", "torchscript", "use_return_dict",
}

MAMBA_SHAPE_FIELDS = {  # key suffix -> the config field behind each dimension
    "embedding.weight": ("vocab_size / pad_vocab_size_multiple", "d_model"),
    "lm_head.weight": ("vocab_size / pad_vocab_size_multiple", "d_model"),
    "score.weight": ("num_labels", "d_model"),
    "mixer.in_proj.weight": ("ssm_cfg['expand']", "d_model"),
    "mixer.in_proj.bias": ("ssm_cfg['expand']",),
    "mixer.conv1d.weight": ("ssm_cfg['expand']", "shape", "ssm_cfg['d_conv']"),
    "mixer.conv1d.bias": ("ssm_cfg['expand']",),
    "mixer.x_proj.weight": ("ssm_cfg['dt_rank'] / ssm_cfg['d_state']", "ssm_cfg['expand']"),
    "mixer.dt_proj.weight": ("ssm_cfg['expand']", "ssm_cfg['dt_rank']"),
    "mixer.dt_proj.bias": ("ssm_cfg['expand']",),
    "mixer.out_proj.weight": ("d_model", "ssm_cfg['expand']"),
    "mixer.out_proj.bias": ("d_model",),
    "mixer.A_log": ("ssm_cfg['expand']", "ssm_cfg['d_state']"),
    "mixer.D": ("ssm_cfg['expand']",),
    "mlp.fc1.weight": ("d_intermediate", "d_model"),
    "mlp.fc2.weight": ("d_model", "d_intermediate"),
}
MAMBA_PRESENCE_FIELDS = {  # part of a key -> the config field that decides whether the key exists
    "in_proj.bias": "ssm_cfg['bias']", "out_proj.bias": "ssm_cfg['bias']", "conv1d.bias": "ssm_cfg['conv_bias']",
    "norm.bias": "rms_norm", "norm_f.bias": "rms_norm", "norm2.bias": "rms_norm", "norm2.weight": "d_intermediate",
    "fc1.weight": "d_intermediate", "fc2.weight": "d_intermediate", "fc1.bias": "d_intermediate",
    "fc2.bias": "d_intermediate",
}


def _config_from_transformers(raw: dict) -> dict:
    if raw.get("model_type") != "mamba":
        raise ValueError("config field model_type must be 'mamba' (transformers' Mamba-1); "
                         f"got {raw.get('model_type')!r}")
    unknown = sorted(set(raw) - set(TRANSFORMERS_FIELDS) - _TRANSFORMERS_IGNORED)
    if unknown:
        raise ValueError(f"unknown transformers Mamba config field(s) {unknown}")
    if raw.get("hidden_act", "silu") not in ("silu", "swish"):
        raise ValueError(f"config field hidden_act must be 'silu'; got {raw['hidden_act']!r}")
    hidden, expand = raw.get("hidden_size", 768), raw.get("expand", 2)
    if "intermediate_size" in raw and raw["intermediate_size"] != int(expand * hidden):
        raise ValueError(f"config field intermediate_size={raw['intermediate_size']} must equal expand * hidden_size "
                         f"= {int(expand * hidden)}")
    # transformers does not pad the vocabulary: its vocab_size already counts the embedding rows.
    values: dict = {"ssm_cfg": {}, "pad_vocab_size_multiple": 1, "rms_norm": True, "fused_add_norm": True}
    for name, target in TRANSFORMERS_FIELDS.items():
        if name in raw:
            if target.startswith("ssm_cfg."):
                values["ssm_cfg"][target[len("ssm_cfg."):]] = raw[name]
            else:
                values[target] = raw[name]
    return values


class MambaFolders:
    """Mixin of the Mamba model classes (before :class:`~mamba_bio_audio.models.base.PreTrainedModel` in the
    bases): folders of ours, ``mamba_ssm``'s and transformers' layouts."""

    _shape_fields = MAMBA_SHAPE_FIELDS
    _presence_fields = MAMBA_PRESENCE_FIELDS

    @classmethod
    def folder_config(cls, folder: Path, raw: dict, **options) -> tuple[dict, str]:
        """(config fields, layout "transformers" or "ours") of a folder's ``config.json`` contents."""
        if "model_type" in raw:
            return _config_from_transformers(raw), "transformers"
        values = dict(raw)
        for name in _MAMBA_SSM_ONLY_FIELDS:
            value = values.pop(name, None)
            if value:
                raise ValueError(f"config field {name}={value!r}: attention layers are not supported "
                                 "(Mamba-only models)")
        values, _ = super().folder_config(folder, values, **options)
        return values, "ours"

    def convert_state_dict(self, state_dict: dict, context) -> dict:
        if context == "transformers":
            return {re.sub(r"^backbone\.embeddings\.", "backbone.embedding.", k): v for k, v in state_dict.items()}
        return state_dict
