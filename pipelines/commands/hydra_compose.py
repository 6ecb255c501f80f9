"""Compose the Hydra tree under ``mamba_bio_audio.configs`` from command-line overrides, with one-line errors.

Used by the training subcommands instead of ``@hydra.main`` so that mistakes read as one line: an unknown
``experiment=`` lists the available ones, an override of the wrong type names the expected type, and a
run folder is fixed once per run (DDP worker processes inherit it through ``RUN_DIR_ENV``).
"""
from __future__ import annotations

import os
from datetime import datetime
from importlib.resources import files

from omegaconf import DictConfig, OmegaConf

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

    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(CONFIG_MODULE, version_base="1.3"):
            return compose(config_name, overrides=overrides)
    except HydraException as err:
        message = str(err)
        for group in ("experiment", "data", "net", "task", "trainer", "callbacks", "logger", "debug", "paths"):
            if f"'{group}/" in message and ("Could not find" in message or "Could not load" in message):
                wanted = next((o.split("=", 1)[1] for o in overrides if o.lstrip("+~").startswith(f"{group}=")), "?")
                raise ValueError(f"unknown {group} {wanted!r}; available: {', '.join(available(group))}") from None
        raise ValueError(" ".join(message.split())) from None


_TYPES = ((bool, "true or false"), (int, "an integer"), (float, "a number"), (str, "a string"))


def _check_types(defaults: DictConfig, overrides) -> None:
    """Each ``key=value`` override keeps the type of the value it replaces (int accepted for float)."""
    for override in overrides:
        if _is_group(override.key_or_group) or override.is_delete():
            continue
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


def _fix_run_dir(cfg: DictConfig) -> None:
    if "paths" not in cfg or "output_dir" not in cfg.paths:
        return
    if RUN_DIR_ENV in os.environ and os.environ.get("LOCAL_RANK", "0") != "0":  # a DDP worker: the parent's folder
        cfg.paths.output_dir = os.environ[RUN_DIR_ENV]
        return
    if not OmegaConf.has_resolver("now"):
        OmegaConf.register_new_resolver("now", lambda pattern: datetime.now().strftime(pattern), use_cache=True)
    os.environ[RUN_DIR_ENV] = cfg.paths.output_dir = str(cfg.paths.output_dir)


def compose(config_name: str, overrides: list[str]) -> DictConfig:
    """The composed, resolved config ``configs/<config_name>.yaml`` with ``overrides`` applied.

    Raises ValueError with a one-line message for an unknown option, a malformed override, a value of the
    wrong type or a missing mandatory value."""
    parsed = _parse(list(overrides))
    cfg = _compose(config_name, list(overrides))
    groups_only = [o.input_line for o in parsed if _is_group(o.key_or_group)]
    _check_types(_compose(config_name, groups_only), [o for o in parsed if not o.is_add()])
    _fix_run_dir(cfg)
    try:
        OmegaConf.resolve(cfg)
    except Exception as err:  # omegaconf's interpolation and missing-value errors
        raise ValueError(f"config: {' '.join(str(err).split())}") from None
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ValueError(f"missing value for {', '.join(missing)}: set it on the command line ({missing[0]}=...)")
    return cfg
