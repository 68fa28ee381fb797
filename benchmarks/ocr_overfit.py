"""HRNet-W18-Small against HRNet-W18-Small + OCR: how fast each fits a few real CamVid images.

The CamVid comparison (docs/results/compare_camvid_all) has HRNet + OCR 8 points below the plain
HRNet after 6 epochs (270 AdamW steps). This trains both networks, at their registered widths
(OCR: 512 mid, 256 key channels), on one fixed batch of CamVid training images with the
comparison's optimiser (AdamW 1e-3, weight decay 0.01) and reports the mIoU on that batch every
few steps: the main logits of both networks and, for HRNet + OCR, its soft-region (auxiliary)
head, which is HRNet's own classifier on the same features. Predictions use the batch's own
BatchNorm statistics, so the numbers measure fitting alone.

    python benchmarks/ocr_overfit.py --root ../shared/realdata/camvid --out docs/results/hrnet_ocr_overfit
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from phgmm.conventions import IGNORE_INDEX
from phgmm.data.datasets import build_dataset
from phgmm.losses import PHGMMLoss
from phgmm.models import build_model


def _batch_stat_forward(model: nn.Module, x: torch.Tensor) -> object:
    """Training-mode output with dropout off: BatchNorm normalises with the batch's statistics."""
    model.train()
    for m in model.modules():
        if isinstance(m, nn.Dropout2d | nn.Dropout):
            m.eval()
    with torch.no_grad():
        return model(x)


def _miou(pred: torch.Tensor, y: torch.Tensor, num_classes: int) -> float:
    """Mean IoU over the classes present in labels or predictions (IGNORE_INDEX ignored)."""
    keep = y != IGNORE_INDEX
    p, t = pred[keep].numpy(), y[keep].numpy()
    ious = []
    for c in range(num_classes):
        union = np.sum((p == c) | (t == c))
        if union:
            ious.append(np.sum((p == c) & (t == c)) / union)
    return float(np.mean(ious))


def run(name: str, x: torch.Tensor, y: torch.Tensor, steps: int, every: int, seed: int) -> list[dict]:
    torch.manual_seed(seed)
    model = build_model(name, num_classes=12)
    loss_fn = PHGMMLoss()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    rows, start = [], time.perf_counter()
    for step in range(1, steps + 1):
        model.train()
        opt.zero_grad(set_to_none=True)
        terms = loss_fn(model(x), y)
        terms["total"].backward()
        opt.step()
        if step % every == 0:
            out = _batch_stat_forward(model, x)
            main = out if isinstance(out, torch.Tensor) else out.logits
            row = {
                "model": name,
                "seed": seed,
                "step": step,
                "loss_s": float(terms["s"]) if "s" in terms else None,
                "miou_main": _miou(main.argmax(1), y, 12),
                "seconds": time.perf_counter() - start,
            }
            if not isinstance(out, torch.Tensor):
                row["miou_soft_regions"] = _miou(out.aux[0][1].argmax(1), y, 12)
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default="../shared/realdata/camvid")
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--size", default="120x88", help="W×H")
    ap.add_argument("--steps", type=int, default=90)
    ap.add_argument("--every", type=int, default=15)
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    w, h = (int(v) for v in args.size.split("x"))
    data = build_dataset("camvid", args.root, "train", size=(w, h))
    picks = np.linspace(0, len(data) - 1, args.images).round().astype(int).tolist()
    samples = [data[i] for i in picks]
    x = torch.stack([s[0] if isinstance(s, (tuple, list)) else s["image"] for s in samples])
    y = torch.stack([s[1] if isinstance(s, (tuple, list)) else s["label"] for s in samples]).long()
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        for name in ("hrnet_w18", "hrnet_w18_ocr"):
            rows += run(name, x, y, args.steps, args.every, seed)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        settings = {
            "images": picks,
            "size_wh": [w, h],
            "steps": args.steps,
            "optimizer": "AdamW lr 1e-3 wd 0.01",
            "threads": 1,
            "torch": torch.__version__,
        }
        (out / "overfit.json").write_text(json.dumps({"settings": settings, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
