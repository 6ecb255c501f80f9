"""Building blocks with ``mamba_ssm``'s names: the Mamba mixer, RMSNorm, the residual Block, pooling."""
from mamba_bio_audio.modules.block import Block, GatedMLP
from mamba_bio_audio.modules.mamba import Mamba
from mamba_bio_audio.modules.pooling import pool
from mamba_bio_audio.modules.rms_norm import RMSNorm

__all__ = ["Block", "GatedMLP", "Mamba", "RMSNorm", "pool"]
