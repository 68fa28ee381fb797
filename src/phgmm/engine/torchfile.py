"""Reading a PyTorch file safely: ``weights_only=True`` and one-line errors naming the file.

Its own module so that both the checkpoint code and the model builders (a pretrained backbone)
read files the same way without importing each other.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

__all__ = ["CheckpointError", "read_torch_file"]


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read or does not fit; the message names the file."""


def read_torch_file(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` with one-line errors naming the file: a pickle that
    would call a function or build a class (what ``weights_only`` blocks) is refused as asking to
    run code, anything else unreadable is corrupt or truncated. Never suggests ``weights_only=False``."""
    path = Path(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        code = _code_reference(str(exc))
        if code is not None:  # a class or function reference: unpickling would call it
            raise CheckpointError(
                f"{path}: refused to load: the file asks to run code ({code}) when it is read, "
                f"which a file of weights never needs; phgmm does not load such files. Ask its "
                f"author for a checkpoint written by phgmm or a plain state dict of tensors"
            ) from None
        raise CheckpointError(
            f"{path}: not a readable checkpoint: the file is corrupt or truncated (not a PyTorch file written by phgmm)"
        ) from None
    except Exception as exc:  # truncated/corrupt zip archives raise several different errors
        raise CheckpointError(
            f"{path}: not a readable checkpoint: the file is corrupt or truncated "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no detail'})"
        ) from None


def _code_reference(message: str) -> str | None:
    """The function or class a pickle asks for, from PyTorch's weights-only refusal ("Unsupported
    global: GLOBAL print …"; torch 2.13: "unsupported GLOBAL posix.system …"), or None."""
    import re

    match = re.search(r"unsupported global:?\s+(?:GLOBAL\s+)?([\w.]+)", message, re.IGNORECASE)
    if match is None:
        return None
    return match.group(1)
