"""AtomicFile: the one way the package writes a file (checkpoints, metrics, models, videos, configs)."""

import os
import stat

import pytest

from phgmm import io
from phgmm.io import AtomicFile, DiskFullError, atomic_write_bytes


def test_a_completed_block_replaces_the_file_with_the_usual_mode(tmp_path):
    path = tmp_path / "sub" / "f.bin"
    with AtomicFile(path) as tmp:
        assert tmp.parent == path.parent and tmp.name.startswith(".f.bin.") and not path.exists()
        tmp.write_bytes(b"new")
    assert path.read_bytes() == b"new" and os.listdir(path.parent) == ["f.bin"]
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask  # not mkstemp's 0600


def test_a_failed_block_keeps_the_earlier_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with AtomicFile(path) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("writer failed")
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["f.bin"]


def test_commit_and_discard_by_hand_and_the_suffix_is_kept(tmp_path):
    kept = AtomicFile(tmp_path / "v.mp4", suffix=".mp4")
    assert kept.tmp.suffix == ".mp4"
    kept.tmp.write_bytes(b"video")
    assert kept.commit() == tmp_path / "v.mp4"
    dropped = AtomicFile(tmp_path / "w.mp4", suffix=".mp4")
    dropped.discard()
    assert sorted(os.listdir(tmp_path)) == ["v.mp4"]


def test_fsync_only_when_asked(tmp_path, monkeypatch):
    synced = []
    real = os.fsync
    monkeypatch.setattr(io.os, "fsync", lambda fd: synced.append(fd) or real(fd))
    with AtomicFile(tmp_path / "a") as tmp:
        tmp.write_bytes(b"a")
    assert not synced
    with AtomicFile(tmp_path / "b", fsync=True) as tmp:
        tmp.write_bytes(b"b")
    assert len(synced) == 1


def test_a_full_disk_is_one_message_and_the_earlier_file_stays(tmp_path, monkeypatch):
    path = tmp_path / "m.json"
    path.write_bytes(b"old")

    def no_space(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(io.os, "fsync", no_space)
    with pytest.raises(DiskFullError, match="its earlier version is unchanged"):
        atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["m.json"]
