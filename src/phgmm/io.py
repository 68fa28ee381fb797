"""Small, dependency-light I/O helpers shared by the engines (JSON that survives NumPy/torch/NaN).

``metrics_json_safe`` turns anything a metric computation returns (NumPy scalars and arrays,
torch tensors, ``Path``, tuples, sets, NaN/inf floats, non-string dict keys) into plain JSON
types; NaN and ±inf become ``null`` so that the file is strict JSON that every parser reads.
Every file the package writes goes through :class:`AtomicFile` (temporary file in the same
folder, then ``os.replace``), so a reader never sees a half-written ``metrics.json``, checkpoint,
model or video.
"""

from __future__ import annotations

import argparse
import errno
import json
import math
import os
import tempfile
from collections.abc import Sequence
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # numpy is imported where it is used: this module loads with the CLI's first line
    import numpy as np

__all__ = [
    "metrics_json_safe",
    "write_json",
    "read_json",
    "AtomicFile",
    "atomic_write_bytes",
    "parse_wxh",
    "SizeError",
    "to_numpy",
    "label_pairs",
    "OutputError",
    "check_output_dir",
    "check_output_file",
    "set_default_mode",
    "DiskFullError",
    "is_disk_full",
]


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp creates 0600 files; give the final file the usual 0666 & ~umask permissions.
_FILE_MODE = 0o666 & ~_current_umask()


def set_default_mode(path: str | os.PathLike) -> None:
    """Give a file written through a temporary one (``mkstemp``, safetensors: both 0600) the
    permissions a plain ``open()`` would have (0666 less the umask, e.g. 0644): shared model files
    must be readable by the people they are shared with."""
    os.chmod(path, _FILE_MODE)


def metrics_json_safe(obj: Any) -> Any:
    """Return a copy of ``obj`` made only of JSON types (dict/list/str/int/float/bool/None).

    - NumPy / torch scalars → Python numbers; arrays and tensors → nested lists.
    - NaN, +inf, -inf → ``None`` (strict JSON has no NaN).
    - dict keys → ``str`` (so ``{1: 0.5}`` becomes ``{"1": 0.5}``, as JSON would anyway).
    - tuples, sets → lists (sets sorted when possible); ``Path`` → ``str``; ``Enum`` → its value.
    - objects with ``to_dict()`` are converted through it; anything else raises ``TypeError``.
    """
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {_key(k): metrics_json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [metrics_json_safe(v) for v in obj]
    if isinstance(obj, (set, frozenset)):
        try:
            items = sorted(obj)
        except TypeError:
            items = list(obj)
        return [metrics_json_safe(v) for v in items]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, Enum):
        return metrics_json_safe(obj.value)

    # NumPy (imported lazily: this module must stay cheap to import).
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - numpy is a hard dependency
        np = None
    if np is not None:
        if isinstance(obj, np.bool_):
            return bool(obj)
        if isinstance(obj, np.integer):
            return int(obj)
        if isinstance(obj, np.floating):
            return metrics_json_safe(float(obj))
        if isinstance(obj, np.ndarray):
            return metrics_json_safe(obj.tolist())

    # torch, only if it is already imported by the caller.
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and isinstance(obj, torch.Tensor):
        return metrics_json_safe(obj.detach().cpu().tolist())

    if hasattr(obj, "to_dict") and callable(obj.to_dict):
        return metrics_json_safe(obj.to_dict())
    # Generic number-like scalars (e.g. Decimal, Fraction).
    if hasattr(obj, "__float__") and not hasattr(obj, "__len__"):
        return metrics_json_safe(float(obj))
    raise TypeError(f"metrics_json_safe: cannot convert object of type {type(obj).__name__} to JSON")


def _key(k: Any) -> str:
    if isinstance(k, str):
        return k
    safe = metrics_json_safe(k)
    if isinstance(safe, float) and safe.is_integer():
        return str(int(safe))
    return str(safe)


class OutputError(ValueError):
    """An output location that cannot be written, or would overwrite earlier results."""


def check_output_dir(path: str | os.PathLike, results: Sequence[str] = (), overwrite: bool = False) -> Path:
    """Make sure ``path`` can hold our outputs *before* any work starts.

    Creates the folder (and its parents), checks that it is writable, and refuses when one of
    ``results`` already exists there unless ``overwrite``. Raises :class:`OutputError` naming the
    path and the problem (a parent that is a file, no permission, results that would be replaced).
    """
    path = Path(path)
    for parent in [path, *path.parents]:
        if parent.exists() and not parent.is_dir():
            raise OutputError(f"{path}: cannot write there: {parent} is a file, not a folder")
        if parent.exists():
            break
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{path}: cannot create the output folder ({exc.strerror or exc})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise OutputError(f"{path}: the output folder is not writable")
    existing = [name for name in results if (path / name).exists()]
    if existing and not overwrite:
        raise OutputError(
            f"{path}: already holds {', '.join(existing)} from an earlier run; choose another "
            f"folder or pass --overwrite to replace them"
        )
    return path


def check_output_file(path: str | os.PathLike, overwrite: bool = True) -> Path:
    """The file ``path`` can be written (its folder exists or can be made); see :func:`check_output_dir`."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path}: is a folder; give a file name")
    check_output_dir(path.parent)
    if path.exists() and not overwrite:
        raise OutputError(f"{path}: exists; pass --overwrite to replace it")
    return path


class AtomicFile:
    """A file written under a temporary name in its own folder and renamed over ``path`` with
    ``os.replace`` when complete, so that a reader sees the old file or the new one, never half.

    As a context manager it yields the temporary path, commits when the block ends without an
    error and removes the temporary file otherwise; a file written over a longer time (a video)
    calls :meth:`commit` or :meth:`discard` itself. ``suffix`` keeps an extension that a writer
    reads its format from (``.mp4``); ``fsync`` puts the data on the disk before the rename, for
    files that must survive a crash (checkpoints, metrics).
    """

    def __init__(self, path: str | os.PathLike, suffix: str = ".tmp", fsync: bool = False) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # mkstemp: a name no other process writing the same file (two runs, two threads) can hold
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=suffix, dir=self.path.parent)
        os.close(fd)
        self.tmp = Path(tmp)
        self.fsync = fsync

    def commit(self) -> Path:
        """Rename the complete temporary file over ``path``; returns ``path``."""
        if self.fsync:
            with open(self.tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        set_default_mode(self.tmp)
        os.replace(self.tmp, self.path)
        return self.path

    def discard(self) -> None:
        """Remove the temporary file (nothing happens once it has been committed)."""
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> Path:
        return self.tmp

    def __exit__(self, exc_type: type[BaseException] | None, *rest: Any) -> None:
        try:
            if exc_type is None:
                self.commit()
        finally:
            self.discard()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and durably (:class:`AtomicFile` with fsync); a full
    disk is a :class:`DiskFullError` that says the earlier file is unchanged."""
    path = Path(path)
    try:
        with AtomicFile(path, fsync=True) as tmp:
            tmp.write_bytes(data)
    except OSError as exc:
        if is_disk_full(exc):
            earlier = " (its earlier version is unchanged)" if path.exists() else ""
            raise DiskFullError(
                f"{path}: no space left on device. Nothing was lost: the file was being written "
                f"under a temporary name, now removed{earlier}, and every file written before it "
                f"is complete. Free some space and run the command again"
            ) from None
        raise
    return path


class DiskFullError(OSError):
    """No space left on the device (or the user's quota) while writing a file: the message names
    the file and says what was kept, as one line for the user."""


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` is the operating system's "no space left" (ENOSPC) or "quota exceeded"."""
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> Path:
    """Write ``metrics_json_safe(obj)`` as strict JSON to ``path`` atomically; returns the path."""
    text = json.dumps(metrics_json_safe(obj), indent=indent, allow_nan=False, sort_keys=False)
    return atomic_write_bytes(path, (text + "\n").encode("utf-8"))


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file (``null`` stays ``None``)."""
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


class SizeError(ValueError, argparse.ArgumentTypeError):
    """A size that is not ``WIDTHxHEIGHT``; argparse prints its message as is."""


def parse_wxh(text: str | Sequence[int]) -> tuple[int, int]:
    """``"768x384"`` → ``(768, 384)``: every size on the command line is width × height, as in
    the config's ``data.size`` and the paper's "768×384". A pair passes through."""
    if not isinstance(text, str):
        w, h = (int(v) for v in text)
        return w, h
    parts = text.lower().replace("×", "x").split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise SizeError(f"size must be WIDTHxHEIGHT (e.g. 768x384), got {text!r}")
    w, h = (int(p) for p in parts)
    if w < 1 or h < 1:
        raise SizeError(f"size must be positive, got {text!r}")
    return w, h


def to_numpy(x: Any, dtype: Any = None) -> np.ndarray:
    """A NumPy array from a tensor (any device) or anything ``np.asarray`` takes."""
    import numpy as np

    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def label_pairs(pred: Any, target: Any):
    """Yield ``(pred, target)`` H×W array pairs from H×W or N×H×W inputs of equal shape."""
    p, t = to_numpy(pred), to_numpy(target)
    if p.shape != t.shape:
        raise ValueError(f"pred and target shapes differ: {p.shape} vs {t.shape}")
    if t.ndim == 2:
        p, t = p[None], t[None]
    if t.ndim != 3:
        raise ValueError(f"expected H×W or N×H×W label arrays, got shape {t.shape}")
    yield from zip(p, t, strict=True)
