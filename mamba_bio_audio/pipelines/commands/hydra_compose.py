"""Compose the Hydra tree under ``mamba_bio_audio.configs`` from command-line overrides, with one-line errors.

Used by the training subcommands instead of ``@hydra.main`` so that mistakes read as one line: an unknown
``experiment=`` lists the available ones, an override of the wrong type or an unknown key names the key and the
expected type (every group is typed by the structured configs of :mod:`.config_schemas`, so Hydra checks them
in its one compose), and a run folder named by the clock is fixed once and created by the run that claims
it, under a free name. DDP worker processes get their parent's folder on their command line
(:func:`mamba_bio_audio.pipelines.training.train.run`).
"""
from __future__ import annotations

import copy
import os
import typing
from collections.abc import Callable
from dataclasses import fields, is_dataclass
from datetime import datetime
from importlib.resources import files
from typing import Union

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, ValidationError

from mamba_bio_audio.pipelines.commands.config_schemas import register_schemas

CONFIG_MODULE = "mamba_bio_audio.configs"


def _root():
    return files(CONFIG_MODULE)


def available(group: str) -> list[str]:
    """Option names of a config group, nested folders included (``experiment`` → ``dna/hg38_mamba_1.4m``, ...)."""
    names = []

    def walk(folder, prefix: str) -> None:
        for item in folder.iterdir():
            if item.is_dir() and not item.name.startswith("_"):
                walk(item, f"{prefix}{item.name}/")
            elif item.name.endswith(".yaml"):
                names.append(prefix + item.name[: -len(".yaml")])

    walk(_root().joinpath(group), "")
    return sorted(names)


def _parse(overrides: list[str]):
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    try:
        return OverridesParser.create().parse_overrides(overrides)
    except OverrideParseException as err:
        raise ValueError(f"bad override: {str(err).splitlines()[0]}") from None


def _compose(config_name: str, overrides: list[str]) -> DictConfig:
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException

    register_schemas()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(CONFIG_MODULE, version_base="1.3"):
            return compose(config_name, overrides=overrides)
    except HydraException as err:
        message = str(err)
        if isinstance(err.__cause__, ValidationError) and message.startswith(_MERGING):
            raise ValueError(_schema_type_error(message[len(_MERGING):], err.__cause__)) from None
        cause = err.__cause__
        if isinstance(cause, (ConfigAttributeError, ConfigKeyError)) and is_dataclass(cause.object_type):
            raise ValueError(_unknown_key_error(cause)) from None
        for group in ("experiment", "data", "net", "task", "trainer", "callbacks", "logger", "debug", "paths"):
            if f"'{group}/" in message and ("Could not find" in message or "Could not load" in message):
                wanted = next((o.split("=", 1)[1] for o in overrides if o.lstrip("+~").startswith(f"{group}=")), "?")
                raise ValueError(f"unknown {group} {wanted!r}; available: {', '.join(available(group))}") from None
        if err.__cause__ is not None and str(err.__cause__) not in message:
            message = f"{message}: {err.__cause__}"
        raise ValueError(" ".join(message.split())) from None


_MERGING = "Error merging override "
_TYPES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _describe(hint) -> str:
    """``Optional[Union[int, float]]`` → "a number or null", ``int`` → "an integer", ..."""
    if typing.get_origin(hint) is Union:
        args = typing.get_args(hint)
        kinds = [a for a in args if a is not type(None)]
        names = ["a number"] if set(kinds) == {int, float} else [_describe(a) for a in kinds]
        return " or ".join(names + (["null"] if len(kinds) < len(args) else []))
    if typing.get_origin(hint) in (list, tuple):
        return "a list"
    return _TYPES.get(hint, getattr(hint, "__name__", str(hint)))


def _schema_type_error(override: str, err: ValidationError) -> str:
    """One line for an override that a schema rejects."""
    if not is_dataclass(err.object_type) or not isinstance(err.key, str):
        return f"override {override}: {err.msg.splitlines()[0]}"
    expected = _describe(typing.get_type_hints(err.object_type)[err.key])
    default = None
    if isinstance(err.parent_node, DictConfig):
        default = OmegaConf.select(err.parent_node, err.key, throw_on_resolution_failure=False)
    shown = f" (default {default!r})" if default is not None else ""
    return f"override {override}: {err.full_key} takes {expected}{shown}; got {err.value!r}"


def _unknown_key_error(err: ConfigAttributeError | ConfigKeyError) -> str:
    """One line for an override of a key no schema declares, with the keys there are."""
    parent = err.full_key.rpartition(".")[0]
    keys = ", ".join(f.name for f in fields(err.object_type) if not f.name.startswith("_"))
    where = f"{parent} ({err.object_type.__name__})" if parent else err.object_type.__name__
    return f"{err.full_key}: no such key; {where} has {keys}"


_CLAIM_TRIES = 1000


def _claim_free(path: str) -> str:
    """Create the folder ``path`` with an exclusive mkdir, or ``path-1``, ``path-2``, ... when another run
    took it first (two runs started in the same second); return the name created."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    for n in range(_CLAIM_TRIES):
        candidate = path if n == 0 else f"{path}-{n}"
        try:
            os.mkdir(candidate)
        except FileExistsError:
            continue
        return candidate
    raise ValueError(f"{path}: no free run folder name among {path}-1 ... -{_CLAIM_TRIES - 1}; "
                     "set paths.output_dir=...")


def _name_run_dir(cfg: DictConfig) -> bool:
    """Fix ``paths.output_dir`` to one name (the clock is read once); True when the name comes from the clock
    (an interpolation of ``${now:...}``, the default) rather than from the user."""
    if "paths" not in cfg or "output_dir" not in cfg.paths:
        return False
    if not OmegaConf.has_resolver("now"):
        OmegaConf.register_new_resolver("now", lambda pattern: datetime.now().strftime(pattern), use_cache=True)
    from_clock = "${now:" in str(OmegaConf.to_container(cfg.paths, resolve=False)["output_dir"])
    cfg.paths.output_dir = str(cfg.paths.output_dir)
    return from_clock


def _resolved(cfg: DictConfig) -> DictConfig:
    """A resolved copy of ``cfg``; ValueError for an interpolation that fails or a value still missing."""
    cfg = copy.deepcopy(cfg)
    try:
        OmegaConf.resolve(cfg)
    except Exception as err:  # omegaconf's interpolation and missing-value errors
        raise ValueError(f"config: {' '.join(str(err).split())}") from None
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ValueError(f"missing value for {', '.join(missing)}: set it on the command line ({missing[0]}=...)")
    return cfg


def compose(config_name: str, overrides: list[str], *, claim_run_dir: bool = False,
            check: Callable[[DictConfig], None] | None = None) -> DictConfig:
    """The composed, resolved config ``configs/<config_name>.yaml`` with ``overrides`` applied: one Hydra
    compose, whose structured configs (:mod:`.config_schemas`) type every override.

    ``check`` (given the resolved config) runs before anything is created and may raise ValueError. Then, with
    ``claim_run_dir`` (when the config is about to run), a ``paths.output_dir`` named by the clock (the default,
    ``.../runs/<date>_<time>``) is created with an exclusive mkdir, taking ``<name>-1``, ``<name>-2``, ... when
    another run holds the name, so two runs never share a folder by accident; every path under it follows. A
    folder named by the user is left to :func:`~.output_folders.check_run_folder` (a resume continues in it).
    Without it (``--cfg``) nothing is created.

    Raises ValueError with a one-line message for an unknown option or key, a malformed override, a value of
    the wrong type or a missing mandatory value."""
    _parse(list(overrides))
    cfg = _compose(config_name, list(overrides))
    from_clock = _name_run_dir(cfg)
    resolved = _resolved(cfg)
    if check is not None:
        check(resolved)
    if claim_run_dir and from_clock:  # last, so that a config error leaves no folder behind
        claimed = _claim_free(resolved.paths.output_dir)
        if claimed != resolved.paths.output_dir:
            cfg.paths.output_dir = claimed
            resolved = _resolved(cfg)
    return resolved
