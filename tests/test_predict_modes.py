"""``phgmm predict --mode slide --tile --stride --tta flip --scales --batch``: CLI wiring."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support import tiny_cfg, write_image

from phgmm.cli import build_parser, main

pytestmark = pytest.mark.usefixtures("one_thread")


def _labels(folder: Path) -> dict[str, np.ndarray]:
    from PIL import Image

    return {p.relative_to(folder).as_posix(): np.asarray(Image.open(p)) for p in sorted(folder.rglob("*.png"))}


def test_flags_parse():
    args = build_parser().parse_args(
        [
            "predict",
            "x",
            "--out",
            "o",
            "--checkpoint",
            "c",
            "--mode",
            "slide",
            "--tile",
            "768x384",
            "--stride",
            "512x256",
            "--tta",
            "flip",
            "--scales",
            "0.75,1.0,1.25",
            "--batch",
            "4",
            "--workers",
            "2",
            "--save-frames",
        ]
    )
    assert (args.mode, args.tile, args.stride, args.tta) == ("slide", (768, 384), (512, 256), "flip")
    assert args.scales == (0.75, 1.0, 1.25) and args.batch == 4 and args.workers == 2 and args.save_frames
    with pytest.raises(SystemExit):
        build_parser().parse_args(["predict", "x", "--out", "o", "--scales", "1,-2"])


def test_slide_at_the_training_size_equals_whole_and_larger_images_keep_their_size(checkpoint, tmp_path):  # noqa: F811
    folder = tmp_path / "in"
    write_image(folder / "train_size.png", 1, size=(128, 64))
    write_image(folder / "large.png", 2, size=(200, 100))
    whole, slide = tmp_path / "whole", tmp_path / "slide"
    base = ["predict", "--checkpoint", str(checkpoint), str(folder), "--no-progress"]
    assert main(base + ["--out", str(whole)]) == 0
    assert main(base + ["--out", str(slide), "--mode", "slide", "--stride", "64x32"]) == 0
    a, b = _labels(whole / "labels"), _labels(slide / "labels")
    np.testing.assert_array_equal(a["train_size.png"], b["train_size.png"])
    assert b["large.png"].shape == (100, 200)
    tta = tmp_path / "tta"
    assert (
        main(base + ["--out", str(tta), "--mode", "slide", "--tta", "flip", "--scales", "0.5,1.0", "--batch", "4"]) == 0
    )
    assert {k: v.shape for k, v in _labels(tta / "labels").items()} == {
        "large.png": (100, 200),
        "train_size.png": (64, 128),
    }


def test_batches_give_the_labels_of_single_images(checkpoint, tmp_path):  # noqa: F811
    folder = tmp_path / "in"
    for i in range(3):
        write_image(folder / f"im{i}.png", 10 + i, size=(96 + 16 * (i % 2), 48))  # two sizes, interleaved
    one, four = tmp_path / "one", tmp_path / "four"
    base = ["predict", "--checkpoint", str(checkpoint), str(folder), "--no-progress"]
    assert main(base + ["--out", str(one)]) == 0
    assert main(base + ["--out", str(four), "--batch", "4", "--workers", "1"]) == 0
    a, b = _labels(one / "labels"), _labels(four / "labels")
    assert a.keys() == b.keys() and len(a) == 3
    for k in a:  # batched convolutions may round differently: ties only
        assert (a[k] != b[k]).mean() < 1e-3, k


def test_tile_without_slide_is_refused(checkpoint, tmp_path):  # noqa: F811
    with pytest.raises(SystemExit, match="need --mode slide"):
        main(
            ["predict", "--checkpoint", str(checkpoint), str(tmp_path), "--out", str(tmp_path / "o"), "--tile", "64x32"]
        )
    with pytest.raises(SystemExit, match="--samples sets how many samples --uncertainty draws; add --uncertainty"):
        main(
            ["predict", "--checkpoint", str(checkpoint), str(tmp_path), "--out", str(tmp_path / "o"), "--samples", "4"]
        )
    assert not (tmp_path / "o").exists()


def test_evaluate_scores_with_the_same_slide_and_tta_options(tmp_path):
    """evaluate --mode slide with one window per image equals the plain score; --tta flip runs."""
    import json

    from phgmm.cli import main
    from phgmm.data.synthetic import generate_dataset
    from phgmm.engine.training.trainer import train

    root = tmp_path / "data"
    generate_dataset(root, num=6, size=(128, 64), seed=3, fmt="cityscapes", val_fraction=0.34, progress=False)
    ckpt = train(
        tiny_cfg(root, tmp_path / "run", "train.epochs=1", "train.max_steps_per_epoch=1", "train.val_every=0"),
        progress=False,
    )["best"]
    plain, slide, flip = tmp_path / "plain", tmp_path / "slide", tmp_path / "flip"
    assert main(["evaluate", "--checkpoint", ckpt, "--out", str(plain), "--no-progress"]) == 0
    assert (
        main(
            [
                "evaluate",
                "--checkpoint",
                ckpt,
                "--out",
                str(slide),
                "--no-progress",
                "--mode",
                "slide",
                "--tile",
                "128x64",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "evaluate",
                "--checkpoint",
                ckpt,
                "--out",
                str(flip),
                "--no-progress",
                "--tta",
                "flip",
                "--scales",
                "0.5,1.0",
            ]
        )
        == 0
    )
    a, b, c = (json.loads((d / "metrics.json").read_text()) for d in (plain, slide, flip))
    assert a["confusion"] == b["confusion"]
    assert sum(map(sum, c["confusion"])) == sum(map(sum, a["confusion"]))
    assert json.loads((flip / "metrics.json").read_text()) != a


def test_predict_skip_existing_continues_an_interrupted_run(checkpoint, tmp_path, capsys):
    inputs = tmp_path / "in"
    for i in range(3):
        write_image(inputs / f"img{i}.png", i)
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
    write_image(tmp_path / "in" / "a.png", 0, size=(64, 32))
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
