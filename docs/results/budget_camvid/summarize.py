"""The ordering at each training budget, from the committed files: writes budget.md beside this script.

    python docs/results/budget_camvid/summarize.py

Budgets: 6 epochs (PHGMM: latent2_camvid's paper-mean-s0..s2, the default recipe with today's code;
the others: compare_camvid_all for seed 0, seeds_camvid for seeds 1-2 where they exist),
25 and 100 epochs (this folder's <network>-e25-s<seed> and <network>-e100-s<seed>). All runs share
the camvid recipe; the 6-epoch runs trained in fp32, the 25- and 100-epoch runs in bf16
(docs/results/bf16_parity_camvid/parity.md). For every budget: each network's val mIoU (mean ± sd
over its seeds), its rank, whether the paper's side of PHGMM holds (the paper's Table 1 puts PHGMM
above every network here), whether the gap to PHGMM is outside two standard deviations (the issue's
rule: a pair within two sd needs more seeds before it is ordered; the sd is the larger of the two
networks' sample sds, and a pair where neither has two seeds has none), and, for 100 epochs, how much
the last two validations moved; then each table in words (``verdict``) and whether the 100-epoch
curves have levelled off and the latent spaces stayed unused (``curves_verdict``), and what the 6-
and 100-epoch orderings say about the paper's claim (``claim_verdict``); the queue's progress heads it.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from phgmm.experiments.numbers import read_json, read_yaml  # records what the doc pages' generators read

HERE = Path(__file__).resolve().parent
RESULTS = HERE.parent
#: below this I(x; ·) in nats (of at most log 101 = 4.62 for CamVid val) a latent space is unused
UNUSED_NATS = 0.01
NETWORKS = ("phgmm", "deeplabv3", "deeplabv2", "fcn8s", "bisenet", "hrnet_w18_small")
#: the 6-epoch runs: network -> [(study, run), ...] by seed
SIX = {
    "phgmm": [("latent2_camvid", f"paper-mean-s{s}") for s in range(3)],  # the default recipe, today's code
    "deeplabv3": [
        ("compare_camvid_all", "deeplabv3"),
        ("seeds_camvid", "deeplabv3-s1"),
        ("seeds_camvid", "deeplabv3-s2"),
    ],
    "deeplabv2": [("compare_camvid_all", "deeplabv2")],
    "fcn8s": [("compare_camvid_all", "fcn8s"), ("seeds_camvid", "fcn8s-s1"), ("seeds_camvid", "fcn8s-s2")],
    "bisenet": [("compare_camvid_all", "bisenet")],
    "hrnet_w18_small": [("compare_camvid_all", "hrnet_w18_small")],
}


def _miou(study: str, run: str) -> float | None:
    path = RESULTS / study / run / "metrics.json"
    return 100 * float(read_json(path)["miou"]) if path.is_file() else None


def budget_runs(epochs: int) -> dict[str, list[tuple[str, str]]]:
    """network -> its finished (study, run) pairs at this budget."""
    if epochs == 6:
        return {n: [r for r in SIX[n] if _miou(*r) is not None] for n in NETWORKS}
    out: dict[str, list[tuple[str, str]]] = {}
    for n in NETWORKS:
        out[n] = sorted(
            ("budget_camvid", p.name) for p in HERE.glob(f"{n}-e{epochs}-s*") if (p / "metrics.json").is_file()
        )
    return out


def _signed(x: float) -> str:
    """``+0.41`` or ``−0.11`` (a minus sign, as the pages print it)."""
    return f"{x:+.2f}".replace("-", "−")


def mean_sd(v: list[float]) -> str:
    return f"{v[0]:.2f}" if len(v) == 1 else f"{statistics.mean(v):.2f} ± {statistics.stdev(v):.2f}"


def _outside_spread(phgmm: list[float], other: list[float]) -> bool:
    """Whether the gap of the means is larger than two of the larger sample sd (False with none)."""
    sds = [statistics.stdev(v) for v in (phgmm, other) if len(v) > 1]
    return bool(sds) and abs(statistics.mean(phgmm) - statistics.mean(other)) > 2 * max(sds)


def spread(phgmm: list[float], other: list[float]) -> str:
    """PHGMM's mean minus the other network's, against two of the larger sample sd of the two."""
    gap = statistics.mean(phgmm) - statistics.mean(other)
    signed = _signed(gap)
    sds = [statistics.stdev(v) for v in (phgmm, other) if len(v) > 1]
    if not sds:
        return f"{signed} (one seed each): more seeds"
    reading = "ordered" if _outside_spread(phgmm, other) else "within the spread: more seeds"
    return f"{signed} (2 sd = {2 * max(sds):.2f}): {reading}"


def _validations(study: str, run: str) -> list[tuple[float, float]]:
    """(epoch, val mIoU in points) of each validation in the run's history (none without one)."""
    path = RESULTS / study / run / "history.json"
    hist = read_json(path) if path.is_file() else []
    return [(h["epoch"], 100 * h["val_miou"]) for h in hist if h.get("val_miou") is not None]


def levelled(study: str, run: str) -> str:
    """The change of val mIoU between the last two validations of a run, in points."""
    vals = _validations(study, run)
    if len(vals) < 2:
        return "–"
    (e0, a), (e1, b) = vals[-2:]
    return f"{_signed(b - a)} (epoch {e0:.0f} → {e1:.0f})"


def _scores(epochs: int) -> tuple[dict[str, list[tuple[str, str]]], dict[str, list[float]]]:
    """network -> its finished runs, and network -> their val mIoU in points, at this budget."""
    runs = {n: r for n, r in budget_runs(epochs).items() if r}
    return runs, {n: [_miou(*r) for r in rs] for n, rs in runs.items()}


def _by_rank(scores: dict[str, list[float]], names=None) -> list[str]:
    """The networks (``names``, or every one scored) best first by mean val mIoU."""
    return sorted(scores if names is None else names, key=lambda n: -statistics.mean(scores[n]))


def section(epochs: int) -> list[str]:
    """The budget's table: rank, seeds, val mIoU, the paper's side, PHGMM's gap (and, at 100 epochs,
    the last two validations), then the files it read."""
    runs, scores = _scores(epochs)
    if not runs:
        return [f"### {epochs} epochs", "", "No run has finished yet.", ""]
    order = _by_rank(scores)
    head = ["rank", "network", "seeds", "val mIoU", "PHGMM above (paper's side)", "PHGMM's gap"]
    if epochs == 100:
        head.append("last two validations moved")
    lines = [f"### {epochs} epochs", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    ph = statistics.mean(scores["phgmm"]) if "phgmm" in scores else None
    for rank, n in enumerate(order, 1):
        side = "–" if n == "phgmm" or ph is None else ("holds" if ph > statistics.mean(scores[n]) else "does not hold")
        gap = "–" if n == "phgmm" or ph is None else spread(scores["phgmm"], scores[n])
        row = [str(rank), n, str(len(scores[n])), mean_sd(scores[n]), side, gap]
        if epochs == 100:
            row.append("; ".join(levelled(*r) for r in runs[n]))
        lines.append("| " + " | ".join(row) + " |")
    files = ", ".join(f"`{s}/{r}`" for rs in runs.values() for s, r in rs)
    last = {n: [v for v in (_last_miou(*r) for r in runs[n]) if v is not None] for n in order}
    at_last = ", ".join(f"{n} {mean_sd(last[n])}" for n in order if last[n])
    return lines + [
        "",
        f"From {files}. Scored at each run's last validation instead of its best (no checkpoint chosen on "
        f"the validation split): {at_last}.",
        "",
    ]


def _last_miou(study: str, run: str) -> float | None:
    """The run's val mIoU at its last validation, in points (None without a history)."""
    vals = _validations(study, run)
    return vals[-1][1] if vals else None


def networks_at(epochs: int) -> list[str]:
    """The networks with a finished run at this budget."""
    return sorted(_scores(epochs)[1])


def place(epochs: int, among: list[str] | None = None) -> tuple[int, int] | None:
    """PHGMM's rank by mean val mIoU at this budget and the number of networks ranked, counting only
    ``among`` (and PHGMM) when given; None without a PHGMM run."""
    _, scores = _scores(epochs)
    ranked = [n for n in scores if among is None or n in among or n == "phgmm"]
    if "phgmm" not in ranked:
        return None
    order = _by_rank(scores, ranked)
    return order.index("phgmm") + 1, len(order)


def ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def _names(networks: list[str]) -> str:
    return ", ".join(networks[:-1]) + (" and " if len(networks) > 1 else "") + networks[-1]


def verdict(epochs: int) -> str:
    """The budget's table in words: PHGMM's rank, the networks the paper's side holds against and
    not, and which of those gaps are outside the spread (ordered) or within it (more seeds)."""
    _, scores = _scores(epochs)
    if "phgmm" not in scores or len(scores) < 2:
        return ""
    ph = scores["phgmm"]
    order = _by_rank(scores)
    others = [n for n in order if n != "phgmm"]
    above = [n for n in others if statistics.mean(ph) > statistics.mean(scores[n])]
    below = [n for n in others if n not in above]
    settled = [n for n in others if _outside_spread(ph, scores[n])]
    rank = order.index("phgmm") + 1
    text = [f"At {epochs} epochs PHGMM ({mean_sd(ph)}, {len(ph)} seeds) ranks {ordinal(rank)} of {len(order)}:"]
    if above:
        text.append(f"the paper's side holds against {_names(above)}")
    if below:
        text.append(("and " if above else "the paper's side ") + f"does not hold against {_names(below)}")
    text[-1] += "."
    if len(settled) == len(others):
        text.append("Every gap is outside two standard deviations: the ordering stands.")
    elif not settled:
        text.append("Every gap is within the spread (or rests on one seed): nothing is ordered yet.")
    else:
        pending = [n for n in others if n not in settled]
        text.append(f"Outside two standard deviations: {_names(settled)}; within: {_names(pending)} (more seeds).")
    return " ".join(text)


def _sides(scores: dict[str, list[float]]) -> tuple[list[str], list[str], list[str]]:
    """The networks ordered above PHGMM, level with it (gap within two sd, or no sd) and ordered below."""
    ph = scores["phgmm"]
    others = [n for n in _by_rank(scores) if n != "phgmm"]
    ordered = [n for n in others if _outside_spread(ph, scores[n])]
    above = [n for n in ordered if statistics.mean(scores[n]) > statistics.mean(ph)]
    below = [n for n in ordered if n not in above]
    return above, [n for n in others if n not in ordered], below


def claim_verdict() -> str:
    """What the 6- and 100-epoch orderings say about the paper's claim (its Table 1 puts PHGMM above
    every network here), counting only gaps outside two standard deviations as ordered."""
    _, late = _scores(100)
    if "phgmm" not in late or len(late) < 2:
        return ""
    _, early = _scores(6)
    early = {n: v for n, v in early.items() if n in late}
    above_early = _sides(early)[0] if "phgmm" in early else []
    above, level, below = _sides(late)
    text = [f"At 6 epochs, ordered above PHGMM: {_names(above_early)}."] if above_early else []
    parts = []
    if above:
        parts.append(f"ordered above PHGMM: {_names(above)} (the claim does not hold)")
    if level:
        parts.append(f"level with it: {_names(level)} (within two standard deviations: the claim is not shown)")
    if below:
        parts.append(f"ordered below it: {_names(below)} (the claim holds)")
    text.append("At 100 epochs, " + "; ".join(parts) + ".")
    caught_up = [n for n in above_early if n not in above]
    if caught_up:
        text.append(
            f"The 6-epoch deficit against {_names(caught_up)} does not persist to the paper's budget: "
            "PHGMM was slower to train more than it was worse."
        )
    return " ".join(text)


def curves_verdict() -> str:
    """Whether the 100-epoch curves have levelled off (the last validation's move against PHGMM's
    seed sd), and the largest I(x; z), I(x; g) any PHGMM run measured at any validation."""
    runs, scores = _scores(100)
    if not runs:
        return ""
    moves = []
    for rs in runs.values():
        for s, r in rs:
            vals = [v for _, v in _validations(s, r)]
            moves += [vals[-1] - vals[-2]] if len(vals) > 1 else []
    text = []
    if moves:
        lo, hi = min(moves), max(moves)
        text.append(f"The last validation moved the 100-epoch runs by {_signed(lo)} to {_signed(hi)} points")
        ph = scores.get("phgmm", [])
        if len(ph) > 1:
            sd = statistics.stdev(ph)
            flat = max(abs(m) for m in moves) < sd
            text[-1] += f", against PHGMM's seed sd of {sd:.2f}: " + (
                "the curves have levelled off within the seed spread."
                if flat
                else "the curves have not levelled off (a last move larger than the seed spread)."
            )
        else:
            text[-1] += "."
    mi = {"z": 0.0, "g": 0.0}
    for s, r in runs.get("phgmm", []):
        for h in read_json(RESULTS / s / r / "history.json"):
            for k in mi:
                if h.get(f"val_mi_{k}") is not None:
                    mi[k] = max(mi[k], h[f"val_mi_{k}"])
    if "phgmm" in runs:
        unused = max(mi.values()) < UNUSED_NATS
        text.append(
            f"Along every 100-epoch PHGMM run, I(x; z) and I(x; g) stay at or below {mi['z']:.1e} and "
            f"{mi['g']:.1e} nats"
            + (
                f" (below {UNUSED_NATS} nats at every validation): training longer does not make the latent "
                "spaces carry information."
                if unused
                else f": at least one latent space carries information ({UNUSED_NATS} nats or more)."
            )
        )
    return " ".join(text)


def _queue() -> list[str]:
    """The runs of experiment.yaml (the experiment file as the runner last read it), in its order."""
    return [r["name"] for r in read_yaml(HERE / "experiment.yaml")["runs"]]


def not_run_yet() -> list[str]:
    """The queued runs with no committed metrics.json."""
    return [n for n in _queue() if not (HERE / n / "metrics.json").is_file()]


def progress() -> str:
    """How far the queue has got, in words."""
    queued, left = _queue(), not_run_yet()
    if not left:
        return f"all {len(queued)} queued runs have finished"
    return f"{len(queued) - len(left)} of the {len(queued)} queued runs have finished; not run yet: {', '.join(left)}"


def cost_section() -> list[str]:
    """Training time of the 25- and 100-epoch runs from their histories: the fastest epoch (the
    network's cost with a core to itself), the median epoch (what the runs met: other work shared
    the machine at times) and the total, so the seconds axis of the learning curves can be read."""
    rows = []
    for epochs in (25, 100):
        for rs in _scores(epochs)[0].values():
            for s, r in rs:
                secs = [h["epoch_seconds"] for h in read_json(RESULTS / s / r / "history.json") if "epoch_seconds" in h]
                if secs:
                    rows.append(f"| {r} | {min(secs):.1f} | {statistics.median(secs):.1f} | {sum(secs) / 3600:.2f} |")
    if not rows:
        return []
    return [
        "### Training time",
        "",
        "| run | fastest epoch (s) | median epoch (s) | training (h) |",
        "|---|---:|---:|---:|",
        *rows,
        "",
        "Seconds of training per epoch (validation excluded), from each run's `history.json`. The runs "
        "shared the 2-core machine with another run and at times with other work, so the median is "
        "above the fastest; the learning curves' seconds axis is this wall-clock time.",
        "",
    ]


def main() -> None:
    lines = [
        "# PHGMM's place at 6, 25 and 100 epochs (CamVid, ResNet-18, 240×176)",
        "",
        "Written by `python docs/results/budget_camvid/summarize.py` from the committed files it names; "
        "mean ± sample sd over seeds; 6 epochs in fp32, 25 and 100 in bf16. The queue: " + progress() + ".",
        "",
    ]
    for epochs in (6, 25, 100):
        lines += section(epochs)
        words = verdict(epochs)
        lines += [words, ""] if words else []
    curves, claim = curves_verdict(), claim_verdict()
    lines += [curves, ""] if curves else []
    lines += [f"**The paper's claim** (its Table 1 puts PHGMM above every network here). {claim}", ""] if claim else []
    lines += cost_section()
    (HERE / "budget.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
