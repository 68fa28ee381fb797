"""Every Python block of the README and docs/ runs, as written, in a fresh interpreter.

Blocks of one page run in order in one namespace (as a reader runs them), in a temporary folder
that holds what they name: ``runs/demo/checkpoints/best.pt`` (a one-step model), the YAML table a
page shows (``# my_table.yaml``), and tiny data sets where a page names ``/data/…``. The only
edits to the text are listed, visibly, in :data:`EDITS`: the data location, and the README's
ResNet-101 at 768×384 run at a small size (the same calls; three minutes on two cores otherwise).
The README's API sentence (``phgmm.engine.training.train(cfg)`` after a plain ``import phgmm``) is
run the same way (it raised AttributeError unless the submodule had been imported first).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from support import tiny_train_args

from phgmm.cli import main

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
TINY = [
    "data.size=[128, 64]",
    "model.decoder_units=[1, 1, 1, 1]",
    "model.latent_dim=16",
    "model.component_dim=8",
    "model.local_channels=32",
    "model.global_dim=8",
    "model.num_components=3",
    "train.batch_size=2",
    "eval.batch_size=2",
    "eval.tsne=false",
    "eval.latent=false",
    "data.num_workers=0",
    "train.max_steps_per_epoch=1",
]

#: (page, text as written, text as run): each must match exactly once, so an edit of the page shows here
EDITS = [
    ("README.md", 'backbone="resnet101"', 'backbone="resnet18"'),  # the paper's widths, a small encoder
    (
        "README.md",
        "torch.randn(2, 3, 384, 768), torch.randint(0, 12, (2, 384, 768))",
        "torch.randn(2, 3, 64, 128), torch.randint(0, 12, (2, 64, 128))",
    ),
]


def python_blocks(page: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", page.read_text(), re.S | re.M)


def _run(code: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def _fake_camvid(root: Path) -> None:
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for i in range(2):
            (root / split).mkdir(parents=True, exist_ok=True)
            (root / f"{split}annot").mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / split / f"f{i}.png"), rng.integers(0, 256, (36, 48, 3), dtype=np.uint8))
            cv2.imwrite(str(root / f"{split}annot" / f"f{i}.png"), rng.integers(0, 12, (36, 48), dtype=np.uint8))


def _fake_folder(root: Path, ids: list[int]) -> None:
    rng = np.random.default_rng(1)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir(parents=True)
    for i in range(2):
        cv2.imwrite(str(root / "images" / f"abc{i}.jpg"), rng.integers(0, 256, (32, 48, 3), dtype=np.uint8))
        cv2.imwrite(str(root / "masks" / f"abc{i}.png"), rng.choice(ids, (32, 48)).astype(np.uint8))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A folder holding what the blocks name: a one-step model at runs/demo, data under data/."""
    from phgmm.data.synthetic import generate_dataset

    work = tmp_path_factory.mktemp("readme")
    data = work / "data"
    generate_dataset(data / "cityscapes", num=3, size=(128, 64), seed=1, fmt="cityscapes", progress=False)
    _fake_camvid(data / "CamVid")
    _fake_folder(data / "mine", [0, 9, 1, 2, 3, 255])
    assert (
        main(
            tiny_train_args(
                work / "runs" / "demo",
                f"data.root={data / 'cityscapes'}",
                "train.epochs=1",
                "train.val_every=0",
                tiny=TINY,
            )
        )
        == 0
    )
    return work


def _page_script(page: Path, work: Path) -> str:
    blocks = python_blocks(page)
    text = "\n".join(f"# --- block {i + 1}\n{b}" for i, b in enumerate(blocks))
    for name, written, run in EDITS:
        if page.name == name:
            assert text.count(written) == 1, f"{page.name}: expected {written!r} once (update EDITS)"
            text = text.replace(written, run)
    return text.replace('"/data/', f'"{work / "data"}/')  # the data location, nothing else


@pytest.mark.parametrize("page", [p for p in PAGES if python_blocks(p)], ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_python_block_runs_as_written(page, workdir):
    # a YAML block headed by its file name is written where the page's Python reads it
    for block in re.findall(r"^```yaml\n(.*?)^```", page.read_text(), re.S | re.M):
        first = block.splitlines()[0]
        if first.startswith("# ") and first[2:].strip().endswith((".yaml", ".yml")):
            (workdir / first[2:].strip()).write_text(block)
    done = _run(_page_script(page, workdir), workdir)
    assert done.returncode == 0, f"{page.name}:\n{done.stderr[-3000:]}"


def test_the_readme_api_sentence_runs_after_a_plain_import(workdir, tmp_path):
    text = (REPO / "README.md").read_text()
    for call in (
        'phgmm.config.load_config("demo", ["train.epochs=2"])',
        "phgmm.engine.training.train(cfg)",
        "phgmm.engine.evaluation.evaluate_checkpoint(ckpt,",
        "phgmm.experiments.load_experiment(name)",
    ):
        assert call in text.replace("\n", " "), call
    overrides = [*TINY, f"data.root={workdir / 'data' / 'cityscapes'}", f"output_dir={tmp_path / 'run'}"]
    code = f"""
import phgmm
cfg = phgmm.config.load_config("demo", ["train.epochs=2"])
phgmm.config.apply_overrides(cfg, {overrides!r})           # tiny, on the synthetic scenes
summary = phgmm.engine.training.train(cfg, progress=False)
ckpt, out_dir = summary["best"], {str(tmp_path / "ev")!r}
phgmm.engine.evaluation.evaluate_checkpoint(ckpt, out_dir, progress=False)
name = "experiments/compare_camvid"
exp = phgmm.experiments.load_experiment(name)
assert callable(phgmm.experiments.run_experiment) and callable(phgmm.engine.inference.predict_paths)
"""
    done = _run(code, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "ev" / "metrics.json").is_file()
