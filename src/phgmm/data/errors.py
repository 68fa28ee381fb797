"""The data layer's one exception type (a leaf module: it imports nothing from the package)."""

from __future__ import annotations

__all__ = ["DatasetError"]


class DatasetError(ValueError):
    """Bad data on disk: missing folders, unpaired files, unreadable images, unknown label ids,
    label values that cannot be what the caller said they are. The message names the file."""
