"""One training per run folder: a second training into the folder of a running one refuses in one
line naming the first's process; a crashed run's lock file does not block its resume.

Before the lock, both trainings exited 0: config.yaml was the second's, the checkpoints and
history.json the first's, and tb/ held two event files (the check looked only for last.pt, which
the first had not written yet).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from support import TINY as BASE_TINY
from support import one_line_error, tiny_train_args

from phgmm.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = [*BASE_TINY, "data.num_workers=0", "train.max_steps_per_epoch=1", "train.val_every=0"]


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    from phgmm.data.synthetic import generate_dataset

    root = tmp_path_factory.mktemp("synth")
    generate_dataset(root, num=4, size=(128, 64), seed=3, fmt="cityscapes", progress=False)
    return root


def _wait_for(predicate, proc: subprocess.Popen, seconds: float = 120) -> None:
    end = time.monotonic() + seconds
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"the first training ended early: {proc.stdout.read()}")
        if time.monotonic() > end:
            raise AssertionError("the first training did not get that far in time")
        time.sleep(0.2)


def test_a_second_training_into_a_running_ones_folder_refuses_and_a_killed_one_resumes(synth, tmp_path, capsys):
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # the same phgmm as this process (PYTHONPATH included)
    first = subprocess.Popen(
        [sys.executable, "-m", "phgmm", *tiny_train_args(out, f"data.root={synth}", "train.epochs=1000", tiny=TINY)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _wait_for(lambda: (out / "config.yaml").is_file(), first)  # the first has started
        # the second, a second later, with other settings: refused before it writes anything
        config_before = (out / "config.yaml").read_text()
        assert main(tiny_train_args(out, f"data.root={synth}", "train.epochs=2", "train.lr=5e-4", tiny=TINY)) == 2
        line = one_line_error(capsys, "train")
        assert f"{out}: another training is writing to this run folder (process {first.pid}" in line
        assert "--out" in line
        _wait_for(lambda: (out / "checkpoints" / "last.pt").is_file(), first)
        assert (out / "config.yaml").read_text() == config_before
        assert "5e-4" not in (out / "config.yaml").read_text() and "0.0005" not in (out / "config.yaml").read_text()
    finally:
        first.send_signal(signal.SIGKILL)  # a crash: the lock file stays, naming a dead process
        first.wait()
    assert json.loads((out / ".phgmm-train.lock").read_text())["pid"] == first.pid
    last = out / "checkpoints" / "last.pt"
    for _ in range(50):  # SIGKILL can land while last.pt is being replaced: read a whole one
        try:
            epoch = torch.load(last, weights_only=True)["epoch"]
            break
        except Exception:  # noqa: BLE001 - a file caught mid-rename; look again
            time.sleep(0.1)
    assert main(["train", "--resume", str(last), "--no-progress", "--set", f"train.epochs={epoch + 1}"]) == 0
    assert f"resuming {last}" in capsys.readouterr().out
    assert json.loads((out / ".phgmm-train.lock").read_text())["pid"] == os.getpid()


def test_a_lock_file_left_by_a_dead_process_does_not_block_a_new_run(synth, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / ".phgmm-train.lock").write_text(json.dumps({"pid": 2**22 + 7, "host": "gone"}))
    assert main(tiny_train_args(out, f"data.root={synth}", "train.epochs=1", tiny=TINY)) == 0
    # and a run folder reached through a symlink (scripts/run_study.sh) is the same folder
    link = tmp_path / "link"
    link.symlink_to(out)
    from phgmm.engine.runlock import RunBusyError, acquire_run_lock, release_run_lock

    held = acquire_run_lock(out)
    try:
        code = f"from phgmm.engine.runlock import acquire_run_lock; acquire_run_lock({str(link)!r})"
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert done.returncode != 0 and RunBusyError.__name__ in done.stderr and f"process {os.getpid()}" in done.stderr
    finally:
        release_run_lock(held)
