"""One training per run folder.

A training holds an exclusive ``flock`` on ``<run>/.phgmm-train.lock`` from before it writes
anything there until it ends. The kernel drops the lock when the process ends, however it ends
(Ctrl-C, a crash, SIGKILL, a machine restart), so a crashed run's lock file never blocks its
resume: only a living process holds the lock. The file records who holds it (process id, host,
start time, command) so that a second training into the same folder can say which process it
waits for. The file is left in place after a run (removing it would let two processes lock two
different files of one name).
"""

from __future__ import annotations

import errno
import json
import os
import socket
import sys
import time
from pathlib import Path

__all__ = ["RunBusyError", "LOCK_NAME", "acquire_run_lock", "release_run_lock", "read_holder"]

LOCK_NAME = ".phgmm-train.lock"

# folder (resolved) -> [file descriptor, holds]: one process may open a run folder more than once
# (a Trainer built again for a resume in the same Python session); the lock is its own already
_HELD: dict[Path, list[int]] = {}


class RunBusyError(FileExistsError):
    """Another living process is training into this run folder."""


def read_holder(path: str | os.PathLike) -> dict:
    """What a lock file records about the process that took it ({} when unreadable)."""
    try:
        return json.loads(Path(path).read_text() or "{}")
    except (OSError, ValueError):
        return {}


def _describe(holder: dict) -> str:
    if not holder.get("pid"):
        return "a process that has not yet recorded itself"
    here = socket.gethostname()
    host = f" on {holder['host']}" if holder.get("host") and holder["host"] != here else ""
    since = f", since {holder['started']}" if holder.get("started") else ""
    command = f": {holder['command']}" if holder.get("command") else ""
    return f"process {holder['pid']}{host}{since}{command}"


def acquire_run_lock(folder: str | os.PathLike) -> Path | None:
    """Lock ``folder`` for this process's training; returns the key to release it with.

    Raises :class:`RunBusyError` naming the holder when another process holds it. On a file
    system without ``flock`` (some network mounts) training goes on unlocked."""
    import fcntl

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    key = folder.resolve()  # a run folder reached through a symlink is the same folder
    if key in _HELD:
        _HELD[key][1] += 1
        return key
    path = key / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise RunBusyError(
                f"{folder}: another training is writing to this run folder ({_describe(read_holder(path))}); "
                f"wait for it to end, or give this one another --out"
            ) from None
        return None  # no flock here (ENOLCK, EOPNOTSUPP): nothing to hold
    record = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "command": " ".join(["phgmm", *sys.argv[1:]])
        if Path(sys.argv[0]).name in ("phgmm", "__main__.py")
        else " ".join(sys.argv),
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(record).encode(), 0)
    _HELD[key] = [fd, 1]
    return key


def release_run_lock(key: Path | None) -> None:
    """Release a lock :func:`acquire_run_lock` gave (the last release closes the file)."""
    held = _HELD.get(key) if key is not None else None
    if held is None:
        return
    held[1] -= 1
    if held[1] <= 0:
        del _HELD[key]
        os.close(held[0])  # closing the descriptor drops the flock
