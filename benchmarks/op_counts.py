"""ATen operators (and kernel-launching ones) per training step and eval forward, for every model.

    python benchmarks/op_counts.py [--models phgmm,deeplabv3] [--backbone resnet18] [--size 128x64]
                                   [--batch 2] [--by-op N] [--json OUT] [--write-fixture]

Counted on the CPU with a ``TorchDispatchMode`` (``phgmm.benchmark.opcount``): deterministic, any
machine, a few seconds per model at the default setting (ResNet-18, 128×64, batch 2, full PostNet).
An eager GPU step launches about one kernel per counted "kernel", so this is the launch cost a CPU
can see. ``--write-fixture`` rewrites ``tests/fixtures/op_counts.json``, the record
``tests/test_opcount.py`` guards against growth: run it when a change lowers a count on purpose
(and say so in the commit), never to make a growth pass.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from phgmm.benchmark.opcount import DEFAULT_SETTING, PHASES, op_counts
from phgmm.io import parse_wxh

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "op_counts.json"
#: the models the committed record holds (new networks are counted, not recorded, until added here)
RECORDED = ("phgmm", "deeplabv3", "fcn8s", "pspnet", "unet")


def table(result: dict) -> str:
    s = result["setting"]
    lines = [
        f"{s['backbone']}, {s['size_wh'][0]}×{s['size_wh'][1]}, batch {s['batch']}, PostNet {s['postnet']}, "
        f"torch {result['torch']}: operators dispatched (kernel-launching ones)",
        "",
        "| model | " + " | ".join(PHASES) + " |",
        "|---|" + "---:|" * len(PHASES),
    ]
    for name, phases in result["models"].items():
        lines.append(f"| {name} | " + " | ".join(f"{phases[p]['ops']} ({phases[p]['kernels']})" for p in PHASES) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=None, help="comma-separated (default: every registered model)")
    p.add_argument("--backbone", default=DEFAULT_SETTING["backbone"])
    p.add_argument("--size", type=parse_wxh, default=tuple(DEFAULT_SETTING["size_wh"]), help="W×H")
    p.add_argument("--batch", type=int, default=DEFAULT_SETTING["batch"])
    p.add_argument("--by-op", type=int, default=0, help="also list the N most frequent kernels per phase")
    p.add_argument("--json", default=None, help="write every count here")
    p.add_argument(
        "--write-fixture",
        action="store_true",
        help=f"rewrite {FIXTURE.relative_to(FIXTURE.parents[2])} (the recorded models, default setting)",
    )
    args = p.parse_args()
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    if args.write_fixture:
        result = op_counts(RECORDED)
        record = {
            "setting": result["setting"],
            "torch": result["torch"],
            "update": "python benchmarks/op_counts.py --write-fixture",
            "models": {
                n: {ph: {k: v[k] for k in ("ops", "kernels")} for ph, v in phases.items()}
                for n, phases in result["models"].items()
            },
        }
        FIXTURE.write_text(json.dumps(record, indent=1) + "\n")
        print(table(result))
        print(f"\nwrote {FIXTURE}")
        return
    models = args.models.split(",") if args.models else None
    result = op_counts(models, backbone=args.backbone, size_wh=list(args.size), batch=args.batch)
    print(table(result))
    if args.by_op:
        for name, phases in result["models"].items():
            for phase in PHASES:
                top = list(phases[phase]["by_op"].items())[: args.by_op]
                print(f"\n{name} {phase}: " + ", ".join(f"{op} {n}" for op, n in top))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
