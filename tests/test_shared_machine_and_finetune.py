"""Issue 22, part B: thread counts on a shared machine, fine-tuning with ``model.init_from``,
``predict --skip-existing``, entropy maps for every model, ``phgmm.config`` after ``import
phgmm``, and share files readable by others (0644, not 0600)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from test_engine import tiny_cfg
from test_predict_inputs import _image, checkpoint  # noqa: F401  (module-scoped fixture)

from phgmm.cli import main
from phgmm.threads import available_cores, cgroup_cpu_limit, intra_op_threads, prefer_passive_wait, thread_budget

pytestmark = pytest.mark.usefixtures("one_thread")
REPO = Path(__file__).resolve().parents[1]
TINY = [
    "--set",
    "model.decoder_units=[1,1,1,1]",
    "--set",
    "model.latent_dim=16",
    "--set",
    "model.component_dim=8",
    "--set",
    "model.local_channels=32",
    "--set",
    "model.global_dim=8",
    "--set",
    "model.num_components=3",
]


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    from phgmm.data.synthetic import generate_dataset

    root = tmp_path_factory.mktemp("synth")
    generate_dataset(root, num=6, size=(128, 64), seed=3, fmt="cityscapes", val_fraction=0.34, progress=False)
    return root


@pytest.fixture(scope="module")
def trained(synth, tmp_path_factory) -> Path:
    """best.pt of one training step of a tiny PHGMM (12 classes)."""
    from phgmm.engine.training.trainer import train

    out = tmp_path_factory.mktemp("run")
    return Path(
        train(
            tiny_cfg(synth, out, "train.epochs=1", "train.max_steps_per_epoch=1", "train.val_every=0"), progress=False
        )["best"]
    )


# -- a shared machine ----------------------------------------------------------------------------
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


def test_train_threads_through_the_config_and_the_start_summary(synth, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert main(["train", "--config", "demo", "--set", f"data.root={synth}", "--print-config", "--threads", "1"]) == 0
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
        *TINY,
        "--no-progress",
    ]
    assert main(["train", "--config", "demo", "--set", f"data.root={synth}", "--out", str(tmp_path / "a"), *args]) == 0
    expected = min(before, max(1, available_cores() - 1))
    thread_word = "thread" if expected == 1 else "threads"
    assert f"{expected} CPU {thread_word} beside 1 loader worker" in capsys.readouterr().out
    assert torch.get_num_threads() == before


# -- fine-tuning ---------------------------------------------------------------------------------
def test_init_from_loads_every_weight_that_fits_and_names_the_rest(trained, tmp_path):
    from phgmm.config import apply_overrides
    from phgmm.engine.builders import build_model_from_config
    from phgmm.engine.checkpoint import init_from_weights, load_checkpoint

    source = load_checkpoint(trained)["model"]
    cfg = apply_overrides(tiny_cfg(tmp_path, tmp_path / "x"), ["model.num_classes=5"])
    model = build_model_from_config(cfg)
    fresh = {k: v.clone() for k, v in model.state_dict().items()}
    line = init_from_weights(model, trained)
    loaded = model.state_dict()
    other = [k for k in loaded if k in source and source[k].shape != loaded[k].shape]
    assert other, "a 5-class model has tensors of another shape than the 12-class source"
    for k, v in loaded.items():
        if k in other:
            torch.testing.assert_close(v, fresh[k], rtol=0, atol=0, msg=k)  # fresh, as built
        else:
            torch.testing.assert_close(v, source[k], rtol=0, atol=0, msg=k)  # the source's, bit for bit
    assert line.startswith(f"model.init_from {trained}: loaded {len(loaded) - len(other)} of {len(loaded)} tensors")
    assert other[0] in line and "another shape" in line


def test_init_from_through_the_cli_starts_a_fresh_schedule(synth, trained, tmp_path, capsys):
    from phgmm.engine.checkpoint import load_checkpoint

    table = tmp_path / "five.yaml"
    table.write_text(
        "name: five\nid_source: cityscapesscripts\nclasses:\n"
        "  - {name: other, names: '*'}\n  - {name: sky, names: [sky]}\n"
        "  - {name: road, names: [road]}\n  - {name: car, names: [car, truck, bus]}\n"
        "  - {name: person, names: [person]}\nignore_ids: []\n"
    )
    out = tmp_path / "fine"
    assert (
        main(
            [
                "train",
                "--config",
                "demo",
                "--set",
                f"data.root={synth}",
                "--out",
                str(out),
                "--set",
                f"data.class_table={table}",
                "--set",
                "model.num_classes=5",
                "--set",
                f"model.init_from={trained}",
                "--set",
                "data.size=[128,64]",
                "--set",
                "data.num_workers=0",
                *TINY,
                "--set",
                "train.epochs=1",
                "--set",
                "train.max_steps_per_epoch=2",
                "--set",
                "train.val_every=0",
                "--set",
                "train.batch_size=2",
                "--no-progress",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert f"model.init_from {trained}: loaded" in text and "another shape" in text
    last = load_checkpoint(out / "checkpoints" / "last.pt")
    assert last["global_step"] == 2 and last["epoch"] == 1  # step 0 + this run's 2 steps
    assert len(last["optimizer"]["state"]) > 0  # its own optimiser


# -- predict -------------------------------------------------------------------------------------
def test_predict_skip_existing_continues_an_interrupted_run(checkpoint, tmp_path, capsys):  # noqa: F811
    inputs = tmp_path / "in"
    for i in range(3):
        _image(inputs / f"img{i}.png", i)
    out = tmp_path / "out"
    base = ["predict", str(inputs), "--checkpoint", str(checkpoint), "--out", str(out), "--no-progress"]
    assert main(base) == 0
    (out / "overlay" / "img1.jpg").unlink()  # as if killed before its last file
    stamp = {p: p.stat().st_mtime_ns for p in (out / "labels").glob("*.png")}
    assert main(base) == 2  # existing outputs: refused, naming the way on
    assert "--skip-existing" in capsys.readouterr().err
    assert main([*base, "--skip-existing"]) == 0
    assert "2 of 3 inputs already have all their outputs" in capsys.readouterr().err
    assert (out / "overlay" / "img1.jpg").is_file()
    for p, t in stamp.items():  # the finished ones were not redone
        assert (p.stat().st_mtime_ns == t) == (p.name != "img1.png"), p
    with pytest.raises(SystemExit, match="--skip-existing keeps finished outputs and --overwrite replaces them"):
        main([*base, "--skip-existing", "--overwrite"])


def test_uncertainty_gives_a_softmax_entropy_map_for_a_baseline(tmp_path):
    from phgmm.config import apply_overrides, config_to_dict, load_config
    from phgmm.engine.builders import build_model_from_config
    from phgmm.engine.checkpoint import save_checkpoint

    cfg = apply_overrides(load_config("demo"), ["model.name=fcn8s", "data.size=[64,32]"])
    model = build_model_from_config(cfg, inference=True, pretrained=False).eval()
    ckpt = save_checkpoint(tmp_path / "fcn.pt", {"model": model.state_dict(), "config": config_to_dict(cfg)})
    _image(tmp_path / "in" / "a.png", 0, size=(64, 32))
    out = tmp_path / "out"
    assert (
        main(
            [
                "predict",
                str(tmp_path / "in"),
                "--checkpoint",
                str(ckpt),
                "--out",
                str(out),
                "--uncertainty",
                "--no-progress",
            ]
        )
        == 0
    )
    entropy = np.load(out / "entropy" / "a.npy")
    assert entropy.shape == (32, 64) and 0 <= entropy.min() and entropy.max() <= np.log(12) + 1e-5
    assert (out / "entropy" / "a.png").is_file() and not (out / "mi").exists()
    with pytest.raises(SystemExit, match="no latent distribution"):  # samples of what? refused
        main(
            [
                "predict",
                str(tmp_path / "in"),
                "--checkpoint",
                str(ckpt),
                "--out",
                str(tmp_path / "o2"),
                "--uncertainty",
                "--samples",
                "4",
                "--no-progress",
            ]
        )


# -- the package and its files -------------------------------------------------------------------
def test_import_phgmm_then_config_load_config():
    code = "import phgmm; print(phgmm.config.load_config('demo', ['train.epochs=2']).train.epochs)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "2"


def test_published_and_exported_files_are_readable_by_others(checkpoint, tmp_path):  # noqa: F811
    mask = os.umask(0o022)
    os.umask(mask)
    expected = 0o666 & ~mask
    assert main(["publish", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "pub")]) == 0
    assert (
        main(
            ["export", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "m.onnx"), "--exporter", "torchscript"]
        )
        == 0
    )
    for path in (tmp_path / "pub" / "model.safetensors", tmp_path / "pub" / "config.json", tmp_path / "m.onnx"):
        assert stat.S_IMODE(path.stat().st_mode) == expected, path


def test_onnxruntime_waits_passively_under_the_phgmm_command(checkpoint, tmp_path, monkeypatch):  # noqa: F811
    from phgmm.engine.inference.export import OnnxPredictor, export_checkpoint

    path, _ = export_checkpoint(checkpoint, tmp_path / "m.onnx", exporter="torchscript")
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    options = OnnxPredictor(path, threads=1).session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
