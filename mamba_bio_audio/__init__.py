"""mamba-bio-audio: Mamba selective state space models for very long DNA and audio sequences.

``import mamba_bio_audio`` stays light (torch only). Public pieces:

* :mod:`mamba_bio_audio.ops`: the functional kernel API (selective scan, causal conv1d, RMSNorm, decode step).
* :class:`MambaConfig`, :class:`MambaLMHeadModel`, :class:`MambaForSequenceClassification` and the modules.
* :mod:`mamba_bio_audio.tokenizers`: nucleotide, byte and mu-law tokenizers.
"""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mamba-bio-audio")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"
