"""bf16 against fp32 on the CPU, from the committed files: writes parity.md beside this script.

    python docs/results/bf16_parity_camvid/parity.py

fp32 runs (same recipe, one thread per run, committed earlier): PHGMM = latent2_camvid's
paper-mean-s0..s2 (the default recipe), DeepLab v3 = compare_camvid's deeplabv3 (seed 0) and
seeds_camvid's deeplabv3-s1, -s2. bf16 runs: this folder's <model>-bf16-s0..s2. Prediction agreement:
agreement.json (benchmarks/precision_agreement.py on the bf16-trained checkpoints).

The rule, fixed before the runs finished: bf16 matches fp32 for a network when the difference of
the mean val mIoU is no larger than the larger of the two precisions' seed standard deviations;
bf16 becomes the CPU default only if it matches for both networks.
"""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

from scipy import stats

HERE = Path(__file__).resolve().parent
DECISION = {
    True: "bf16 matches fp32 for both networks, the rule for making it the CPU default: `train.amp=auto` is bf16 on "
    "a CPU with native bf16 instructions (`phgmm.engine.precision.CPU_AUTO_BF16`)",
    False: "bf16 does not match fp32 for every network: `train.amp=auto` stays fp32 on a CPU; `train.amp=bf16` asks "
    "for bf16",
}
RESULTS = HERE.parent
FP32 = {
    "phgmm": [("latent2_camvid", f"paper-mean-s{s}") for s in range(3)],
    "deeplabv3": [("compare_camvid", "deeplabv3"), ("seeds_camvid", "deeplabv3-s1"), ("seeds_camvid", "deeplabv3-s2")],
}
BF16 = {m: [("bf16_parity_camvid", f"{m}-bf16-s{s}") for s in range(3)] for m in FP32}
COLUMNS = (
    ("miou", "val mIoU", 100),
    ("trimap_mean", "trimap error", 100),
    ("mean_boundary_iou", "boundary IoU", 100),
    ("mi_z", "I(x; z) nats", 1),
    ("mi_g", "I(x; g) nats", 1),
    ("z_active_units", "active z units", 1),
)


def _rows(study: str) -> dict[str, dict[str, str]]:
    with open(RESULTS / study / "results.csv", newline="") as f:
        return {r["run"]: r for r in csv.DictReader(f)}


def runs(spec: list[tuple[str, str]]) -> list[dict[str, str]] | None:
    """The results.csv rows of ``spec``, or None while any has not finished."""
    out = []
    for study, run in spec:
        row = _rows(study).get(run) if (RESULTS / study / run / "metrics.json").is_file() else None
        if row is None:
            return None
        out.append(row)
    return out


def values(rows: list[dict[str, str]], key: str, scale: float) -> list[float]:
    return [float(r[key]) * scale for r in rows if r.get(key) not in (None, "")]


def mean_sd(v: list[float], digits: int = 2) -> str:
    if not v:
        return "–"
    if len(v) == 1:
        return f"{v[0]:.{digits}f}"
    return f"{statistics.mean(v):.{digits}f} ± {statistics.stdev(v):.{digits}f}"


def verdict(a: list[float], b: list[float]) -> tuple[float, float, float, bool]:
    """Δ mean (bf16 − fp32), the larger seed sd, Welch's p, and whether Δ is within that sd."""
    delta = statistics.mean(b) - statistics.mean(a)
    spread = max(statistics.stdev(a), statistics.stdev(b))
    p = float(stats.ttest_ind(a, b, equal_var=False).pvalue)
    return delta, spread, p, abs(delta) <= spread


def main() -> None:
    lines = [
        "# bf16 against fp32 on the CPU (CamVid, ResNet-18, 240×176, 6 epochs, seeds 0–2)",
        "",
        "Written by `python docs/results/bf16_parity_camvid/parity.py` from the committed files it names.",
        "",
    ]
    head = ["network", "precision", "runs", "mIoU per seed"] + [c[1] for c in COLUMNS]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    decisions = {}
    for model in FP32:
        groups = {"fp32": runs(FP32[model]), "bf16": runs(BF16[model])}
        for prec, rows in groups.items():
            if rows is None:
                lines.append(f"| {model} | {prec} | not finished |" + " |" * (len(head) - 3))
                continue
            seeds = ", ".join(f"{v:.2f}" for v in values(rows, "miou", 100))
            cells = [mean_sd(values(rows, k, s), 2 if s == 100 else 4) for k, _, s in COLUMNS]
            where = ", ".join(f"{st}/{r}" for st, r in (FP32 if prec == "fp32" else BF16)[model])
            lines.append(f"| {model} | {prec} | {where} | {seeds} | " + " | ".join(cells) + " |")
        if all(groups.values()):
            decisions[model] = verdict(values(groups["fp32"], "miou", 100), values(groups["bf16"], "miou", 100))
    lines += ["", "Means ± sample standard deviations over the seeds; percentages but for the latent measures.", ""]
    for model, (delta, spread, p, ok) in decisions.items():
        lines.append(
            f"- **{model}**: bf16 − fp32 = {delta:+.2f} points of mean mIoU; the larger seed sd is "
            f"{spread:.2f}; Welch's p = {p:.2f}: {'within' if ok else 'outside'} the seed spread."
        )
    agreement = HERE / "agreement.json"
    if agreement.is_file():
        runs_ = json.loads(agreement.read_text())["runs"]
        lines += [
            "",
            "Prediction agreement of the trained networks (each bf16-trained checkpoint predicting the "
            "101 val images with `--precision fp32` and `--precision bf16`, BatchNorm folded):",
            "",
            "| checkpoint | pixels whose class differs | worst image |",
            "|---|---:|---:|",
        ]
        for r in runs_:
            name = Path(r["checkpoint"]).parent.parent.name
            lines.append(
                f"| {name} | {r['pixels_differing'] * 100:.3f} % | {r['worst_image_pixels_differing'] * 100:.3f} % "
                f"({r['worst_image']}) |"
            )
    if len(decisions) == len(FP32):
        ok = all(d[3] for d in decisions.values())
        lines += [
            "",
            f"**Decision**: {DECISION[ok]}.",
        ]
    (HERE / "parity.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
