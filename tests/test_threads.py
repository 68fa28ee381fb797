"""Threads on a shared machine: the cores a process may use (affinity mask, cgroup quota), the
intra-op threads left beside the loader workers, ``--threads`` on every command, and OpenMP and
ONNX Runtime waiting passively rather than spinning."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from support import TINY_MODEL, set_args

from phgmm.cli import main
from phgmm.threads import available_cores, cgroup_cpu_limit, intra_op_threads, prefer_passive_wait, thread_budget

pytestmark = pytest.mark.usefixtures("one_thread")


def test_cores_come_from_the_affinity_mask_and_the_cgroup_quota(tmp_path, monkeypatch):
    if hasattr(os, "sched_getaffinity"):
        assert available_cores() <= len(os.sched_getaffinity(0))
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "cpu.max").write_text("150000 100000\n")
    monkeypatch.setattr("phgmm.threads._own_cgroup_dirs", lambda root: [root])
    assert cgroup_cpu_limit(v2) == 1.5
    (v2 / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_limit(v2) is None
    v1 = tmp_path / "v1"
    v1.mkdir()
    (v1 / "cpu.cfs_quota_us").write_text("50000\n")
    (v1 / "cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_cpu_limit(v1) == 0.5
    monkeypatch.setattr("phgmm.threads.cgroup_cpu_limit", lambda: 0.5)
    assert available_cores() == 1  # a quota of half a core: one thread


def test_threads_leave_the_loader_workers_their_cores(monkeypatch):
    monkeypatch.setattr("phgmm.threads.available_cores", lambda: 2)
    assert intra_op_threads(None, workers=1) == 1  # was 2 threads beside 1 worker on 2 cores
    assert intra_op_threads(None, workers=4) == 1  # at least one
    assert intra_op_threads(None, workers=0, default=1) == 1  # never more than PyTorch's own choice
    assert intra_op_threads(3, workers=1) == 3  # the user's word wins
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    with thread_budget(None, workers=1) as n:
        assert n == torch.get_num_threads() == 1
    assert torch.get_num_threads() == before  # an API call leaves the caller's setting
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    with thread_budget(None, workers=0) as n:  # the environment said so: left alone
        assert n == before


def test_passive_wait_unless_the_user_chose_a_policy():
    env: dict[str, str] = {}
    assert prefer_passive_wait(env) and env["OMP_WAIT_POLICY"] == "PASSIVE"
    for key, value in (("OMP_WAIT_POLICY", "ACTIVE"), ("GOMP_SPINCOUNT", "300000")):
        env = {key: value}
        assert not prefer_passive_wait(env) and env == {key: value}


def test_the_phgmm_command_sets_passive_wait_before_torch_loads():
    # OpenMP reads its wait policy once, when torch loads it: the command must set it before that
    code = (
        "import os, sys\nimport phgmm.cli as c\n"
        "def probe():\n    print(os.environ.get('OMP_WAIT_POLICY'), 'torch' in sys.modules)\n    raise SystemExit(0)\n"
        "c.build_parser = probe\nc.main([])\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.stdout.split() == ["PASSIVE", "False"], out.stderr


@pytest.mark.parametrize(
    "command", ["train", "evaluate", "predict", "synth", "export", "benchmark", "experiment compare"]
)
def test_every_command_takes_threads(command):
    from phgmm.cli import build_parser

    help_text = subprocess.run(
        [sys.executable, "-m", "phgmm", *command.split(), "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "--threads N" in help_text
    with pytest.raises(SystemExit):  # 0 threads is refused by the parser, naming the option
        build_parser().parse_args([*command.split(), "--threads", "0"])


def test_train_threads_through_the_config_and_the_start_summary(synth_root, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert (
        main(["train", "--config", "demo", "--set", f"data.root={synth_root}", "--print-config", "--threads", "1"]) == 0
    )
    assert "threads: 1" in capsys.readouterr().out
    before = torch.get_num_threads()
    args = [
        "--set",
        "data.size=[128,64]",
        "--set",
        "data.num_workers=1",
        "--set",
        "train.epochs=1",
        "--set",
        "train.max_steps_per_epoch=1",
        "--set",
        "train.val_every=0",
        "--set",
        "train.batch_size=2",
        *set_args(*TINY_MODEL),
        "--no-progress",
    ]
    assert (
        main(["train", "--config", "demo", "--set", f"data.root={synth_root}", "--out", str(tmp_path / "a"), *args])
        == 0
    )
    expected = min(before, max(1, available_cores() - 1))
    thread_word = "thread" if expected == 1 else "threads"
    assert f"{expected} CPU {thread_word} beside 1 loader worker" in capsys.readouterr().out
    assert torch.get_num_threads() == before


def test_onnxruntime_waits_passively_under_the_phgmm_command(checkpoint, tmp_path, monkeypatch):
    from phgmm.engine.inference.export import OnnxPredictor, export_checkpoint

    path, _ = export_checkpoint(checkpoint, tmp_path / "m.onnx", exporter="torchscript")
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    options = OnnxPredictor(path, threads=1).session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
