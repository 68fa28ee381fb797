"""What the test files share: the tiny PHGMM (as config overrides, as a Config and as a module),
``--set`` arguments, a tiny training's ``phgmm train`` command line, the one-line error check,
small data (images, a user's folder data set, a toy evaluation set). Imported by the test files as
``support``; not a test module, and the only module a test file imports helpers from."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

REPO = Path(__file__).resolve().parents[1]

#: the tiny PHGMM's network settings, as ``--set``/config overrides
TINY_MODEL = [
    "model.decoder_units=[1, 1, 1, 1]",
    "model.latent_dim=16",
    "model.component_dim=8",
    "model.local_channels=32",
    "model.global_dim=8",
    "model.num_components=3",
]

#: a tiny PHGMM on the demo config: a case trains in a few seconds on a CPU
TINY = [
    "data.size=[128, 64]",
    *TINY_MODEL,
    "train.batch_size=2",
    "eval.batch_size=2",
    "eval.tsne=false",
    "train.log_every=1",
]


def set_args(*overrides: str) -> list[str]:
    """``["--set", o1, "--set", o2, …]``."""
    return [a for o in overrides for a in ("--set", o)]


def tiny_train_args(out: Path | str | None, *overrides: str, tiny: Sequence[str] = TINY) -> list[str]:
    """``train --config demo --out OUT --no-progress`` then ``--set`` for each of ``tiny`` (the tiny
    PHGMM, or a test file's own variant of it) and then ``overrides``: a tiny training's command
    line, for :func:`phgmm.cli.main` or after ``python -m phgmm``. ``out=None`` leaves out ``--out``."""
    out_args = [] if out is None else ["--out", str(out)]
    return ["train", "--config", "demo", *out_args, "--no-progress", *set_args(*tiny, *overrides)]


def one_line_error(capsys, command: str) -> str:
    """The one stderr line of a refused ``phgmm COMMAND`` (no traceback), returned for its words."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith(f"phgmm {command}: error: "), err
    return lines[0]


def tiny_config(*overrides: str):
    """The demo config with the tiny PHGMM at 128×64 (W×H), then ``overrides``."""
    from phgmm.config import apply_overrides, load_config

    return apply_overrides(
        load_config(REPO / "configs" / "demo.yaml"), ["data.size=[128, 64]", *TINY_MODEL, *overrides]
    )


def tiny_cfg(root: Path, out: Path, *extra: str):
    """:func:`tiny_config` training on the data set at ``root`` into ``out``: 3 epochs of batches
    of 4, validating after each, no loader workers; ``extra`` overrides last."""
    return tiny_config(
        f"data.root={root}",
        "data.num_workers=0",
        f"output_dir={out}",
        "train.batch_size=4",
        "train.epochs=3",
        "train.val_every=1",
        "eval.batch_size=2",
        "eval.tsne=false",
        *extra,
    )


#: the smallest PHGMM built directly: ResNet-18, one unit per decoder group
SMALL_PHGMM = dict(backbone="resnet18", decoder_units=(1, 1, 1, 1))

#: a toy PHGMM with small latent spaces and no PostNet (the latent-use measures)
TOY_PHGMM = dict(
    **SMALL_PHGMM,
    latent_dim=8,
    component_dim=4,
    local_channels=16,
    global_dim=4,
    num_components=3,
    postnet=None,
)


def four_class_phgmm(postnet: str | None = "light", **kwargs):
    """A 4-class PHGMM with 2 components on 8 latent dimensions, built after seeding with 0."""
    from phgmm import PHGMM

    torch.manual_seed(0)
    return PHGMM(num_classes=4, **SMALL_PHGMM, latent_dim=8, num_components=2, postnet=postnet, **kwargs)


class Pairs(Dataset):
    """``n`` random images of ``h``×``w`` with 12-class labels, a dominant class per image and the
    top 4 rows ignored; brightness rises with the index."""

    def __init__(self, n: int = 7, h: int = 64, w: int = 96) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 3, h, w, generator=g) * torch.linspace(0.2, 3, n)[:, None, None, None]
        self.y = torch.randint(0, 12, (n, h, w), generator=g)
        self.y[:, :4] = 255
        for i in range(n):  # a dominant class per image
            self.y[i, 10:50] = 1 + i % 3

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


def toy_eval_config(partners: tuple[str, ...] = ()):
    """A 12-class Config for evaluating the toy PHGMM in fp32 with the latent measures of
    tests/test_metrics_latent.py (``partners`` for the swap test); the others are off (they are
    tested in tests/test_latent_use.py)."""
    from phgmm.config import Config

    cfg = Config()
    cfg.model.num_classes = 12
    cfg.train.channels_last = "false"
    cfg.train.amp = "off"  # the hand-computed references are fp32 (auto may be bf16 on a CPU)
    cfg.eval.latent_partners = partners
    cfg.eval.latent_untrained = False
    cfg.eval.latent_sensitivity_batches = 0
    cfg.eval.latent_mi_samples = 2
    return cfg


def write_image(path: Path, seed: int, size=(96, 48)) -> Path:
    """A random RGB image of ``size`` (W×H) at ``path`` (PNG, or JPEG by its suffix)."""
    from phgmm.visualize import save_png

    rgb = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    if path.suffix == ".png":
        return save_png(path, rgb)
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), rgb[:, :, ::-1])
    return path


# -- a user's own folder data set: 5 classes, their own class table --------------------------------
#: one training step on a CPU, without the latent measures or loader workers
ONE_STEP = ["eval.latent=false", "data.num_workers=0", "train.epochs=1", "train.max_steps_per_epoch=1"]

#: the user's table: class 0 is a real class (road), not a background
FOLDER_TABLE = """name: mydata
classes:
  - {name: road,     color: [128, 64, 128], ids: [0]}
  - {name: car,      color: [0, 0, 142],    ids: [1]}
  - {name: tree,     color: [107, 142, 35], ids: [2]}
  - {name: sky,      color: [70, 130, 180], ids: [3]}
  - {name: building, color: [70, 70, 70],   ids: [4]}
ignore_ids: [255]
"""
FOLDER_COLORS = [(128, 64, 128), (0, 0, 142), (107, 142, 35), (70, 130, 180), (70, 70, 70)]
FOLDER_W, FOLDER_H = 128, 64


def folder_ids(seed: int) -> np.ndarray:
    """Five horizontal bands, one per class, shifted per image: every class in every mask."""
    rows = (np.arange(FOLDER_H)[:, None] + 3 * seed) % FOLDER_H * 5 // FOLDER_H
    return np.broadcast_to(rows, (FOLDER_H, FOLDER_W)).astype(np.uint8).copy()


def write_mask(path: Path, ids: np.ndarray, kind: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "png":
        cv2.imwrite(str(path.with_suffix(".png")), ids)
        return path.with_suffix(".png")
    if kind == "palette":  # mode P, index = class (VOC's way)
        img = Image.fromarray(ids, mode="P")
        pal = [v for c in FOLDER_COLORS for v in c] + [0] * (768 - 3 * len(FOLDER_COLORS))
        img.putpalette(pal)
        img.save(path.with_suffix(".png"))
        return path.with_suffix(".png")
    rgb = np.asarray(FOLDER_COLORS, np.uint8)[ids]
    if kind == "colour":
        cv2.imwrite(str(path.with_suffix(".png")), rgb[..., ::-1])
        return path.with_suffix(".png")
    cv2.imwrite(str(path.with_suffix(".jpg")), ids * 50, [cv2.IMWRITE_JPEG_QUALITY, 75])  # "jpeg"
    return path.with_suffix(".jpg")


def make_folder(root: Path, n: int = 4, splits: tuple[str, ...] = ("train", "val"), kind: str = "png") -> Path:
    """``root/images[/split]/NN.jpg`` and ``root/masks[/split]/NN.png`` (no split folders when
    ``splits`` is empty) and ``root/classes.yaml``; returns ``root``."""
    rng = np.random.default_rng(0)
    for split in splits or ("",):
        for i in range(n):
            name = f"{split}{i:02d}"
            img = root / "images" / split / f"{name}.jpg"
            img.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(img), rng.integers(0, 256, (FOLDER_H, FOLDER_W, 3), dtype=np.uint8))
            write_mask(root / "masks" / split / name, folder_ids(i), kind)
    (root / "classes.yaml").write_text(FOLDER_TABLE)
    return root
