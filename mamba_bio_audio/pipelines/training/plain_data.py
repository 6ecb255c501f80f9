"""Plain data for Lightning checkpoints: what ``torch.load(weights_only=True)`` reads with no allow-list.

The entries our tasks add to a checkpoint (``net_spec``, ``hyper_parameters``) go through :func:`plain_data`,
so a checkpoint never holds an object whose class the loader would have to import.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePath

import numpy as np
import torch

__all__ = ["plain_data"]


def plain_data(value, where: str):
    """``value`` as plain data: Mappings (OmegaConf's included) become dicts, lists stay lists and tuples
    tuples, paths become strings, numpy scalars Python numbers; tensors, str, bytes, int, float, bool and None
    stay. Any other object (an enum, a ``functools.partial``, a class) raises TypeError naming ``where`` and
    the key path."""
    from omegaconf import Container, OmegaConf

    if value is None or type(value) in (bool, int, float, str, bytes) or isinstance(value, torch.Tensor):
        return value
    if isinstance(value, Container):
        value = OmegaConf.to_container(value, resolve=True)
    if isinstance(value, Mapping):
        return {plain_data(k, f"{where} key {k!r}"): plain_data(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, (list, tuple)):  # named tuples become plain tuples
        items = [plain_data(v, f"{where}[{i}]") for i, v in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{where} holds a {type(value).__module__}.{type(value).__qualname__}: checkpoints hold plain "
                    "data only (torch.load(weights_only=True) would refuse it)")
