"""The project's one way to read a pickle-based PyTorch file (``.ckpt``, ``.bin``, ``.pt``, ``.pth``).

Every such file is read with ``torch.load(weights_only=True)``: tensors and plain data (dict, list, tuple,
str, numbers, None) load, anything else is refused before it is built, so loading a file never runs code
from it. A refused file raises :class:`UnsafeFileError` naming the file, the object torch refused and a
command that converts it to safetensors, to run where the user trusts the file. Nothing here ever retries with
``weights_only=False``.
"""
from __future__ import annotations

import json
import pickle
import re
import shlex
from pathlib import Path

import torch

__all__ = ["UnsafeFileError", "conversion_command", "load_torch_file"]


class UnsafeFileError(ValueError):
    """A PyTorch file holds objects that only a full unpickle (which can run code) would build."""


def conversion_command(path: Path) -> tuple[str, Path]:
    """(a one-line shell command, the folder it writes): run where running the file's code is acceptable, it
    turns ``path`` into a model folder (``model.safetensors``, plus ``config.json`` for a checkpoint of our
    tasks). A ``pytorch_model*.bin`` gets its ``model.safetensors`` beside it; another file the folder
    ``<stem>_safetensors`` beside it. One line, so that it survives messages that fold whitespace."""
    out = path.parent if path.name.startswith("pytorch_model") else path.with_name(f"{path.stem}_safetensors")
    code = "; ".join([
        "import json, pathlib, torch",
        "from safetensors.torch import save_file",
        f"src, out = pathlib.Path({json.dumps(str(path))}), pathlib.Path({json.dumps(str(out))})",
        'obj = torch.load(src, map_location="cpu", weights_only=False)',
        'state = obj.state_dict() if hasattr(obj, "state_dict") else obj.get("state_dict", obj)',
        'spec = obj.get("net_spec") if isinstance(obj, dict) else None',
        'prefix = "net." if spec else ""',
        "out.mkdir(exist_ok=True)",
        "save_file({k[len(prefix):]: v.clone().contiguous() for k, v in state.items() if k.startswith(prefix) and "
        'isinstance(v, torch.Tensor)}, str(out / "model.safetensors"))',
        'spec and (out / "config.json").write_text(json.dumps({**spec["config"], "head_type": spec["head_type"]}))',
    ])
    return f"python -c {shlex.quote(code)}", out


def _refused(path: Path, err: pickle.UnpicklingError) -> UnsafeFileError:
    detail = re.search(r"WeightsUnpickler error: (.*?)(?: was not an allowed global| Please use|\n|$)", str(err))
    command, out = conversion_command(path)
    return UnsafeFileError(
        f"{path} was not loaded: it holds Python objects beyond tensors and plain data "
        f"({detail.group(1).strip() if detail else 'refused by torch.load(weights_only=True)'}), and building them "
        "could run code from the file. Only safetensors files and weights_only PyTorch files are loaded. If you "
        f"trust the file, convert it to safetensors where running its code is acceptable, then load the folder "
        f"{out} instead: {command}")


def load_torch_file(path, map_location="cpu"):
    """The contents of the PyTorch file ``path`` (a state dict, a Lightning checkpoint dict, ...) with tensors on
    ``map_location``, read with ``weights_only=True``.

    Raises FileNotFoundError for a missing file, :class:`UnsafeFileError` (a ValueError) naming the file for
    one that holds objects beyond tensors and plain data, and ValueError naming the file for one torch cannot
    read (empty, truncated, not a PyTorch file, tensors saved on a device this machine lacks)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"PyTorch file {path} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if "WeightsUnpickler" in str(err) or "weights_only" in str(err):
            raise _refused(path, err) from None
        raise ValueError(f"{path} could not be read as a PyTorch file (empty, truncated or another format): "
                         f"{err}") from None
    except PermissionError:
        raise
    except (EOFError, KeyError, RuntimeError, OSError) as err:
        raise ValueError(f"{path} could not be read as a PyTorch file (empty, truncated or another format?): "
                         f"{type(err).__name__}: {err}") from None
