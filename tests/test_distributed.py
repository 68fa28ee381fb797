"""Two CPU processes on the gloo backend: identical weights after training steps, and distributed
evaluation equal to single-process evaluation (torch.multiprocessing, as torchrun would launch)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from support import tiny_cfg


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, root: str, out: str) -> None:
    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    torch.set_num_threads(1)
    from phgmm.engine import distributed as du
    from phgmm.engine.builders import build_dataset_from_config
    from phgmm.engine.evaluation.evaluate import evaluate_model
    from phgmm.engine.loaders import make_eval_loader
    from phgmm.engine.training.trainer import train

    cfg = tiny_cfg(
        Path(root),
        Path(out) / "run",
        "train.epochs=2",
        "train.batch_size=2",
        "train.max_steps_per_epoch=2",
        "train.val_every=1",
    )
    summary = train(cfg, progress=False)
    model = summary["model"]
    flat = torch.cat([p.detach().flatten() for p in model.state_dict().values() if p.is_floating_point()])
    torch.save(flat, Path(out) / f"weights{rank}.pt")
    val = build_dataset_from_config(cfg, cfg.data.val_split, train=False)
    loader = make_eval_loader(val, 1, 0)
    res = evaluate_model(model, loader, cfg, torch.device("cpu"), trimap=True, progress=False)
    if rank == 0:
        latent = {k: v for k, v in res.metrics["latent"].items() if isinstance(v, (int, float))}
        torch.save(
            {
                "confusion": torch.tensor(res.metrics["confusion"]),
                "trimap": res.metrics["trimap"],
                "z": torch.from_numpy(res.z_points),
                "latent": latent,
            },
            Path(out) / "dist_eval.pt",
        )
        torch.save(model.state_dict(), Path(out) / "model.pt")
    du.cleanup()


def test_two_process_training_and_evaluation(tmp_path):
    from phgmm.data.synthetic import generate_dataset

    root = tmp_path / "synth"
    generate_dataset(root, num=10, size=(128, 64), seed=5, fmt="cityscapes", val_fraction=0.3, progress=False)
    mp.spawn(_worker, args=(2, _free_port(), str(root), str(tmp_path)), nprocs=2, join=True)

    w0, w1 = torch.load(tmp_path / "weights0.pt"), torch.load(tmp_path / "weights1.pt")
    assert torch.equal(w0, w1), "ranks diverged"

    # single-process evaluation of the same weights
    from phgmm.engine.builders import build_dataset_from_config, build_model_from_config
    from phgmm.engine.evaluation.evaluate import evaluate_model
    from phgmm.engine.loaders import make_eval_loader

    cfg = tiny_cfg(root, tmp_path / "single")
    model = build_model_from_config(cfg)
    model.load_state_dict(torch.load(tmp_path / "model.pt"))
    val = build_dataset_from_config(cfg, cfg.data.val_split, train=False)
    assert len(val) == 3  # odd on purpose: a padded sampler would count an image twice
    res = evaluate_model(model, make_eval_loader(val, 1, 0), cfg, torch.device("cpu"), progress=False)
    dist = torch.load(tmp_path / "dist_eval.pt")
    assert torch.equal(dist["confusion"], torch.tensor(res.metrics["confusion"]))
    assert dist["trimap"] == res.metrics["trimap"]
    assert dist["z"].shape == torch.from_numpy(res.z_points).shape
    # latent-use measures gathered from both ranks equal the single process's: the swap partners
    # are drawn over the whole set in dataset order, whichever process holds an image
    single = res.metrics["latent"]
    for key in ("z_active_units", "g_active_units", "z_units", "g_units", "images"):
        assert dist["latent"][key] == single[key], key
    for key in (
        "swap_z_random_pixels_changed",
        "swap_g_far_pixels_changed",
        "swap_z_zero_miou",
        "partner_random_distance",
        "untrained_z_active_units",
    ):
        assert dist["latent"][key] == pytest.approx(single[key], rel=1e-5, abs=1e-9), key
    # I(x; z), I(x; g) of a nearly untrained network are near-zero differences of log-densities of
    # about a nat: their rounding is absolute (seen: 6e-9 apart at -4.8e-4 on a busy machine)
    for key in ("mi_z", "mi_g"):
        assert dist["latent"][key] == pytest.approx(single[key], rel=1e-5, abs=1e-7), key
    assert dist["latent"]["g_kl"] == pytest.approx(single["g_kl"], rel=1e-5)
    assert dist["latent"]["z_kl_to_posterior"] == pytest.approx(single["z_kl_to_posterior"], rel=1e-5)

    # the two-process checkpoint resumes in one process (a different world size)
    from phgmm.engine.checkpoint import load_checkpoint
    from phgmm.engine.training.trainer import train

    last = tmp_path / "run" / "checkpoints" / "last.pt"
    assert load_checkpoint(last)["world_size"] == 2
    resumed = tiny_cfg(
        root,
        tmp_path / "run",
        "train.epochs=3",
        "train.batch_size=2",
        "train.max_steps_per_epoch=2",
        "train.val_every=1",
    )
    summary = train(resumed, resume=last, progress=False)
    assert [h["epoch"] for h in summary["history"]] == [1, 2, 3]
    assert load_checkpoint(last)["world_size"] == 1


def _worker_no_postnet(rank: int, world: int, port: int, root: str, out: str) -> None:
    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    torch.set_num_threads(1)
    from phgmm.engine import distributed as du
    from phgmm.engine.training.trainer import train

    cfg = tiny_cfg(
        Path(root),
        Path(out) / "nopost",
        "train.epochs=1",
        "train.batch_size=2",
        "train.max_steps_per_epoch=3",
        "train.val_every=0",
        "model.postnet=null",
    )
    train(cfg, progress=False)  # used to fail at step 2: the log-variance head got no gradient
    du.cleanup()


def test_two_process_training_without_postnet(tmp_path):
    from phgmm.data.synthetic import generate_dataset

    root = tmp_path / "synth"
    generate_dataset(root, num=16, size=(128, 64), seed=5, fmt="cityscapes", val_fraction=0.25, progress=False)
    mp.spawn(_worker_no_postnet, args=(2, _free_port(), str(root), str(tmp_path)), nprocs=2, join=True)
    from phgmm.engine.checkpoint import load_checkpoint

    assert load_checkpoint(tmp_path / "nopost" / "checkpoints" / "last.pt")["global_step"] == 3


def test_a_device_that_cannot_serve_is_one_clear_line_before_any_work(monkeypatch, tmp_path, capsys):
    from phgmm.cli import main
    from phgmm.engine.precision import check_device

    assert check_device("cpu") == torch.device("cpu") and check_device(" CPU ") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert check_device("auto") == torch.device("cpu")
    for name, message in (("tpu", "not a device name"), ("mps", "runs on cpu or cuda")):
        with pytest.raises(ValueError, match=message):
            check_device(name)
    monkeypatch.setattr(torch.version, "cuda", None)
    with pytest.raises(ValueError, match=r"device 'cuda': this PyTorch .* is a CPU build without CUDA"):
        check_device("cuda")
    monkeypatch.setattr(torch.version, "cuda", "12.8")  # a CUDA build ...
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)  # ... on a machine without a GPU
    with pytest.raises(ValueError, match="no CUDA GPU is visible to PyTorch"):
        check_device("cuda")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ValueError, match=r"'cuda:1': only 1 CUDA GPU\(s\) are visible"):
        check_device("cuda:1")
    # every command says it in one line (exit 2, no traceback), before reading any data or checkpoint
    monkeypatch.setattr(torch.version, "cuda", None)
    for argv in (
        ["train", "--config", "demo", "--set", "device=cuda", "--out", str(tmp_path / "t")],
        [
            "predict",
            "--checkpoint",
            str(tmp_path / "missing.pt"),
            str(tmp_path),
            "--out",
            str(tmp_path / "p"),
            "--device",
            "cuda",
        ],
        ["benchmark", "--device", "cuda"],
    ):
        assert main(argv) == 2, argv
        assert "CPU build without CUDA" in capsys.readouterr().err, argv
    assert (
        main(
            [
                "predict",
                "--onnx",
                str(tmp_path / "m.onnx"),
                str(tmp_path),
                "--out",
                str(tmp_path / "o"),
                "--device",
                "cuda",
            ]
        )
        == 2
    )
    assert "an ONNX model runs on onnxruntime's CPU provider" in capsys.readouterr().err
