"""mamba-bio-audio: Mamba selective state space models for very long DNA and audio sequences.

``import mamba_bio_audio`` stays light (torch only). Public pieces:

* :mod:`mamba_bio_audio.ops`: the functional kernel API (selective scan, causal conv1d, RMSNorm, decode step).
* :class:`MambaConfig`, :class:`MambaLMHeadModel`, :class:`MambaForSequenceClassification` and the modules.
* :mod:`mamba_bio_audio.tokenizers`: nucleotide, byte and mu-law tokenizers.
"""
from importlib import import_module
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mamba-bio-audio")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"

# Imported on first access so that `import mamba_bio_audio` does not build the model modules.
_LAZY = {
    "MambaConfig": "mamba_bio_audio.config",
    "MambaLMHeadModel": "mamba_bio_audio.models",
    "MambaForSequenceClassification": "mamba_bio_audio.models",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mamba_bio_audio' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
