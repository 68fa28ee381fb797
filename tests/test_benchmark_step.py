"""The step ``phgmm benchmark`` times is the step ``phgmm train`` runs: for every registered network,
the same loss terms on the same batch from the same weights, two steps in a row (the second reads
the first update: the optimiser's settings)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from phgmm.benchmark.step import train_step
from phgmm.config import apply_overrides, load_config
from phgmm.engine.training.trainer import Trainer
from phgmm.models import MODEL_NAMES

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory) -> Path:
    from phgmm.data.synthetic import generate_dataset

    root = tmp_path_factory.mktemp("synth")
    generate_dataset(root, num=4, size=(64, 64), seed=3, fmt="cityscapes", val_fraction=0.25, progress=False)
    return root


def _config(root: Path, out: Path, name: str):
    # a loss and an optimiser unlike the defaults, so that a step built from defaults would differ
    return apply_overrides(
        load_config(REPO / "configs" / "demo.yaml"),
        [
            f"data.root={root}",
            "data.size=[64, 64]",
            "data.num_workers=0",
            f"output_dir={out}",
            f"model.name={name}",
            "model.postnet=full",
            "model.decoder_units=[1, 1, 1, 1]",
            "model.latent_dim=8",
            "model.component_dim=4",
            "model.local_channels=16",
            "model.global_dim=4",
            "model.num_components=2",
            "loss.lambda_s=0.7",
            "loss.lambda_g=0.5",
            "loss.ce_scale=sum",
            "train.lr=0.01",
            "train.weight_decay=0.1",
            "train.grad_clip=0.5",
            "train.amp=off",
            "train.batch_size=2",
            "train.val_every=0",
        ],
    )


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_the_benchmarks_step_gives_the_trainers_loss(name, synth_root, tmp_path):
    cfg = _config(synth_root, tmp_path / name, name)
    trainer = Trainer(cfg, progress=False)
    try:
        model = trainer.model.train()
        twin = copy.deepcopy(model)  # the same weights, before any step
        g = torch.Generator().manual_seed(1)
        x = torch.randn(2, 3, 64, 64, generator=g)
        y = torch.randint(0, cfg.model.num_classes, (2, 64, 64), generator=g)
        y[:, :4] = 255  # a band of ignored pixels
        trained = []
        for seed in (1, 2):  # dropout and sampling draw alike in both
            torch.manual_seed(seed)
            trained.append(trainer.run_step(x, y)["terms"])
        step = train_step(twin, x, y, cfg, trainer.device, trainer.amp, trainer.fmt)
        timed = []
        for seed in (1, 2):
            torch.manual_seed(seed)
            timed.append(step())
    finally:
        trainer.writer.close()
        trainer.close()
    for a, b in zip(trained, timed, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)
    assert not torch.equal(trained[0], trained[1])  # the update changed the loss: settings were read
