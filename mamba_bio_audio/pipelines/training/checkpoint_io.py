"""Lightning reads ``ckpt_path`` through :func:`~mamba_bio_audio.torch_files.load_torch_file`.

Our checkpoints hold tensors and plain data only (see :mod:`.plain_data`), so ``weights_only=True`` reads them
whole, resume included, with no allow-list of classes; :class:`SafeCheckpointIO` makes a file that holds more
fail with a message naming it and saying how to convert it to safetensors, not with torch's bare
UnpicklingError.
"""
from __future__ import annotations

from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from mamba_bio_audio.torch_files import load_torch_file

__all__ = ["SafeCheckpointIO"]


class SafeCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint reader and writer whose reads of local files go through
    :func:`~mamba_bio_audio.torch_files.load_torch_file` (always ``weights_only=True``; a file holding more
    raises UnsafeFileError naming it). Remote paths (``s3://...``) use Lightning's reader with
    ``weights_only=True``. Writing is Lightning's."""

    def load_checkpoint(self, path, map_location=lambda storage, loc: storage, weights_only=None) -> dict:
        if "://" in str(path):
            return super().load_checkpoint(path, map_location=map_location, weights_only=True)
        return load_torch_file(path, map_location=map_location)

