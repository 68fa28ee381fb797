"""Fine-tuning with ``model.init_from``: every weight whose shape fits is loaded bit for bit, the
rest are named and left as built, and the run starts a fresh schedule with its own optimiser."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from support import TINY_MODEL, set_args, tiny_cfg

from phgmm.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def trained(synth_root, tmp_path_factory) -> Path:
    """best.pt of one training step of a tiny PHGMM (12 classes)."""
    from phgmm.engine.training.trainer import train

    out = tmp_path_factory.mktemp("run")
    return Path(
        train(
            tiny_cfg(synth_root, out, "train.epochs=1", "train.max_steps_per_epoch=1", "train.val_every=0"),
            progress=False,
        )["best"]
    )


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


def test_init_from_through_the_cli_starts_a_fresh_schedule(synth_root, trained, tmp_path, capsys):
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
                f"data.root={synth_root}",
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
                *set_args(*TINY_MODEL),
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
