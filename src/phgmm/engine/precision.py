"""Mixed precision and memory-format choices for a device (config switches ``train.amp`` and
``train.channels_last``)."""

from __future__ import annotations

import contextlib

import torch

__all__ = ["amp_dtype", "autocast", "memory_format"]


def amp_dtype(setting: str, device: torch.device) -> torch.dtype | None:
    """bf16 where the GPU supports it, fp16 otherwise, None (fp32) on CPU or when ``off``."""
    setting = str(setting).lower()
    if setting not in ("auto", "bf16", "fp16", "off", "false", "none", "fp32"):
        raise ValueError(f"train.amp must be auto, bf16, fp16 or off, got {setting!r}")
    # On CPU autocast is slower than fp32 for these convolutions: always full precision there.
    if device.type != "cuda" or setting in ("off", "false", "none", "fp32"):
        return None
    if setting == "bf16" or (setting == "auto" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    return torch.float16


def autocast(dtype: torch.dtype | None, device: torch.device):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def memory_format(setting: str) -> torch.memory_format:
    """The memory format of ``train.channels_last`` for models and inputs.

    ``auto`` is channels-last on every device: channels-last is what cuDNN's tensor-core kernels want,
    and on CPU it made PHGMM's inference (its 36-channel decoder in particular) markedly faster
    while training speed stayed the same (measured; see the README's benchmark section)."""
    setting = str(setting).lower()
    if setting not in ("auto", "true", "false"):
        raise ValueError(f"train.channels_last must be auto, true or false, got {setting!r}")
    return torch.channels_last if setting in ("auto", "true") else torch.contiguous_format
