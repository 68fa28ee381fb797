"""The data layer's one exception type (a leaf module: it imports nothing from the package)."""

from __future__ import annotations

import re

__all__ = ["DatasetError", "plain_message"]


class DatasetError(ValueError):
    """Bad data on disk: missing folders, unpaired files, unreadable images, unknown label ids,
    label values that cannot be what the caller said they are. The message names the file."""


_WORKER = re.compile(r"^Caught (\w+) in DataLoader worker process \d+\.\nOriginal Traceback")


def plain_message(exc: BaseException) -> str:
    """``exc``'s message as its author wrote it.

    PyTorch's DataLoader re-raises an error from a worker process as the same type whose message
    is the worker's whole traceback ("Caught DatasetError in DataLoader worker process 0.
    Original Traceback …", 25–40 lines); this returns the worker's own message, the one line a
    single-process loader would have shown. Any other message is returned unchanged.
    """
    text = str(exc)
    match = _WORKER.match(text)
    if match is None:
        return text
    # the traceback ends with "<module>.<Type>: <message>" (the message may span lines)
    found = list(re.finditer(rf"^(?:[\w.]+\.)?{match.group(1)}: ", text, re.MULTILINE))
    return text[found[-1].end() :].strip() if found else text
