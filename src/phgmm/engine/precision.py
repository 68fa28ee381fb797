"""The device a model runs on (``device``, ``--device``), and the mixed-precision and memory-format
choices for it (config switches ``train.amp`` and ``train.channels_last``)."""

from __future__ import annotations

import contextlib
import os

import torch

__all__ = ["amp_dtype", "autocast", "check_device", "memory_format"]


def check_device(device: str | torch.device = "auto") -> torch.device:
    """The torch device for ``auto`` (CUDA when a GPU is visible, else the CPU), ``cpu``, ``cuda`` or
    ``cuda:N``; a name PyTorch cannot serve here is a ``ValueError`` that says why, before any work."""
    name = str(device).strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    what = f"device {str(device)!r}"
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ValueError(f"{what}: not a device name (auto, cpu, cuda or cuda:N)") from None
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"{what}: phgmm runs on cpu or cuda")
    if dev.type == "cuda":
        if torch.version.cuda is None:
            raise ValueError(f"{what}: this PyTorch ({torch.__version__}) is a CPU build without CUDA; "
                             f"install a CUDA build (make … TORCH=torch) or use the CPU")
        count = torch.cuda.device_count()
        if count == 0:
            raise ValueError(f"{what}: no CUDA GPU is visible to PyTorch "
                             f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')})")
        if dev.index is not None and dev.index >= count:
            raise ValueError(f"{what}: only {count} CUDA GPU(s) are visible (cuda:0 … cuda:{count - 1})")
    return dev


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
