"""``phgmm configs`` and ``phgmm models``: what ships with phgmm."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "configs",
        help="list the shipped configs and experiment files",
        description="List the configs shipped with phgmm; pass a name to --config "
        "(e.g. `phgmm train --config demo`) from any folder.",
    )
    p.set_defaults(func=run)
    m = sub.add_parser(
        "models",
        help="list the model names and backbones",
        description="List the networks (model.name) and encoders (model.backbone).",
    )
    m.set_defaults(func=run_models)
    return p


def run(args: argparse.Namespace) -> int:
    from ..configs import CONFIG_DIR, list_configs

    for name, text in list_configs():
        print(f"{name:34s} {text}")
    print(f"\n(in {CONFIG_DIR})")
    return 0


def run_models(args: argparse.Namespace) -> int:
    from ..models import MODEL_NAMES, MODEL_NOTES

    width = max(map(len, MODEL_NAMES)) + 2
    for name in MODEL_NAMES:
        print(f"{name:{width}s}{MODEL_NOTES[name]}")
    print(
        "\nbackbones (model.backbone): resnet18, resnet34, resnet50, resnet101, resnet152 "
        "(torchvision's parameter names; trained from scratch unless model.pretrained_backbone)"
    )
    return 0
