"""Compose the Hydra tree under ``mamba_bio_audio.configs`` from command-line overrides, with one-line errors.

Used by the training subcommands instead of ``@hydra.main`` so that mistakes read as one line: an unknown
``experiment=`` lists the available ones, an override of the wrong type names the expected type, and a
run folder is fixed once per run (DDP worker processes inherit it through ``RUN_DIR_ENV``); a run folder named
by the clock is created by the run that claims it, under a free name.

The run keys of ``train.yaml``, ``paths``, ``trainer`` and ``task.scheduler`` are typed by the structured
configs of :mod:`.config_schemas`, so Hydra rejects an override of the wrong type there. Keys no schema declares
(``data``, ``net``, ``task.optimizer``, ``callbacks``, ...) keep the type of the value they replace.
"""
from __future__ import annotations

import copy
import os
import typing
from dataclasses import is_dataclass
from datetime import datetime
from importlib.resources import files
from typing import Union

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ValidationError

from mamba_bio_audio.pipelines.commands.config_schemas import register_schemas

CONFIG_MODULE = "mamba_bio_audio.configs"
RUN_DIR_ENV = "MAMBA_BIO_AUDIO_RUN_DIR"


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


def _is_group(key: str) -> bool:
    return _root().joinpath(key).is_dir()


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
        for group in ("experiment", "data", "net", "task", "trainer", "callbacks", "logger", "debug", "paths"):
            if f"'{group}/" in message and ("Could not find" in message or "Could not load" in message):
                wanted = next((o.split("=", 1)[1] for o in overrides if o.lstrip("+~").startswith(f"{group}=")), "?")
                raise ValueError(f"unknown {group} {wanted!r}; available: {', '.join(available(group))}") from None
        if err.__cause__ is not None and str(err.__cause__) not in message:
            message = f"{message}: {err.__cause__}"
        raise ValueError(" ".join(message.split())) from None


_MERGING = "Error merging override "
_TYPES = ((bool, "true or false"), (int, "an integer"), (float, "a number"), (str, "a string"))  # bool before int


def _describe(hint) -> str:
    """``Optional[Union[int, float]]`` → "a number or null", ``int`` → "an integer", ..."""
    if typing.get_origin(hint) is Union:
        args = typing.get_args(hint)
        kinds = [a for a in args if a is not type(None)]
        names = ["a number"] if set(kinds) == {int, float} else [_describe(a) for a in kinds]
        return " or ".join(names + (["null"] if len(kinds) < len(args) else []))
    if typing.get_origin(hint) in (list, tuple):
        return "a list"
    return dict(_TYPES).get(hint, getattr(hint, "__name__", str(hint)))


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


def _declared(cfg: DictConfig, key: str) -> bool:
    """Whether a schema declares ``key`` (its parent node is a structured config)."""
    parent = key.rpartition(".")[0]
    node = OmegaConf.select(cfg, parent, throw_on_missing=False) if parent else cfg
    return isinstance(node, DictConfig) and is_dataclass(OmegaConf.get_type(node))


def _check_types(defaults: DictConfig, overrides) -> None:
    """Each ``key=value`` override (of a key, not a group) keeps the type of the value it replaces in
    ``defaults`` (int accepted for float, anything scalar for str)."""
    for override in overrides:
        old = OmegaConf.select(defaults, override.key_or_group, default=None, throw_on_missing=False)
        new = override.value()
        if old is None or new is None or isinstance(old, (DictConfig, list)) or OmegaConf.is_list(old):
            continue
        for kind, name in _TYPES:
            if isinstance(old, kind):
                ok = isinstance(new, kind) and not (kind is int and isinstance(new, bool))
                if kind is float:
                    ok = isinstance(new, (int, float)) and not isinstance(new, bool)
                if kind is str:
                    ok = isinstance(new, (str, int, float))
                if not ok:
                    raise ValueError(f"override {override.input_line}: {override.key_or_group} takes {name} "
                                     f"(default {old!r}); got {new!r}")
                break


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


def _fix_run_dir(cfg: DictConfig) -> bool:
    """Fix ``paths.output_dir`` to one name (a DDP worker takes its parent's); True when the name comes from
    the clock (an interpolation of ``${now:...}``, the default) rather than from the user."""
    if "paths" not in cfg or "output_dir" not in cfg.paths:
        return False
    if RUN_DIR_ENV in os.environ and os.environ.get("LOCAL_RANK", "0") != "0":  # a DDP worker: the parent's folder
        cfg.paths.output_dir = os.environ[RUN_DIR_ENV]
        return False
    if not OmegaConf.has_resolver("now"):
        OmegaConf.register_new_resolver("now", lambda pattern: datetime.now().strftime(pattern), use_cache=True)
    from_clock = "${now:" in str(OmegaConf.to_container(cfg.paths, resolve=False)["output_dir"])
    os.environ[RUN_DIR_ENV] = cfg.paths.output_dir = str(cfg.paths.output_dir)
    return from_clock


def compose(config_name: str, overrides: list[str], *, claim_run_dir: bool = False) -> DictConfig:
    """The composed, resolved config ``configs/<config_name>.yaml`` with ``overrides`` applied.

    With ``claim_run_dir`` (when the config is about to run), a ``paths.output_dir`` named by the clock (the
    default, ``.../runs/<date>_<time>``) is created here with an exclusive mkdir, taking ``<name>-1``,
    ``<name>-2``, ... when another run holds the name, so two runs never share a folder by accident. A folder
    named by the user is left to :func:`~.output_folders.check_run_folder` (a resume continues in it). Without
    it (``--cfg``) nothing is created.

    Raises ValueError with a one-line message for an unknown option, a malformed override, a value of the
    wrong type or a missing mandatory value."""
    parsed = _parse(list(overrides))
    cfg = _compose(config_name, list(overrides))
    untyped = [o for o in parsed if not o.is_add() and not o.is_delete() and not _is_group(o.key_or_group)
               and not _declared(cfg, o.key_or_group)]
    if untyped:
        groups_only = [o.input_line for o in parsed if _is_group(o.key_or_group)]
        _check_types(_compose(config_name, groups_only), untyped)
    from_clock = _fix_run_dir(cfg)
    unresolved = copy.deepcopy(cfg)
    try:
        OmegaConf.resolve(cfg)
    except Exception as err:  # omegaconf's interpolation and missing-value errors
        raise ValueError(f"config: {' '.join(str(err).split())}") from None
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ValueError(f"missing value for {', '.join(missing)}: set it on the command line ({missing[0]}=...)")
    if claim_run_dir and from_clock:  # last, so that a config error leaves no folder behind
        claimed = _claim_free(cfg.paths.output_dir)
        if claimed != cfg.paths.output_dir:  # every path under it follows
            os.environ[RUN_DIR_ENV] = unresolved.paths.output_dir = claimed
            OmegaConf.resolve(unresolved)
            cfg = unresolved
    return cfg
