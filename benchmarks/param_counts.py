"""Parameter counts of PHGMM (per part) and of the baselines, as Markdown tables.

    python benchmarks/param_counts.py                      # ResNet-101, C = 12 (the paper's setting)
    python benchmarks/param_counts.py --backbone resnet50 --json counts.json

Only the modules are built (no forward pass), so this takes a few seconds on a CPU.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from phgmm.models import MODEL_NAMES, build_model
from phgmm.models.postnet import PostNet


def count(module: torch.nn.Module | None) -> int:
    return sum(p.numel() for p in module.parameters()) if module is not None else 0


def phgmm_counts(backbone: str, num_classes: int) -> dict[str, int]:
    model = build_model("phgmm", num_classes=num_classes, backbone=backbone, postnet="full")
    counts = dict(model.parameter_counts())
    light = PostNet(num_classes, model.num_components, model.latent_dim, backbone, "light")
    counts["postnet_full"] = counts.pop("postnet")
    counts["postnet_light"] = count(light)
    counts["training_total_full"] = counts["inference_total"] + counts["postnet_full"]
    counts["training_total_light"] = counts["inference_total"] + counts["postnet_light"]
    counts.pop("training_total", None)
    return counts


def baseline_counts(backbone: str, num_classes: int) -> dict[str, dict[str, int]]:
    out = {}
    for name in MODEL_NAMES:
        if name == "phgmm":
            continue
        model = build_model(name, num_classes=num_classes, backbone=backbone)
        out[name] = {"encoder": count(model.encoder), "head": count(model.head), "total": count(model)}
    return out


def m(n: int) -> str:
    return f"{n / 1e6:.2f} M"


def markdown(backbone: str, num_classes: int, ph: dict[str, int], bl: dict[str, dict[str, int]]) -> str:
    rows = [
        ("Encoder", "encoder"),
        ("Local space z (summary, mixture heads, FC_k, fusion)", "local_space"),
        ("Global space g", "global_space"),
        ("Decoder + merge head", "decoder"),
        ("**Inference total**", "inference_total"),
        ("PostNet, full (same depth as the encoder)", "postnet_full"),
        ("PostNet, light (ResNet-18, half resolution)", "postnet_light"),
        ("**Training total, full PostNet**", "training_total_full"),
        ("**Training total, light PostNet**", "training_total_light"),
    ]
    lines = [
        f"PHGMM, {backbone}, C = {num_classes} (defaults K = 12, L = 256, D = 64, M = 64, 3C decoder channels)",
        "",
        "| part | parameters |",
        "|---|---:|",
    ]
    lines += [f"| {label} | {m(ph[key])} |" for label, key in rows]
    names = {
        "deeplabv3": "DeepLab v3 (ASPP, OS 8)",
        "fcn8s": "FCN-8s",
        "pspnet": "PSPNet (OS 8)",
        "unet": "U-Net-style encoder–decoder",
    }
    lines += [
        "",
        f"Baselines on the same {backbone} code",
        "",
        "| model | encoder | head / decoder | total |",
        "|---|---:|---:|---:|",
        f"| PHGMM (inference) | {m(ph['encoder'])} | {m(ph['inference_total'] - ph['encoder'])} | "
        f"{m(ph['inference_total'])} |",
    ]
    lines += [f"| {names.get(k, k)} | {m(v['encoder'])} | {m(v['head'])} | {m(v['total'])} |" for k, v in bl.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet101")
    parser.add_argument("--num-classes", type=int, default=12)
    parser.add_argument("--json", default=None, help="also write the counts as JSON here")
    args = parser.parse_args(argv)
    ph = phgmm_counts(args.backbone, args.num_classes)
    bl = baseline_counts(args.backbone, args.num_classes)
    print(markdown(args.backbone, args.num_classes, ph, bl))
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {"backbone": args.backbone, "num_classes": args.num_classes, "phgmm": ph, "baselines": bl}, indent=2
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
