"""How fast could PHGMM and DeepLab v3 run on a GPU? Roofline bounds from the operators alone.

    python benchmarks/roofline.py [--device h100|h200|a100] [--backbone resnet101] [--size 768x384]
                                  [--batch 16] [--measured BENCH.json] [--json OUT]

Traces a training step (forward, loss, backward; fused AdamW added analytically) and an inference of
each network on the meta device — shapes only, seconds on any CPU — and prints, per step, the FLOPs,
the least memory traffic, the operator count and two bounds on its time (phgmm.benchmark.roofline):
``eager`` (one kernel per operator, each at peak FLOP rate or full bandwidth, no launch cost) and
``fused`` (only convolutions and matrix products move memory). With ``--measured`` (a
``phgmm benchmark --json`` file from that GPU) it sets the measured times beside the bounds.
"""

from __future__ import annotations

import argparse
import json

from phgmm.benchmark.roofline import (
    ADAMW_BYTES_PER_PARAM,
    DEVICES,
    by_operator,
    inference_roofline,
    training_ops,
    training_roofline,
)
from phgmm.io import parse_wxh


def _measured(path: str | None) -> dict[str, float]:
    if not path:
        return {}
    with open(path, encoding="utf-8") as f:
        bench = json.load(f)
    m = bench["models"]
    return {
        "phgmm train": m["phgmm"]["train_step_s"],
        "deeplabv3 train": m["deeplabv3"]["train_step_s"],
        "phgmm inference": m["phgmm"]["infer_s"],
        "phgmm encoder": bench["encoder_infer_s"],
        "deeplabv3 inference": m["deeplabv3"]["infer_s"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=sorted(DEVICES), default="h100")
    p.add_argument("--backbone", default="resnet101")
    p.add_argument("--size", type=parse_wxh, default=(768, 384), help="W×H")
    p.add_argument("--batch", type=int, default=16, help="training and inference batch")
    p.add_argument("--measured", metavar="BENCH.json", help="phgmm benchmark --json output from that GPU")
    p.add_argument(
        "--by-op",
        type=int,
        default=12,
        metavar="N",
        help="also list PHGMM's training step per operator, the N largest bounds (0: none)",
    )
    p.add_argument("--json", metavar="OUT", help="write every number here")
    args = p.parse_args()
    dev = DEVICES[args.device]
    common = {"backbone": args.backbone, "size": args.size, "batch": args.batch, "device": dev}
    rows = {
        "phgmm train": training_roofline("phgmm", **common),
        "deeplabv3 train": training_roofline("deeplabv3", **common),
        "phgmm inference": inference_roofline("phgmm", **common),
        "phgmm inference, BN folded": inference_roofline("phgmm", folded=True, **common),
        "phgmm encoder": inference_roofline("phgmm", encoder_only=True, **common),
        "phgmm encoder, BN folded": inference_roofline("phgmm", encoder_only=True, folded=True, **common),
        "deeplabv3 inference": inference_roofline("deeplabv3", **common),
        "deeplabv3 inference, BN folded": inference_roofline("deeplabv3", folded=True, **common),
    }
    measured = _measured(args.measured)
    w, h = args.size
    print(
        f"# Roofline bounds: {dev.name}, {dev.peak_flops / 1e12:.0f} TFLOP/s bf16, "
        f"{dev.bandwidth / 1e12:.2f} TB/s (ridge {dev.ridge:.0f} FLOP/byte)\n"
    )
    print(f"{args.backbone}, {w}×{h}, batch {args.batch}, bf16, channels-last\n")
    print(
        "| step | TFLOP | least traffic (GB) | operators | eager bound (ms) | fused bound (ms) "
        "| MFU ceiling eager | MFU ceiling fused | measured (ms) | measured ÷ eager bound |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in rows.items():
        t = measured.get(name)
        meas = f"{t * 1e3:.1f} | {t / r.eager_s:.2f}" if t else "– | –"
        print(
            f"| {name} | {r.flops / 1e12:.2f} | {r.bytes_all / 1e9:.1f} | {r.kernels} | {r.eager_s * 1e3:.2f} "
            f"| {r.fused_s * 1e3:.2f} | {100 * r.eager_mfu:.1f} % | {100 * r.fused_mfu:.1f} % | {meas} |"
        )
    ratios = {
        "phgmm inference ÷ encoder, FLOPs": rows["phgmm inference"].flops / rows["phgmm encoder"].flops,
        "phgmm inference ÷ encoder, eager bound": rows["phgmm inference"].eager_s / rows["phgmm encoder"].eager_s,
        "phgmm inference ÷ encoder, eager bound, BN folded": rows["phgmm inference, BN folded"].eager_s
        / rows["phgmm encoder, BN folded"].eager_s,
        "phgmm ÷ deeplabv3 inference, eager bound": rows["phgmm inference"].eager_s
        / rows["deeplabv3 inference"].eager_s,
        "phgmm ÷ deeplabv3 inference, eager bound, BN folded": rows["phgmm inference, BN folded"].eager_s
        / rows["deeplabv3 inference, BN folded"].eager_s,
    }
    if measured:
        ratios["phgmm inference ÷ encoder, measured"] = measured["phgmm inference"] / measured["phgmm encoder"]
        ratios["phgmm ÷ deeplabv3 inference, measured"] = measured["phgmm inference"] / measured["deeplabv3 inference"]
    print("\n| ratio | value |\n|---|---:|")
    for k, v in ratios.items():
        print(f"| {k} | {v:.3f} |")
    per_op = {}
    if args.by_op:
        ops, params = training_ops("phgmm", backbone=args.backbone, size=args.size, batch=args.batch)
        per_op = by_operator(ops, dev)
        print("\n## PHGMM training step per operator (eager bound)\n")
        print("| operator | calls | TFLOP | least traffic (GB) | bound (ms) |\n|---|---:|---:|---:|---:|")
        for op, row in list(per_op.items())[: args.by_op]:
            print(
                f"| {op} | {row['calls']} | {row['flops'] / 1e12:.2f} | {row['bytes'] / 1e9:.2f} "
                f"| {row['bound_s'] * 1e3:.2f} |"
            )
        adamw = ADAMW_BYTES_PER_PARAM * params
        print(
            f"| fused AdamW ({params / 1e6:.1f} M parameters) | 1 | 0 | {adamw / 1e9:.2f} "
            f"| {adamw / dev.bandwidth * 1e3:.2f} |"
        )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(
                {
                    "device": dev.name,
                    "settings": {"backbone": args.backbone, "size_wh": [w, h], "batch": args.batch},
                    "steps": {k: r.as_dict() for k, r in rows.items()},
                    "measured_s": measured,
                    "ratios": ratios,
                    "phgmm_train_by_operator": per_op,
                },
                f,
                indent=2,
            )


if __name__ == "__main__":
    main()
