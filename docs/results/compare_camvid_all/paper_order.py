"""Sets each finished network's CamVid val mIoU (results.csv beside this file) against its row of
the paper's Table 1 (Cityscapes val, 11 classes, 768x384), and writes paper_order.md:

    python docs/results/compare_camvid_all/paper_order.py

For every network: its mIoU in the paper and here, whether it stands above or below PHGMM in each,
and whether the paper's side holds; then how much of the paper's ordering holds between every pair
of finished networks (Kendall's tau, Spearman's rho). The data sets differ (the paper's Cityscapes
against CamVid here, at CPU scale), so this compares orderings, never the numbers themselves.
"""

from __future__ import annotations

import csv
from itertools import combinations
from pathlib import Path

from scipy.stats import kendalltau, spearmanr

HERE = Path(__file__).resolve().parent

#: run name here -> (row of the paper's Table 1, its mIoU there)
PAPER = {
    "phgmm": ("PHGMM", 82.12),
    "hrnet_w18_ocr_small": ("HRNet + OCR", 81.90),
    "hrnet_w18_small": ("HRNet", 80.98),
    "ocnet": ("OCNet", 77.86),
    "ccnet": ("CCNet", 77.62),
    "danet": ("DANet", 77.13),
    "pspnet": ("PSPNet", 76.61),
    "deeplabv3": ("DeepLab v3", 75.21),
    "enet": ("ENet", 73.26),
    "bisenet": ("BiSeNet", 72.86),
    "fcn8s": ("FCN8", 65.43),
    "deeplabv2": ("DeepLab v2", 63.59),
    "segnet_half": ("SegNet", 56.92),
}
#: finished runs with no row of their own in Table 1
NOT_IN_TABLE = {
    "unet": "U-Net is not in Table 1",
    "ocnet_asp": "the ASP variant; Table 1's OCNet row is set against `ocnet`",
}


def _side(miou: float, phgmm: float) -> str:
    """Where a network stands against PHGMM's mIoU of the same table."""
    return "above" if miou > phgmm else "below"


def main() -> None:
    with open(HERE / "results.csv", newline="") as f:
        here = {r["run"]: 100 * float(r["miou"]) for r in csv.DictReader(f)}
    both = [n for n in PAPER if n in here]
    if "phgmm" not in both or len(both) < 3:
        raise SystemExit("paper_order.py: results.csv needs phgmm and at least two other networks of Table 1")
    ph_paper, ph_here = PAPER["phgmm"][1], here["phgmm"]
    lines = [
        "# The paper's ordering against the CamVid runs",
        "",
        "Written by `python docs/results/compare_camvid_all/paper_order.py` from `results.csv` and the",
        "paper's Table 1 (Cityscapes val, 11 classes, 768×384, every network from scratch). The data sets",
        "and budgets differ, so only the orderings are compared. HRNet and HRNet + OCR run here at their",
        "small width (W18-Small-v2, the paper's W48) and SegNet at half width, as experiment.yaml says.",
        "",
        "| network (run) | Table 1 row | paper mIoU | paper: vs PHGMM | CamVid mIoU here | here: vs PHGMM "
        "| paper's side holds |",
        "|---|---|---:|---|---:|---|---|",
    ]
    held = 0
    for n in sorted(both, key=lambda n: -PAPER[n][1]):
        row, paper = PAPER[n]
        if n == "phgmm":
            lines.append(f"| {n} | {row} | {paper:.2f} | – | {here[n]:.2f} | – | – |")
            continue
        side_paper, side_here = _side(paper, ph_paper), _side(here[n], ph_here)
        held += side_paper == side_here
        lines.append(
            f"| {n} | {row} | {paper:.2f} | {side_paper} | {here[n]:.2f} | {side_here} | "
            f"{'yes' if side_paper == side_here else '**no**'} |"
        )
    for n, why in NOT_IN_TABLE.items():
        if n in here:
            lines.append(f"| {n} | – ({why}) | – | – | {here[n]:.2f} | {_side(here[n], ph_here)} | – |")
    others = [n for n in both if n != "phgmm"]
    pairs = list(combinations(both, 2))
    same = sum((PAPER[a][1] - PAPER[b][1]) * (here[a] - here[b]) > 0 for a, b in pairs)
    tau = kendalltau([PAPER[n][1] for n in both], [here[n] for n in both])
    rho = spearmanr([PAPER[n][1] for n in both], [here[n] for n in both])
    lines += [
        "",
        f"- PHGMM's place: the paper puts it above all {len(others)} networks run here; here it is above "
        f"{sum(here[n] < ph_here for n in others)} of them and below {sum(here[n] > ph_here for n in others)} "
        f"(the paper's side holds for {held} of {len(others)}).",
        f"- Every pair of the {len(both)} networks in both: the paper's order holds for {same} of {len(pairs)} pairs; "
        f"Kendall's tau {tau.statistic:.2f} (p = {tau.pvalue:.2f}), Spearman's rho {rho.statistic:.2f} "
        f"(p = {rho.pvalue:.2f}).",
        "",
    ]
    (HERE / "paper_order.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
