"""The device a model runs on (``device``, ``--device``), and the mixed-precision and memory-format
choices for it (config switches ``train.amp`` and ``train.channels_last``)."""

from __future__ import annotations

import contextlib
import functools
import os
import platform

import torch

__all__ = [
    "CPU_AUTO_BF16",
    "amp_dtype",
    "autocast",
    "cast_for_autocast",
    "check_device",
    "cpu_bf16",
    "memory_format",
    "precision_note",
    "precision_reason",
]

#: ``train.amp=auto`` on a CPU with native bf16: bf16 autocast (True) or fp32 (False). Decided by the
#: parity study in docs/results/bf16_parity_camvid (docs/performance.md, "bf16 on a CPU").
CPU_AUTO_BF16 = True

#: /proc/cpuinfo flags of instructions that compute in bf16 (x86: AVX-512 BF16, AMX; Arm: BF16)
_BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")


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
            raise ValueError(
                f"{what}: this PyTorch ({torch.__version__}) is a CPU build without CUDA; "
                f"install a CUDA build (make … TORCH=torch) or use the CPU"
            )
        count = torch.cuda.device_count()
        if count == 0:
            raise ValueError(
                f"{what}: no CUDA GPU is visible to PyTorch "
                f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')})"
            )
        if dev.index is not None and dev.index >= count:
            raise ValueError(f"{what}: only {count} CUDA GPU(s) are visible (cuda:0 … cuda:{count - 1})")
    return dev


@functools.cache
def cpu_bf16() -> tuple[bool, str]:
    """Whether this CPU computes in bf16 natively, and the reason in a few words.

    Native means oneDNN's own bf16 check passes *and* the processor reports bf16 instructions
    (``avx512_bf16``/``amx_bf16`` on x86, ``bf16`` on Arm): oneDNN also accepts plain AVX-512 and
    emulates bf16 there, which is slower than fp32. Without /proc/cpuinfo (not Linux) the
    answer is no: fp32 is never wrong, only slower."""
    if not (torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()):
        return False, "oneDNN has no bf16 kernels for this CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            flags = set()
            for line in f:
                if line.split(":")[0].strip() in ("flags", "Features"):
                    flags.update(line.split(":", 1)[1].split())
    except OSError:
        return False, f"no /proc/cpuinfo to read bf16 support from ({platform.system()})"
    found = [f for f in _BF16_FLAGS if f in flags]
    if not found:
        return False, "the CPU has no bf16 instructions (no avx512_bf16, amx_bf16 or bf16 flag)"
    return True, f"the CPU has {', '.join(found)}"


def _normalised(setting: str) -> str:
    setting = str(setting).lower()
    if setting not in ("auto", "bf16", "fp16", "off", "false", "none", "fp32"):
        raise ValueError(f"train.amp must be auto, bf16, fp16 or off, got {setting!r}")
    return "off" if setting in ("false", "none", "fp32") else setting


def amp_dtype(setting: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``train.amp`` on ``device``; None is fp32.

    CUDA: bf16 where the GPU supports it, fp16 otherwise (``auto``), or as asked. CPU: bf16 when
    asked for (or ``auto`` with :data:`CPU_AUTO_BF16`) on a processor with native bf16
    (:func:`cpu_bf16`), fp32 otherwise; fp16 never (CPU fp16 kernels are emulated, slower than fp32)."""
    setting = _normalised(setting)
    if setting == "off":
        return None
    if device.type == "cpu":
        wanted = setting == "bf16" or (setting == "auto" and CPU_AUTO_BF16)
        return torch.bfloat16 if wanted and cpu_bf16()[0] else None
    if device.type != "cuda":
        return None
    if setting == "bf16" or (setting == "auto" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    return torch.float16


def precision_reason(setting: str, device: torch.device, key: str = "train.amp") -> str:
    """Why ``key=setting`` (``train.amp`` or a command's ``--precision``) runs in the precision it
    does on ``device``, in a few words."""
    setting = _normalised(setting)
    shown = "fp32" if setting == "off" and key.startswith("--") else setting
    if setting == "off" or device.type != "cpu":
        return f"{key}={shown}"
    why = cpu_bf16()[1]
    if setting == "fp16":
        return f"{key}=fp16: a CPU has no fast fp16 ({key}=bf16 is the CPU's lower precision)"
    if setting == "auto" and not CPU_AUTO_BF16:
        return f"{key}=auto is fp32 on a CPU; {key}=bf16 asks for bf16 ({why})"
    return f"{key}={setting}: {why}"


def precision_note(setting: str, device: torch.device, key: str = "train.amp") -> str:
    """The precision ``train.amp=setting`` runs in on ``device`` and why (the start summary's and
    ``evaluate``/``predict``'s words), e.g. ``bfloat16 autocast (train.amp=bf16: the CPU has avx512_bf16)``."""
    dtype = amp_dtype(setting, device)
    name = "fp32" if dtype is None else f"{str(dtype).removeprefix('torch.')} autocast"
    return f"{name} ({precision_reason(setting, device, key)})"


def autocast(dtype: torch.dtype | None, device: torch.device):
    """Autocast to ``dtype`` on ``device``'s type; a no-op context for fp32 (``dtype`` None)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def cast_for_autocast(model: torch.nn.Module, dtype: torch.dtype | None) -> torch.nn.Module:
    """``model`` with the weights and biases of its ``nn.Conv2d`` and ``nn.Linear`` layers in ``dtype``
    (in place), for inference under :func:`autocast` to ``dtype``; fp32 (``dtype`` None) leaves it alone.

    Autocast casts both layers' arguments to its lower precision on every call (``conv2d`` and
    ``linear`` are on that list on the CPU and on CUDA), so the outputs are bit-identical while the
    per-call casts of every weight go away: about a third of PHGMM's bf16 forward at 240×176 on this
    project's CPU. Subclasses are left alone (their forward may read the weights otherwise), and so is
    training, whose optimiser needs fp32 weights."""
    if dtype is not None:
        for m in model.modules():
            if type(m) in (torch.nn.Conv2d, torch.nn.Linear):
                m.to(dtype)
    return model


def memory_format(setting: str) -> torch.memory_format:
    """The memory format of ``train.channels_last`` for models and inputs.

    ``auto`` is channels-last on every device: channels-last is what cuDNN's tensor-core kernels want,
    and on CPU it made PHGMM's inference (its 36-channel decoder in particular) markedly faster
    while training speed stayed the same (measured; see the README's benchmark section)."""
    setting = str(setting).lower()
    if setting not in ("auto", "true", "false"):
        raise ValueError(f"train.channels_last must be auto, true or false, got {setting!r}")
    return torch.channels_last if setting in ("auto", "true") else torch.contiguous_format
